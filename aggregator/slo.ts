// SLO attainment and goodput (issue #22 item 2, ADR 0030), from what the aggregator holds: the agents'
// SLO-met request counts and each run's latency sketches. Per run: goodput (SLO-met requests per
// second of window), attainment, J per SLO-met request, and each target's percentile. Per configuration:
// the same across cycles (mean, 95% CI) and whether it meets the targets. Per experiment: the
// lowest-energy configuration that meets them, with which others it cannot be told apart from.
import type { SloMetric, SloSpec } from '../api/spec.ts';
import { SLO_METRICS } from '../api/spec.ts';
import type { ConfigResult } from './rollup.ts';
import type { RunResult } from './run-results.ts';
import { cycleStats, type CycleStats } from './stats.ts';

export type QuantileOf = (runId: string, metric: SloMetric, q: number) => number | null;

export interface RunSlo {
  runId: string;
  configId: string;
  requestsSloMet: number | null;
  /** SLO-met / (ok + failed) requests, percent. */
  attainmentPct: number | null;
  goodputRequestsPerSecond: number | null;
  /** Window energy / SLO-met requests (gross, idle floor included). */
  joulesPerSloMetRequest: number | null;
  /** The run's p-th percentile of each metric that has a target (ms). */
  percentiles: Partial<Record<SloMetric, number | null>>;
  missing: Record<string, string>;
}

export type TargetVerdict = 'met' | 'broken' | 'notDistinguishable' | 'unknown';

export interface TargetResult {
  metric: SloMetric;
  p: number;
  targetMs: number;
  /** Across cycles, of the runs' p-th percentiles. */
  percentileMs: CycleStats;
  /** met: the CI lies at or under the target; broken: above it; notDistinguishable: it straddles it. */
  verdict: TargetVerdict;
}

export interface ConfigSlo {
  configId: string;
  goodputRequestsPerSecond: CycleStats;
  attainmentPct: CycleStats;
  joulesPerSloMetRequest: CycleStats;
  targets: TargetResult[];
  /** Every target's mean percentile within its target (what the choice of configuration uses). */
  meets: boolean | null;
  /** A sentence: which targets broke, or what is unknown. */
  summary: string;
}

export interface SloChoice {
  /** Lowest mean J/token among the configurations that meet every target; null when none does. */
  configId: string | null;
  joulesPerToken: CycleStats | null;
  /** SLO-meeting configurations whose J/token CI overlaps the chosen one's: not distinguishable from it. */
  overlapping: string[];
  statement: string;
}

export interface SloResults {
  slo: SloSpec;
  runs: RunSlo[];
  configurations: ConfigSlo[];
  choice: SloChoice;
}

function targetsOf(slo: SloSpec): { metric: SloMetric; p: number; ms: number }[] {
  return SLO_METRICS.flatMap((metric) => {
    const t = slo[metric];
    return t === undefined ? [] : [{ metric, p: t.p, ms: t.ms }];
  });
}

export function runSlo(r: RunResult, slo: SloSpec, quantile: QuantileOf): RunSlo {
  const missing: Record<string, string> = {};
  const met = r.counts.requestsSloMet ?? null;
  if (met === null)
    missing['requestsSloMet'] = 'the agent sent no SLO-met count (no SLO in its config, or an older agent)';
  const total = r.counts.requestsOk + r.counts.requestsFailed;
  const seconds = r.metrics.windowSeconds;
  const energy = r.metrics.energyJoules;
  const percentiles: Partial<Record<SloMetric, number | null>> = {};
  for (const t of targetsOf(slo)) percentiles[t.metric] = quantile(r.runId, t.metric, t.p / 100);
  const joules = met !== null && met > 0 && energy !== null ? energy / met : null;
  if (met === 0) missing['joulesPerSloMetRequest'] = 'no request met the SLOs';
  return {
    runId: r.runId,
    configId: r.configId,
    requestsSloMet: met,
    attainmentPct: met !== null && total > 0 ? (100 * met) / total : null,
    goodputRequestsPerSecond: met !== null && seconds !== null && seconds > 0 ? met / seconds : null,
    joulesPerSloMetRequest: joules,
    percentiles,
    missing,
  };
}

function stats(runs: RunSlo[], pick: (r: RunSlo) => number | null): CycleStats {
  const values: number[] = [];
  const skipped: string[] = [];
  for (const r of runs) {
    const v = pick(r);
    if (v === null) skipped.push(`${r.runId}: ${Object.values(r.missing)[0] ?? 'no value'}`);
    else values.push(v);
  }
  return cycleStats(values, skipped, { nonNegative: true });
}

/** A percentage cannot pass 100: the Student-t upper bound is clamped there, as the lower one is at 0. */
function atMost100(s: CycleStats): CycleStats {
  return s.ci95High !== null && s.ci95High > 100 ? { ...s, ci95High: 100 } : s;
}

function verdictOf(s: CycleStats, targetMs: number): TargetVerdict {
  if (s.mean === null) return 'unknown';
  if (s.ci95Low === null || s.ci95High === null) return s.mean <= targetMs ? 'met' : 'broken';
  if (s.ci95High <= targetMs) return 'met';
  if (s.ci95Low > targetMs) return 'broken';
  return 'notDistinguishable';
}

export function configSlo(config: ConfigResult, runs: RunSlo[], slo: SloSpec): ConfigSlo {
  const included = new Set(config.runsIncluded);
  const mine = runs.filter((r) => included.has(r.runId));
  const targets = targetsOf(slo).map((t) => {
    const percentileMs = stats(mine, (r) => r.percentiles[t.metric] ?? null);
    return { metric: t.metric, p: t.p, targetMs: t.ms, percentileMs, verdict: verdictOf(percentileMs, t.ms) };
  });
  const unknown = targets.filter((t) => t.percentileMs.mean === null);
  const broken = targets.filter((t) => t.percentileMs.mean !== null && t.percentileMs.mean > t.targetMs);
  const meets = unknown.length > 0 ? null : broken.length === 0;
  const describe = (t: TargetResult): string => `${t.metric} p${t.p} ${fmt(t.percentileMs.mean)} ms > ${t.targetMs} ms`;
  const straddling = targets.filter((t) => t.verdict === 'notDistinguishable').map((t) => t.metric);
  const summary =
    mine.length === 0
      ? 'unknown: no run of this configuration is included (not run, skipped or failed)'
      : meets === null
        ? `unknown: no ${unknown.map((t) => t.metric).join(', ')} samples`
        : !meets
          ? `broken: ${broken.map(describe).join('; ')}`
          : `met${straddling.length > 0 ? ` (the 95% CI of ${straddling.join(', ')} crosses its target)` : ''}`;
  return {
    configId: config.configId,
    goodputRequestsPerSecond: stats(mine, (r) => r.goodputRequestsPerSecond),
    attainmentPct: atMost100(stats(mine, (r) => r.attainmentPct)),
    joulesPerSloMetRequest: stats(mine, (r) => r.joulesPerSloMetRequest),
    targets,
    meets,
    summary,
  };
}

function fmt(v: number | null): string {
  return v === null ? 'n/a' : v.toPrecision(3);
}

function overlaps(a: CycleStats, b: CycleStats): boolean {
  const lo = (s: CycleStats): number => s.ci95Low ?? s.mean ?? NaN;
  const hi = (s: CycleStats): number => s.ci95High ?? s.mean ?? NaN;
  return lo(a) <= hi(b) && lo(b) <= hi(a);
}

/** The lowest-energy SLO-meeting configuration; ties on the mean go to the smaller id (order-independent). */
export function sloChoice(configs: readonly ConfigResult[], slos: readonly ConfigSlo[]): SloChoice {
  const meeting = new Set(slos.filter((s) => s.meets === true).map((s) => s.configId));
  const candidates = configs
    .filter((c) => meeting.has(c.configId) && c.metrics.joulesPerToken.mean !== null)
    .sort(
      (a, b) =>
        (a.metrics.joulesPerToken.mean ?? 0) - (b.metrics.joulesPerToken.mean ?? 0) ||
        (a.configId < b.configId ? -1 : a.configId > b.configId ? 1 : 0),
    );
  const best = candidates[0];
  if (best === undefined) {
    const statement =
      meeting.size === 0
        ? 'No configuration meets every SLO target.'
        : 'Configurations meet the SLOs but none has a J/token figure.';
    return { configId: null, joulesPerToken: null, overlapping: [], statement };
  }
  const jpt = best.metrics.joulesPerToken;
  const overlapping = candidates
    .slice(1)
    .filter((c) => overlaps(jpt, c.metrics.joulesPerToken))
    .map((c) => c.configId);
  const ci = jpt.ci95Low === null ? 'no CI (fewer than 2 cycles)' : `95% CI ${fmt(jpt.ci95Low)}–${fmt(jpt.ci95High)}`;
  const statement =
    `${best.configId} uses the least energy of the ${candidates.length} configuration(s) that meet the SLOs: ` +
    `${fmt(jpt.mean)} J/token (${ci}). ` +
    (overlapping.length === 0
      ? candidates.length > 1
        ? 'Its CI overlaps no other SLO-meeting configuration’s: the choice is distinguishable.'
        : 'It is the only one.'
      : `Its CI overlaps ${overlapping.join(', ')}: not distinguishable from ${overlapping.length === 1 ? 'it' : 'them'}.`);
  return { configId: best.configId, joulesPerToken: jpt, overlapping, statement };
}

export function sloResults(
  slo: SloSpec,
  results: { runs: RunResult[]; configurations: ConfigResult[] },
  quantile: QuantileOf,
): SloResults {
  const runs = results.runs.map((r) => runSlo(r, slo, quantile));
  const configurations = results.configurations.map((c) => configSlo(c, runs, slo));
  return { slo, runs, configurations, choice: sloChoice(results.configurations, configurations) };
}
