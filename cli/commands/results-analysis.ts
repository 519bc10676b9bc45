// `llem results show|compare` lines for issue #22 (ADR 0030): the Pareto frontier with 95% CIs, SLO goodput
// and the lowest-energy configuration meeting the SLOs, and the load-ladder steps with the knee; and the
// adaptive-cycle outcome (ADR 0031): cycles per configuration, achieved CI half-width, why it stopped.
import type { ConfigResult, CycleStats, ExperimentAnalysis } from '../../aggregator/index.ts';
import { adaptiveTargetText, REASON_TEXT } from '../../report/adaptive.ts';
import { configurationFrontier, TIME_AXES, type TimeAxis } from '../../report/frontier.ts';
import type { ResultsDocument } from '../../local/results-read.ts';

function n(v: number | null | undefined): string {
  return v === null || v === undefined || !Number.isFinite(v) ? '—' : Number(v.toPrecision(4)).toString();
}

function ci(s: CycleStats | null | undefined): string {
  if (s === null || s === undefined || s.mean === null) return '—';
  return s.ci95Low === null ? `${n(s.mean)} (no CI)` : `${n(s.mean)} [${n(s.ci95Low)}, ${n(s.ci95High)}]`;
}

const STATUS = { frontier: 'FRONTIER', notDistinguishable: 'not distinguishable', dominated: 'dominated' } as const;

/**
 * The frontier over the configurations of one or more results directories (compare: "A:" and "B:" in
 * front of each id), J/token against tokens/s, both with their 95% CIs.
 */
export function frontierLines(sides: readonly { prefix: string; doc: ResultsDocument }[]): string[] {
  const axis = TIME_AXES['tokensPerSecond'] as TimeAxis;
  const labels = new Map<string, string>();
  const configs: ConfigResult[] = [];
  for (const { prefix, doc } of sides) {
    for (const c of doc.results.configurations as ConfigResult[]) {
      const id = `${prefix}${c.configId}`;
      labels.set(id, `${prefix}${doc.configurations.find((x) => x.id === c.configId)?.label ?? c.configId}`);
      configs.push({ ...c, configId: id });
    }
  }
  const { points, left } = configurationFrontier(configs, axis);
  if (points.length < 2) return [];
  const out = [
    '',
    'Pareto frontier, J/token vs tokens/s (mean [95% CI]); "not distinguishable": dominated by means, CIs overlap:',
  ];
  const order = [...points].sort((a, b) => a.energy.mean - b.energy.mean || (a.id < b.id ? -1 : 1));
  for (const p of order) {
    const e = `${n(p.energy.mean)} [${n(p.energy.low)}, ${n(p.energy.high)}]`;
    const t = `${n(p.time.mean)} [${n(p.time.low)}, ${n(p.time.high)}]`;
    out.push(
      `${(labels.get(p.id) ?? p.id).slice(0, 40).padEnd(40)}  ${STATUS[p.status].padEnd(19)}  J/token ${e.padEnd(28)}  tokens/s ${t}`,
    );
  }
  for (const l of left) out.push(`${(labels.get(l.id) ?? l.id).slice(0, 40).padEnd(40)}  left out: ${l.why}`);
  return out;
}

function analysisOf(doc: ResultsDocument): ExperimentAnalysis | null {
  return doc.analysis ?? null;
}

export function sloLines(doc: ResultsDocument): string[] {
  const slo = analysisOf(doc)?.slo;
  if (slo === null || slo === undefined) return [];
  const label = (id: string): string => doc.configurations.find((c) => c.id === id)?.label ?? id;
  const out = ['', 'SLOs: goodput (SLO-met requests/s), attainment %, J per SLO-met request (mean [95% CI]):'];
  for (const c of slo.configurations)
    out.push(
      `${label(c.configId).slice(0, 40).padEnd(40)}  ${c.summary}; goodput ${ci(c.goodputRequestsPerSecond)}, ` +
        `attainment ${ci(c.attainmentPct)}, J/SLO-met request ${ci(c.joulesPerSloMetRequest)}`,
    );
  out.push(`lowest energy meeting the SLOs: ${slo.choice.statement}`);
  return out;
}

export function ladderLines(doc: ResultsDocument): string[] {
  const ladders = analysisOf(doc)?.ladders ?? [];
  const out: string[] = [];
  for (const l of ladders) {
    out.push(
      '',
      `load ladder ${l.group} (${l.mode}): ${l.saturatedAt === null ? '' : `saturated at step ${l.saturatedAt}: `}${l.reason}`,
    );
    out.push(
      l.knee === null
        ? `knee: none (${l.kneeReason})`
        : `knee: step ${l.knee.step}, load ${n(l.knee.load)} (${l.knee.definition})`,
    );
    for (const p of l.points)
      out.push(
        `  step ${p.step} load ${n(p.load).padEnd(6)} ${p.ran ? '' : 'skipped  '}J/token ${ci(p.joulesPerToken)}  tokens/s ${ci(p.tokensPerSecond)}  ` +
          `TTFT p99 ${ci(p.ttftP99Ms)}  ITL p99 ${ci(p.itlP99Ms)}`,
      );
  }
  return out;
}

export function adaptiveLines(doc: ResultsDocument): string[] {
  const a = doc.adaptive;
  if (a === null || a === undefined) return [];
  const label = (id: string): string => doc.configurations.find((c) => c.id === id)?.label ?? id;
  const out = ['', `adaptive cycles: ${adaptiveTargetText(a)}:`];
  for (const c of a.configurations) {
    const width = c.ciHalfWidthPct === null ? '—' : `±${n(c.ciHalfWidthPct)}%`;
    const why = c.reason === null ? 'still measuring' : (REASON_TEXT[c.reason] ?? c.reason);
    out.push(
      `${label(c.configurationId).slice(0, 40).padEnd(40)}  cycles ${String(c.cycles).padEnd(3)} ` +
        `not needed ${String(c.cyclesSkipped).padEnd(3)} half-width ${width.padEnd(9)} ${why}`,
    );
  }
  return out;
}
