// Two analyses over finished results (issue #21, ADR 0024), shared by report.html, `llem results show`
// and `compare`: J/token, tokens/s and p99 ITL against each configuration's GPU power cap / locked
// clock; and the prefill/decode energy split from phase-separated runs. Both work from the results
// document alone (experiment.json), so they apply to any results directory.
import { cycleStats, type CycleStats } from '../aggregator/stats.ts';
import type { AggregateResults, RunResult } from '../aggregator/index.ts';
import { canonicalJson } from '../api/paths.ts';
import { gpuSettingsLabel, hasGpuSettings, type RequestedGpuSettings } from '../api/spec-gpu.ts';

/** One configuration as experiment.json lists it (workload and point from llem >= 0.1). */
export interface ConfigurationEntry {
  id: string;
  label?: string | undefined;
  configHash: string;
  backend?: unknown;
  workload?: unknown;
  point?: Record<string, unknown>;
}

export interface GpuSettingsRow {
  configId: string;
  label: string;
  /** "cap 250 W", "SM 1410 MHz" ... from what the runs applied. */
  settings: string;
  requested: RequestedGpuSettings;
  /** Mean over included runs of the limit the driver enforced (read back); null: none read. */
  enforcedPowerLimitWatts: number | null;
  meanPowerWatts: CycleStats;
  joulesPerToken: CycleStats;
  tokensPerSecond: CycleStats;
  /** Across cycles of each run's p99 ITL. */
  itlP99Ms: CycleStats;
}

function mean(xs: readonly number[]): number | null {
  return xs.length === 0 ? null : xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** Configurations whose runs applied GPU settings, with the figures to read against them; empty: none did. */
export function gpuSettingsRows(results: AggregateResults, labels: Readonly<Record<string, string>>): GpuSettingsRow[] {
  const rows: GpuSettingsRow[] = [];
  for (const c of results.configurations) {
    const runs = results.runs.filter((r) => c.runsIncluded.includes(r.runId));
    const applied = runs.flatMap((r) => r.gpuSettings ?? []);
    const first = applied[0];
    if (first === undefined || !hasGpuSettings(first.requested as RequestedGpuSettings)) continue;
    const enforced = applied.flatMap((a) =>
      a.effective.enforcedPowerLimitWatts === null ? [] : [a.effective.enforcedPowerLimitWatts],
    );
    rows.push({
      configId: c.configId,
      label: labels[c.configId] ?? c.configId,
      settings: gpuSettingsLabel(first.requested as RequestedGpuSettings),
      requested: first.requested as RequestedGpuSettings,
      enforcedPowerLimitWatts: mean(enforced),
      meanPowerWatts: c.metrics.meanPowerWatts,
      joulesPerToken: c.metrics.joulesPerToken,
      tokensPerSecond: c.metrics.tokensPerSecond,
      itlP99Ms: c.latency.itlMs.p99,
    });
  }
  // Highest cap first, then clocks: the order a reader scans a cap sweep in.
  return rows.sort(
    (a, b) =>
      (b.requested.powerLimitWatts ?? 0) - (a.requested.powerLimitWatts ?? 0) ||
      (b.requested.smClockMHz?.max ?? 0) - (a.requested.smClockMHz?.max ?? 0),
  );
}

export const PHASE_SPLIT_METHOD =
  'phase-separated runs: a prefill-only pass (outputTokens 1, max_tokens=1) and the full pass of the same prompts; ' +
  'per request, prefill energy = the prefill pass, decode energy = full minus prefill (as AI Energy Score does); ' +
  'cycle c of one pass is paired with cycle c of the other, and the 95% CI is Student t over those pairs';

export const PHASE_SPLIT_ASSUMPTIONS = [
  'the prefill work is the same in both passes (same seed, same prompts, same input lengths)',
  'decode energy is the marginal energy of the full pass over the prefill-only pass: with continuous batching the full pass runs prefills beside other streams\u2019 decode steps, so this is an attribution, not a separate measurement of each phase',
  'gross GPU energy (idle floor included), per request completed in the window: idle power is charged to each phase for the time it takes',
  'the one token the prefill pass generates counts as prefill',
];

export interface PhaseSplit {
  fullConfigId: string;
  prefillConfigId: string;
  label: string;
  inputTokensPerRequest: number | null;
  outputTokensPerRequest: number | null;
  joulesPerInputToken: CycleStats;
  joulesPerOutputToken: CycleStats;
  /** Prefill energy / full-pass energy, per request. */
  prefillShare: CycleStats;
  cycles: number[];
}

const OUTPUT_PATH = 'workload.dataset.synthetic.outputTokens';

function outputTokensOf(workload: unknown): unknown {
  const w = workload as { dataset?: { synthetic?: { outputTokens?: unknown } } } | undefined;
  return w?.dataset?.synthetic?.outputTokens;
}

function isPrefillOnly(workload: unknown): boolean {
  const o = outputTokensOf(workload) as { distribution?: string; mean?: number } | undefined;
  const maxTokens = (workload as { sampling?: { maxTokens?: number } } | undefined)?.sampling?.maxTokens;
  return (o?.distribution === 'fixed' && o.mean === 1) || maxTokens === 1;
}

/** Everything about a configuration except its output length: twins differ only there. */
function twinKey(c: ConfigurationEntry): string | null {
  if (c.workload === undefined) return null;
  const w = JSON.parse(JSON.stringify(c.workload)) as {
    dataset?: { synthetic?: Record<string, unknown> };
    sampling?: Record<string, unknown>;
  };
  if (w.dataset?.synthetic !== undefined) delete w.dataset.synthetic['outputTokens'];
  if (w.sampling !== undefined) delete w.sampling['maxTokens'];
  const point = Object.fromEntries(
    Object.entries(c.point ?? {}).filter(([k]) => k !== OUTPUT_PATH && k !== 'workload.sampling.maxTokens'),
  );
  return canonicalJson({ backend: c.backend ?? null, workload: w, point });
}

interface PerRequest {
  energy: number;
  input: number;
  output: number;
}

function perRequest(r: RunResult): PerRequest | null {
  const e = r.metrics.energyJoules;
  const n = r.counts.requestsOk;
  if (e === null || n <= 0) return null;
  return { energy: e / n, input: r.counts.inputTokens / n, output: r.counts.outputTokens / n };
}

/** Ids of the configurations phaseSplits reads: every full configuration with a prefill-only twin, and the twin. */
export function phasePairConfigIds(configurations: readonly ConfigurationEntry[]): Set<string> {
  const ids = new Set<string>();
  for (const full of configurations) {
    if (isPrefillOnly(full.workload)) continue;
    const key = twinKey(full);
    const twin = configurations.find((c) => c !== full && isPrefillOnly(c.workload) && twinKey(c) === key);
    if (key === null || twin === undefined) continue;
    ids.add(full.id).add(twin.id);
  }
  return ids;
}

/** The prefill/decode split of every full configuration that has a prefill-only twin in these results. */
export function phaseSplits(configurations: readonly ConfigurationEntry[], results: AggregateResults): PhaseSplit[] {
  const included = (id: string): RunResult[] => {
    const c = results.configurations.find((x) => x.configId === id);
    return results.runs.filter((r) => c?.runsIncluded.includes(r.runId) === true);
  };
  const out: PhaseSplit[] = [];
  for (const full of configurations) {
    if (isPrefillOnly(full.workload)) continue;
    const key = twinKey(full);
    const twin = configurations.find((c) => c !== full && isPrefillOnly(c.workload) && twinKey(c) === key);
    if (key === null || twin === undefined) continue;
    const prefillRuns = included(twin.id);
    const jIn: number[] = [];
    const jOut: number[] = [];
    const share: number[] = [];
    const cycles: number[] = [];
    const skipped: string[] = [];
    const ins: number[] = [];
    const outs: number[] = [];
    for (const f of included(full.id)) {
      const p = prefillRuns.find((r) => r.cycle === f.cycle);
      const a = perRequest(f);
      const b = p === undefined ? null : perRequest(p);
      if (a === null || b === null || b.input <= 0 || a.output - b.output <= 0) {
        skipped.push(`cycle ${f.cycle}: no complete prefill-only run or no energy`);
        continue;
      }
      jIn.push(b.energy / b.input);
      jOut.push((a.energy - b.energy) / (a.output - b.output));
      share.push(b.energy / a.energy);
      cycles.push(f.cycle);
      ins.push(a.input);
      outs.push(a.output);
    }
    out.push({
      fullConfigId: full.id,
      prefillConfigId: twin.id,
      label: full.label ?? full.id,
      inputTokensPerRequest: mean(ins),
      outputTokensPerRequest: mean(outs),
      joulesPerInputToken: cycleStats(jIn, skipped, { nonNegative: true }),
      // Can come out negative when the two passes' noise exceeds the decode energy: kept, not clamped.
      joulesPerOutputToken: cycleStats(jOut, skipped, { nonNegative: false }),
      prefillShare: cycleStats(share, skipped, { nonNegative: true }),
      cycles,
    });
  }
  return out;
}

/** "0.0351 [0.0347, 0.0355]": a mean and its 95% CI, or why there is none. */
export function withCi(s: CycleStats, digits = 4): string {
  if (s.mean === null) return 'n/a';
  const f = (v: number): string => v.toPrecision(digits);
  return s.ci95Low === null || s.ci95High === null
    ? `${f(s.mean)} (no CI: ${s.n} cycle(s))`
    : `${f(s.mean)} [${f(s.ci95Low)}, ${f(s.ci95High)}]`;
}
