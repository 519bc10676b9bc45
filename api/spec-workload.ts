// The workload of the EnergyExperiment spec: dataset, token-length distributions, sampling, mode.
import { z } from 'zod';
import { cel, Dns1123LabelSchema, exactlyOne, nonNegInt, nonNegNumber, oneOf, posInt } from './spec-parts.ts';
import { LadderSchema } from './spec-ladder.ts';

// ---------------------------------------------------------------- workload

export const TokenDistributionSchema = z
  .strictObject({
    distribution: z.enum(['fixed', 'uniform', 'normal', 'lognormal', 'empirical']).default('fixed'),
    mean: posInt.optional().describe('fixed: the length; normal/lognormal: the mean.'),
    stddev: nonNegNumber.optional(),
    min: posInt.optional().describe('uniform: lower bound; normal/lognormal: clamp (default 1).'),
    max: posInt.optional().describe('uniform: upper bound; normal/lognormal: clamp.'),
    values: z
      .array(posInt)
      .min(1)
      .max(4096)
      .optional()
      .describe("empirical: the token lengths to draw from (e.g. a histogram's bin centres)."),
    weights: z
      .array(z.number().min(0))
      .min(1)
      .max(4096)
      .optional()
      .describe('empirical: relative weight of each value (counts of a histogram); default equal.'),
  })
  .superRefine((d, ctx) => {
    if (d.distribution === 'empirical') return empiricalIssues(d, ctx);
    const need =
      d.distribution === 'uniform'
        ? (['min', 'max'] as const)
        : d.distribution === 'fixed'
          ? (['mean'] as const)
          : (['mean', 'stddev'] as const);
    for (const k of need) {
      if (d[k] === undefined)
        ctx.addIssue({ code: 'custom', path: [k], message: `required for distribution "${d.distribution}"` });
    }
    if (d.min !== undefined && d.max !== undefined && d.min > d.max) {
      ctx.addIssue({ code: 'custom', path: ['max'], message: `must be >= min (${d.min})` });
    }
  })
  .meta(
    cel(
      {
        rule: "self.distribution != 'fixed' || has(self.mean)",
        message: 'mean is required for distribution fixed',
        fieldPath: '.mean',
      },
      {
        rule: "self.distribution != 'empirical' || has(self.values)",
        message: 'values are required for distribution empirical',
        fieldPath: '.values',
      },
      {
        rule: "self.distribution != 'uniform' || (has(self.min) && has(self.max))",
        message: 'min and max are required for distribution uniform',
      },
      {
        rule: "!(self.distribution in ['normal', 'lognormal']) || (has(self.mean) && has(self.stddev))",
        message: 'mean and stddev are required for distributions normal and lognormal',
      },
      {
        rule: '!has(self.min) || !has(self.max) || self.min <= self.max',
        message: 'max must be >= min',
        fieldPath: '.max',
      },
    ),
  );

/** A workload file on a PersistentVolumeClaim: the claim is mounted read-only into the run pod. */
export const WorkloadVolumeSchema = z.strictObject({
  claimName: Dns1123LabelSchema,
  path: z
    .string()
    .min(1)
    // A refinement, not a pattern: the API server's RE2 has no lookahead (zod checks it).
    .refine((p) => !p.startsWith('/') && !p.split('/').includes('..'), {
      message: 'must be a relative path inside the volume, without ..',
    })
    .describe('The file, relative to the volume root.'),
});

function empiricalIssues(
  d: { values?: number[] | undefined; weights?: number[] | undefined },
  ctx: z.RefinementCtx,
): void {
  if (d.values === undefined) {
    ctx.addIssue({ code: 'custom', path: ['values'], message: 'required for distribution "empirical"' });
    return;
  }
  if (d.weights === undefined) return;
  if (d.weights.length !== d.values.length)
    ctx.addIssue({
      code: 'custom',
      path: ['weights'],
      message: `must have one weight per value (${d.values.length} values, ${d.weights.length} weights)`,
    });
  else if (!d.weights.some((w) => w > 0))
    ctx.addIssue({ code: 'custom', path: ['weights'], message: 'must have at least one weight above 0' });
}

export const DatasetSchema = z
  .strictObject({
    synthetic: z
      .strictObject({
        inputTokens: TokenDistributionSchema.prefault({ distribution: 'fixed', mean: 512 }),
        outputTokens: TokenDistributionSchema.prefault({ distribution: 'fixed', mean: 128 }),
        seed: nonNegInt.default(0).describe('Seed for lengths and token ids: the same seed gives the same requests.'),
        sharedPrefix: z
          .strictObject({
            prefixes: posInt.max(10000).describe('Distinct prefixes; each request starts with one, drawn at random.'),
            prefixTokens: posInt.max(131072).describe('Tokens of each prefix (added to the drawn input length).'),
          })
          .optional()
          .describe('Shared-prefix workload (N prefixes x random suffixes): what prefix caching serves.'),
      })
      .optional()
      .describe('Random token ids with lengths drawn from the distributions (default: 512 in, 128 out).'),
    prompts: z.array(z.string().min(1)).min(1).optional().describe('Inline prompts, cycled through in order.'),
    configMapRef: z
      .strictObject({ name: Dns1123LabelSchema, key: z.string().min(1).default('prompts.jsonl') })
      .optional()
      .describe(
        'Prompts from a ConfigMap key in the experiment\'s namespace: JSON lines, each {"prompt": "..."}; output length sampling.maxTokens (default 128). Cluster only: llem run refuses it.',
      ),
  })
  .extend({
    trace: z
      .strictObject({
        file: z.string().min(1).optional().describe('JSONL trace file (llem run; relative to the working directory).'),
        pvc: WorkloadVolumeSchema.optional().describe(
          'The trace on a PersistentVolumeClaim (cluster; mounted read-only).',
        ),
        timeScale: z.number().gt(0).default(1).describe('Multiplies every gap: 2 replays at half speed.'),
      })
      .superRefine(oneOf(['file', 'pvc'], 'workload.dataset.trace'))
      .meta(cel(exactlyOne(['file', 'pvc'], 'workload.dataset.trace')))
      .optional()
      .describe(
        'Replay a request trace: arrival times and input/output lengths, one JSON object a line (llem, Mooncake, Azure LLM inference or BurstGPT field names; docs/workloads.md). llem run only.',
      ),
  })
  .extend({
    conversations: z
      .strictObject({
        file: z
          .string()
          .min(1)
          .optional()
          .describe(
            'JSONL, one {"turns": [{"user", "outputTokens", "thinkTimeMs"}]} a line (llem run; relative to the working directory).',
          ),
        pvc: WorkloadVolumeSchema.optional().describe(
          'The file on a PersistentVolumeClaim (cluster; mounted read-only).',
        ),
      })
      .superRefine(oneOf(['file', 'pvc'], 'workload.dataset.conversations'))
      .meta(cel(exactlyOne(['file', 'pvc'], 'workload.dataset.conversations')))
      .optional()
      .describe(
        "Multi-turn conversations, workload.concurrency at a time: each turn's prompt holds the earlier turns and answers; the next turn leaves thinkTimeMs after the answer. llem run only.",
      ),
  })
  .superRefine(oneOf(['synthetic', 'prompts', 'configMapRef', 'trace', 'conversations'], 'workload.dataset'))
  .meta(cel(exactlyOne(['synthetic', 'prompts', 'configMapRef', 'trace', 'conversations'], 'workload.dataset')));

export const SamplingSchema = z.strictObject({
  temperature: nonNegNumber.default(0).describe('0: greedy decoding.'),
  topP: z.number().gt(0).max(1).default(1),
  maxTokens: posInt
    .optional()
    .describe(
      "Cap on each request's max_tokens; absent: its sampled output length. With inline prompts: their output length (default 128).",
    ),
});

export const WORKLOAD_MODES = ['offline', 'concurrency', 'rate'] as const;

export const WorkloadSchema = z.strictObject({
  dataset: DatasetSchema.prefault({ synthetic: {} }),
  requests: posInt.default(200).describe('Requests in the measurement window (warm-up excluded).'),
  mode: z
    .enum(WORKLOAD_MODES)
    .default('concurrency')
    .describe('offline: all at once; concurrency: closed loop; rate: open-loop Poisson.'),
  concurrency: posInt.default(8).describe('In-flight requests in concurrency mode.'),
  ratePerSecond: z.number().gt(0).optional().describe('Mean arrival rate in rate mode (required there).'),
  sampling: SamplingSchema.prefault({}),
  ignoreEos: z
    .boolean()
    .default(true)
    .describe('Generate exactly the requested output length, whatever the model would stop at.'),
  requestTimeoutSeconds: z
    .number()
    .gt(0)
    .default(120)
    .describe('A request still running after this counts as failed (timeout).'),
  api: z
    .enum(['completions', 'chat'])
    .default('completions')
    .describe('OpenAI endpoint: /v1/completions or /v1/chat/completions.'),
  ladder: LadderSchema.optional(),
});
