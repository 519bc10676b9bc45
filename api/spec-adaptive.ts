// Adaptive cycles (issue #22 item 4, ADR 0031): `measurement.cycles` is either a fixed count or
// `{target: {metric, ciHalfWidthPct}, min, max, budget}`: cycles are added to each configuration until
// the 95% CI half-width of `metric` is at most ciHalfWidthPct of its mean, `max` cycles ran, or the GPU
// budget is spent. The decisions themselves are a pure function of recorded results
// (aggregator/adaptive.ts), so a resumed `llem run` and a restarted controller make the same ones.
import { z } from 'zod';
import { posInt } from './spec-parts.ts';

/**
 * Metrics a target may name. Run metrics are the run's own figure; `<latency><Quantile>` is that
 * percentile of the run's latency sketch (e.g. ttftMsP99). Each cycle contributes one value.
 */
export const ADAPTIVE_RUN_METRICS = [
  'joulesPerToken',
  'tokensPerJoule',
  'tokensPerSecond',
  'joulesPerRequest',
] as const;
export const ADAPTIVE_LATENCY_METRICS = [
  'ttftMsP50',
  'ttftMsP90',
  'ttftMsP99',
  'itlMsP50',
  'itlMsP90',
  'itlMsP99',
  'e2eMsP50',
  'e2eMsP90',
  'e2eMsP99',
  'tpotMsP50',
  'tpotMsP99',
] as const;
export const ADAPTIVE_METRICS = [...ADAPTIVE_RUN_METRICS, ...ADAPTIVE_LATENCY_METRICS] as const;
export type AdaptiveMetric = (typeof ADAPTIVE_METRICS)[number];

/** The most cycles one configuration may run (fixed or adaptive). */
export const MAX_CYCLES = 100;

export const AdaptiveCyclesSchema = z
  .strictObject({
    target: z
      .strictObject({
        metric: z
          .enum(ADAPTIVE_METRICS)
          .describe('The figure whose 95% CI must be tight (tokensPerSecond: throughput).'),
        ciHalfWidthPct: z
          .number()
          .gt(0)
          .max(100)
          .describe('Stop once the 95% CI half-width is at most this percentage of the mean.'),
      })
      .describe('When a configuration has enough cycles.'),
    min: posInt
      .min(2)
      .max(MAX_CYCLES)
      .default(3)
      .describe('Cycles every configuration runs before the target is checked (a CI needs 2; 3 is safer).'),
    max: posInt.max(MAX_CYCLES).default(20).describe('Cycles a configuration runs at most.'),
    budget: z
      .strictObject({
        gpuHours: z
          .number()
          .gt(0)
          .describe(
            'GPU time of the whole experiment: each run counts (baseline + window + cool-down) x its GPUs; no configuration starts another cycle once the recorded total reaches it (server start-up and warm-up are not counted).',
          ),
      })
      .optional()
      .describe('Stops adding cycles to every configuration once spent.'),
  })
  .superRefine((a, ctx) => {
    if (a.min > a.max) ctx.addIssue({ code: 'custom', path: ['max'], message: `must be >= min (${a.min})` });
  })
  .describe('Adaptive cycles: add cycles until the CI target is met, max is reached or the budget is spent.');

export type AdaptiveCycles = z.output<typeof AdaptiveCyclesSchema>;

export const CyclesSchema = z
  .union([posInt.max(MAX_CYCLES), AdaptiveCyclesSchema])
  .default(3)
  .describe(
    'Repetitions of every configuration (the CI is computed across them): a number, or {target: {metric, ciHalfWidthPct}, min, max, budget} to add cycles until the CI is tight enough.',
  );
export type CyclesSpec = z.output<typeof CyclesSchema>;

/** The cycles to plan (adaptive: max) and the adaptive rule, if any. */
export function cyclePlan(cycles: CyclesSpec): { maxCycles: number; adaptive: AdaptiveCycles | null } {
  return typeof cycles === 'number'
    ? { maxCycles: cycles, adaptive: null }
    : { maxCycles: cycles.max, adaptive: cycles };
}
