// The load ladder (issue #22 item 1) and service-level objectives (item 2) of the EnergyExperiment
// spec. Kept apart from spec-workload.ts so the ladder's expansion (api/ladder.ts) has one home.
import { z } from 'zod';
import { cel, nonNegNumber, posInt } from './spec-parts.ts';

export const LADDER_MODES = ['rate', 'concurrency'] as const;
export type LadderMode = (typeof LADDER_MODES)[number];
export const MAX_LADDER_STEPS = 32;

export const LadderSchema = z
  .strictObject({
    mode: z
      .enum(LADDER_MODES)
      .describe('rate: open-loop Poisson arrivals per second; concurrency: closed-loop in-flight requests.'),
    start: z.number().gt(0).describe('Load of the first step (requests/s, or in-flight requests: an integer).'),
    factor: z
      .number()
      .gt(1)
      .max(100)
      .optional()
      .describe('Geometric steps: step k runs start x factor^k. Exactly one of factor and step.'),
    step: z
      .number()
      .gt(0)
      .optional()
      .describe('Arithmetic steps: step k runs start + k x step. Exactly one of factor and step.'),
    maxSteps: posInt
      .min(2)
      .max(MAX_LADDER_STEPS)
      .default(8)
      .describe('Most steps; the ladder stops earlier at saturation.'),
    saturationTolerancePct: nonNegNumber
      .max(100)
      .default(5)
      .describe(
        "Saturated: a step's mean tokens/s is less than (1 + this/100) x the best earlier step's (throughput stopped rising), or a latency SLO broke.",
      ),
    patience: posInt
      .max(8)
      .default(1)
      .describe(
        'Consecutive non-rising steps needed to call saturation (2+ keeps one noisy step from ending the ladder).',
      ),
  })
  .superRefine((l, ctx) => {
    if ((l.factor === undefined) === (l.step === undefined))
      ctx.addIssue({
        code: 'custom',
        path: [l.factor === undefined ? 'factor' : 'step'],
        message: 'set exactly one of factor and step (factor: geometric steps; step: arithmetic steps)',
      });
    if (l.mode === 'concurrency' && !Number.isInteger(l.start))
      ctx.addIssue({
        code: 'custom',
        path: ['start'],
        message: `must be an integer in concurrency mode (got ${l.start})`,
      });
  })
  .describe(
    'Load ladder: the configuration runs once per step at rising load until saturation; workload.mode, ratePerSecond and concurrency come from the step.',
  )
  .meta(
    cel(
      { rule: 'has(self.factor) != has(self.step)', message: 'set exactly one of factor and step' },
      {
        rule: "self.mode != 'concurrency' || self.start == double(int(self.start))",
        message: 'start must be an integer in concurrency mode',
        fieldPath: '.start',
      },
    ),
  );
export type LadderSpec = z.output<typeof LadderSchema>;

export const SloTargetSchema = z.strictObject({
  p: z
    .number()
    .gt(0)
    .max(100)
    .default(99)
    .describe('Percentile the target applies to (99: 99% of requests, or of inter-token gaps, within ms).'),
  ms: z.number().gt(0).describe('Target in milliseconds.'),
});
export type SloTarget = z.output<typeof SloTargetSchema>;

export const SLO_METRICS = ['ttftMs', 'itlMs', 'e2eMs'] as const;
export type SloMetric = (typeof SLO_METRICS)[number];

export const SloSchema = z
  .strictObject({
    ttftMs: SloTargetSchema.optional().describe('Time to first token.'),
    itlMs: SloTargetSchema.optional().describe('Inter-token latency (per gap).'),
    e2eMs: SloTargetSchema.optional().describe('End-to-end request latency.'),
  })
  .superRefine((s, ctx) => {
    if (SLO_METRICS.every((k) => s[k] === undefined))
      ctx.addIssue({ code: 'custom', message: 'set at least one of ttftMs, itlMs, e2eMs' });
  })
  .describe(
    'Latency service-level objectives: a request meets them when it succeeded, its TTFT and E2E are within target and at least p% of its own inter-token gaps are; a run or configuration meets them when the p-th percentile of each metric is within target. Goodput: SLO-met requests per second.',
  )
  .meta(
    cel({
      rule: 'has(self.ttftMs) || has(self.itlMs) || has(self.e2eMs)',
      message: 'set at least one of ttftMs, itlMs, e2eMs',
    }),
  );
export type SloSpec = z.output<typeof SloSchema>;
