// The agent's configuration, parsed once at start-up, from the environment the controller's pod sets:
//
//   LLEM_AGENT_CONFIG      JSON of AgentConfig below (or `llem agent --config FILE`; the file wins).
//   LLEM_NATS_*            the broker (lib/bus/nats-env.ts, shared with `llem controller`). Unset
//                          LLEM_NATS_URL: wire messages are written to stdout as JSON lines (only with
//                          start.mode "immediate"). LLEM_NATS_NAME default llem-agent-<runId>-<replica>.
//   LLEM_NVML_LIBRARY      NVML library path (default libnvidia-ml.so.1).
//   CUDA_VISIBLE_DEVICES, NVIDIA_VISIBLE_DEVICES   which GPUs are measured (see telemetry/visible-devices.ts).
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { natsOptionsFromEnv, type NatsEnv } from '../lib/bus/nats-env.ts';
import { MARKS } from '../api/protocol.ts';
import { InvalidInputError, type InputIssue } from '../lib/errors.ts';
import type { VisibleDevicesEnv } from './telemetry/visible-devices.ts';
import { parseTrace, type TraceRequest } from './load/trace.ts';
import { parseConversations, type Conversation } from './load/conversation.ts';

export type { NatsEnv };

const posInt = z.number().int().min(1);
const nonNeg = z.number().min(0);

const TokenDistributionSchema = z.union([
  posInt,
  z.strictObject({
    distribution: z.enum(['fixed', 'uniform', 'normal', 'lognormal', 'empirical']).default('fixed'),
    mean: posInt.optional(),
    values: z.array(posInt).min(1).optional(),
    weights: z.array(z.number().min(0)).min(1).optional(),
    stddev: nonNeg.optional(),
    min: posInt.optional(),
    max: posInt.optional(),
  }),
]);

const SloTargetSchema = z.strictObject({ p: z.number().gt(0).max(100), ms: z.number().gt(0) });

export const AgentConfigSchema = z.strictObject({
  publisher: z.strictObject({
    namespace: z.string().min(1),
    experimentUid: z.string().min(1),
    runId: z.string().min(1),
    attempt: z.number().int().min(0).default(0),
    replica: z.number().int().min(0).default(0),
  }),
  backend: z
    .strictObject({
      name: z.string().min(1).default('unknown'),
      version: z.string().nullable().default(null),
      baseUrl: z.url().default('http://127.0.0.1:8000'),
      readinessPath: z.string().startsWith('/').default('/health'),
      readinessTimeoutSeconds: z.number().gt(0).default(900),
      /** SIGTERM -> SIGKILL grace for the backend's process group when the agent stops it. */
      shutdownGraceSeconds: z.number().gt(0).max(600).default(5),
      /** The backend's own metrics endpoint (vLLM /metrics, PyTorch /stats), scraped over the window; null: none. */
      metrics: z
        .strictObject({ path: z.string().startsWith('/'), format: z.enum(['prometheus', 'llem-stats']) })
        .nullable()
        .default(null),
    })
    .prefault({}),
  /** Model name sent in requests (the backend's served model name). */
  model: z.string().min(1),
  configHash: z.string().default(''),
  /** W3C traceparent of the runtime's run-attempt span (OpenTelemetry); the agent's spans are its children. */
  traceparent: z
    .string()
    .regex(/^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/)
    .optional(),
  workload: z
    .strictObject({
      api: z.enum(['completions', 'chat']).default('completions'),
      mode: z.enum(['offline', 'concurrency', 'rate']).default('concurrency'),
      requests: posInt.default(200),
      concurrency: posInt.default(8),
      ratePerSecond: z.number().gt(0).default(1),
      inputTokens: TokenDistributionSchema.default(512),
      outputTokens: TokenDistributionSchema.default(128),
      seed: z.number().int().min(0).default(0),
      prompts: z.array(z.string().min(1)).min(1).optional(),
      /** JSON lines, each an object with a "prompt" string (a mounted ConfigMap key); read at start into `prompts`. */
      promptsFile: z.string().min(1).optional(),
      /** A JSONL request trace (agent/load/trace.ts), replayed with its timing; read at start into `trace`. */
      traceFile: z.string().min(1).optional(),
      traceTimeScale: z.number().gt(0).default(1),
      /** Multi-turn conversations (agent/load/conversation.ts); read at start. */
      conversationsFile: z.string().min(1).optional(),
      sharedPrefix: z.strictObject({ prefixes: posInt, prefixTokens: posInt }).optional(),
      ignoreEos: z.boolean().default(true),
      temperature: nonNeg.default(0),
      topP: z.number().gt(0).max(1).default(1),
      /** Cap on each request's output length; with inline prompts, their output length. */
      maxTokens: posInt.optional(),
      requestTimeoutSeconds: z.number().gt(0).default(120),
    })
    .prefault({}),
  measurement: z
    .strictObject({
      warmupRequests: z.number().int().min(0).default(8),
      baselineSeconds: nonNeg.default(30),
      sampleIntervalMs: z.number().int().min(10).max(60_000).default(100),
      /** Windows shorter than this are flagged in the summary's warnings. */
      minWindowSeconds: nonNeg.default(5),
      /** Keep issuing requests until minWindowSeconds have passed, instead of only flagging. */
      extendToMinWindow: z.boolean().default(false),
      cooldownSeconds: nonNeg.default(10),
      /** Window from saturation to the first drain (ML.ENERGY style) instead of the whole workload. */
      steadyState: z.boolean().default(false),
      sliceMs: z.number().int().min(100).default(1000),
      telemetryBatchMs: z.number().int().min(50).default(1000),
    })
    .prefault({}),
  start: z
    .strictObject({
      /** signal: wait for the controller's StartSignal; immediate: local mode, no controller. */
      mode: z.enum(['signal', 'immediate']).default('signal'),
      timeoutSeconds: z.number().gt(0).default(600),
    })
    .prefault({}),
  telemetry: z
    .strictObject({
      source: z.enum(['nvml', 'simulated']).default('nvml'),
      simulated: z
        .strictObject({
          gpuCount: posInt.optional(),
          /** Machine-wide index of the first simulated GPU (replica r: r x gpusPerRun), so replicas' UUIDs differ. */
          firstDevice: z.number().int().min(0).max(4096).optional(),
          /** Constant power per simulated GPU by machine-wide index (W); absent: the load model. */
          deviceWatts: z.array(nonNeg).max(4096).optional(),
          idleWatts: nonNeg.optional(),
          maxWatts: nonNeg.optional(),
          saturationInFlight: posInt.optional(),
          counterTickMs: nonNeg.optional(),
          throttleReasons: z.number().int().min(0).optional(),
          smClockMhz: nonNeg.optional(),
          processes: z.array(z.strictObject({ pid: posInt, usedMemoryMiB: nonNeg.optional() })).optional(),
          stallAtMark: z.strictObject({ mark: z.enum(MARKS), ms: nonNeg }).optional(),
        })
        .optional(),
      /** placement.gpusPerRun: the visible GPU count must match before anything is measured. */
      expectedGpus: posInt.optional(),
      /** exclusive: MIG refused; wholeDevice: a MIG slice is measured as its whole parent GPU, with a warning. */
      attribution: z.enum(['exclusive', 'wholeDevice']).default('exclusive'),
      /** Another process on a measured GPU fails the run (else: a warning). */
      requireExclusiveGpu: z.boolean().default(true),
      minClockFraction: z.number().min(0).max(1).default(0.8),
      /** Marks wait for the energy counter's next step edge (agent/telemetry/ticks.ts). */
      tickAlign: z.boolean().default(true),
      /** A mark whose NVML calls take longer than this aborts the run. */
      markTimeoutSeconds: z.number().gt(0).default(10),
    })
    .prefault({}),
  /**
   * GPU settings for this run (spec.gpu of its configuration). `permitted`: the runtime allows changing
   * them (llem run: always; cluster: chart value gpuControl.enabled and spec.gpu.allowDeviceControl).
   */
  gpu: z
    .strictObject({
      powerLimitWatts: z.number().int().min(1).optional(),
      smClockMHz: z.strictObject({ min: posInt, max: posInt }).optional(),
      memClockMHz: z.strictObject({ min: posInt, max: posInt }).optional(),
      permitted: z.boolean().default(false),
    })
    .prefault({}),
  /** Latency SLO targets (spec.slo): every slice counts the requests that met all of them (agent/slo.ts). */
  slo: z
    .strictObject({
      ttftMs: SloTargetSchema.optional(),
      itlMs: SloTargetSchema.optional(),
      e2eMs: SloTargetSchema.optional(),
    })
    .optional(),
  /** Files the backend reads at start (trtllm-serve's extra options YAML): written before CMD starts. */
  files: z
    .array(
      z.strictObject({
        path: z.string().startsWith('/', 'must be an absolute path'),
        content: z.string(),
      }),
    )
    .optional(),
});

export type AgentConfig = z.output<typeof AgentConfigSchema>;
export type AgentConfigInput = z.input<typeof AgentConfigSchema>;

export interface AgentEnvironment {
  config: AgentConfig;
  /** null: no broker configured. */
  nats: NatsEnv | null;
  visibility: VisibleDevicesEnv;
  nvmlLibrary: string;
}

function issuesOf(err: z.ZodError, file: string): InputIssue[] {
  return err.issues.map((i) => ({ file, path: i.path.join('.'), message: i.message }));
}

export function parseAgentConfig(input: unknown, source: string): AgentConfig {
  const parsed = AgentConfigSchema.safeParse(input);
  if (!parsed.success) throw new InvalidInputError(issuesOf(parsed.error, source));
  return parsed.data;
}

function parseJson(text: string, source: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new InvalidInputError([{ file: source, path: '', message: `not valid JSON (${(err as Error).message})` }]);
  }
}

/**
 * Everything the agent reads from its environment, read once. `configFile` (from --config) takes
 * precedence over LLEM_AGENT_CONFIG.
 */
export function loadAgentEnvironment(env: NodeJS.ProcessEnv, configFile?: string): AgentEnvironment {
  let raw: unknown;
  let source: string;
  if (configFile !== undefined) {
    source = configFile;
    let text: string;
    try {
      text = readFileSync(configFile, 'utf8');
    } catch (err) {
      throw new InvalidInputError([{ file: configFile, path: '', message: `cannot read (${(err as Error).message})` }]);
    }
    raw = parseJson(text, source);
  } else {
    source = 'LLEM_AGENT_CONFIG';
    const text = env['LLEM_AGENT_CONFIG'];
    if (text === undefined || text.trim() === '') {
      throw new InvalidInputError([
        {
          file: source,
          path: '',
          message: 'not set: pass --config FILE or set LLEM_AGENT_CONFIG to the agent config JSON',
        },
      ]);
    }
    raw = parseJson(text, source);
  }
  const config = parseAgentConfig(raw, source);
  readWorkloadFiles(config);
  const nats = natsOptionsFromEnv(env);
  if (nats === null && config.start.mode === 'signal') {
    throw new InvalidInputError([
      {
        file: 'LLEM_NATS_URL',
        path: '',
        message:
          'not set, but start.mode is "signal": the start signal arrives over NATS (set LLEM_NATS_URL, or start.mode "immediate")',
      },
    ]);
  }
  return { config, nats, ...gpuEnvironment(env) };
}

/** The workload's files (prompts, trace), read once at start; bad content is an InvalidInputError naming file:line. */
export function readWorkloadFiles(config: AgentConfig): AgentConfig & { trace?: TraceRequest[] } {
  const w = config.workload;
  if (w.promptsFile !== undefined) w.prompts = readPromptsFile(w.promptsFile);
  if (w.traceFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(w.traceFile, 'utf8');
    } catch (err) {
      const message = `cannot read the trace file (${(err as Error).message}); check workload.dataset.trace.file`;
      throw new InvalidInputError([{ file: w.traceFile, path: '', message }]);
    }
    traces.set(config, parseTrace(text, w.traceFile));
  }
  if (w.conversationsFile !== undefined)
    conversations.set(
      config,
      parseConversations(readWorkloadFile(w.conversationsFile, 'conversations'), w.conversationsFile),
    );
  return config;
}

function readWorkloadFile(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const message = `cannot read the ${what} file (${(err as Error).message}); check workload.dataset.${what}.file`;
    throw new InvalidInputError([{ file, path: '', message }]);
  }
}

const conversations = new WeakMap<AgentConfig, Conversation[]>();

/** The conversations readWorkloadFiles read for this config, if any. */
export function conversationsOf(config: AgentConfig): Conversation[] | undefined {
  return conversations.get(config);
}

const traces = new WeakMap<AgentConfig, TraceRequest[]>();

/** The trace readWorkloadFiles read for this config, if any. */
export function traceOf(config: AgentConfig): TraceRequest[] | undefined {
  return traces.get(config);
}

/** Prompts from a JSON-lines file (workload.dataset.configMapRef): one {"prompt": "..."} per line. */
export function readPromptsFile(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new InvalidInputError([
      {
        file,
        path: '',
        message: `cannot read the prompts file (${(err as Error).message}); check workload.dataset.configMapRef's name and key`,
      },
    ]);
  }
  const prompts: string[] = [];
  const issues: InputIssue[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch {
      issues.push({ file, path: `line ${i + 1}`, message: 'not a JSON object: each line must be {"prompt": "..."}' });
      return;
    }
    const prompt = typeof row === 'object' && row !== null ? (row as { prompt?: unknown }).prompt : undefined;
    if (typeof prompt === 'string' && prompt.trim() !== '') prompts.push(prompt);
    else issues.push({ file, path: `line ${i + 1}`, message: 'has no non-empty "prompt" string' });
  });
  if (issues.length === 0 && prompts.length === 0)
    issues.push({ file, path: '', message: 'holds no prompts (one {"prompt": "..."} per line)' });
  if (issues.length > 0) throw new InvalidInputError(issues.slice(0, 20));
  return prompts;
}

/** The GPU-related variables alone (also what `llem gpu-info` reads). */
export function gpuEnvironment(env: NodeJS.ProcessEnv): Pick<AgentEnvironment, 'visibility' | 'nvmlLibrary'> {
  return {
    visibility: {
      cudaVisibleDevices: env['CUDA_VISIBLE_DEVICES'],
      nvidiaVisibleDevices: env['NVIDIA_VISIBLE_DEVICES'],
    },
    nvmlLibrary: env['LLEM_NVML_LIBRARY'] ?? 'libnvidia-ml.so.1',
  };
}
