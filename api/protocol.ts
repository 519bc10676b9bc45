// Wire protocol v1: every message the agent publishes and the aggregator consumes.
// JSON on the wire; latency sketches travel as base64 of the sketch's versioned binary form.
import { z } from 'zod';
import { sanitizeToken } from './names.ts';
import { isBinaryBatch, parseBinaryBatch } from './protocol-binary.ts';
import { fastSketchMessage } from './protocol-fast.ts';

export const PROTOCOL_VERSION = 1 as const;
export const SUBJECT_ROOT = 'llem.v1';
/** NVML's energy counter moves every ~100 ms: a window shorter than this has coarse energy (DESIGN.md). */
export const SHORT_WINDOW_SECONDS = 5;

/**
 * Plausibility at the door (issue #17 item 2). Every number an agent sends is finite (zod's
 * number refuses NaN and ±Infinity) and bounded, so no sum the aggregator keeps can overflow to
 * Infinity (which JSON writes as null, and a checkpoint holding it would fail its own schema).
 */
/** Wall-clock milliseconds: 0 .. year ~33658. */
const timeMs = z.number().min(0).max(1e15);
/** NVML's energy counter is an unsigned 64-bit count of millijoules. */
const COUNTER_MAX_MJ = 2 ** 64;
/** No GPU draws 100 kW: anything above is a broken reading, not a measurement. */
export const POWER_MAX_WATTS = 100_000;
const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
/** Keys of maps an agent fills (error classes): names, not prose. */
export const MAP_KEY_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/;
const mapKey = z.string().regex(MAP_KEY_PATTERN, { message: 'must be 1-64 letters, digits, _ . : or -' });
/**
 * Error classes by name. zod drops a `__proto__` key from records without a word, which would lose
 * its count; it is refused here instead (JSON.parse makes it an own key, so it can arrive).
 */
const errorClassCounts = z.preprocess(
  (v, ctx) => {
    if (typeof v === 'object' && v !== null && Object.hasOwn(v, '__proto__')) {
      const message = 'the error class "__proto__" is reserved; name the class differently';
      ctx.addIssue({ code: 'custom', message, input: v });
    }
    return v;
  },
  z.record(mapKey, count).refine((r) => Object.keys(r).length <= 64, { message: 'at most 64 error classes' }),
);

/**
 * Latency sketches on the wire (docs/adr/0012): LogHistogram, format byte 0x48 ('H'), version 1.
 * The resolution (finest bucket 2^-10 in ln units, ≈ 0.1%) and the size budget are the protocol's,
 * not the sender's: a sketch with another resolution, over the budget, coarser than the budget
 * requires, or whose header disagrees with its buckets is refused and its run is incomplete.
 */
export const SKETCH_FORMAT = { magic: 0x48, version: 1, finestBits: 10, maxBytes: 4096 } as const;

export const MESSAGE_KINDS = ['hello', 'ready', 'sketch', 'telemetry', 'summary', 'aborted'] as const;
export type MessageKind = (typeof MESSAGE_KINDS)[number];

/** Who published: one agent process = one (run, replica, attempt). Its `seq` starts at 1 and is contiguous. */
const envelope = {
  v: z.literal(PROTOCOL_VERSION),
  namespace: z.string().min(1),
  experimentUid: z.string().min(1),
  runId: z.string().min(1),
  attempt: z.number().int().min(0),
  replica: z.number().int().min(0),
  /** Per-publisher sequence number: 1, 2, 3 ... over all kinds this publisher sent. */
  seq: z.number().int().min(1),
  sentAtMs: timeMs,
  /** True when the numbers come from the simulated GPU and/or mock server. */
  simulated: z.boolean(),
};

export const GpuInfoSchema = z.object({
  index: z.number().int().min(0),
  uuid: z.string(),
  name: z.string(),
  memoryTotalMiB: z.number().min(0).nullable(),
  /** The enforced power limit; the aggregator bounds plausible power by it. */
  powerLimitWatts: z.number().positive().max(POWER_MAX_WATTS).nullable(),
  smClockMaxMhz: z.number().min(0).nullable(),
});
export type GpuInfo = z.infer<typeof GpuInfoSchema>;

export const EnvironmentSchema = z.object({
  hostname: z.string(),
  gpus: z.array(GpuInfoSchema).max(64),
  driverVersion: z.string().nullable(),
  nvmlVersion: z.string().nullable(),
  cudaVersion: z.string().nullable(),
  backend: z.string(),
  backendVersion: z.string().nullable(),
  configHash: z.string(),
  agentVersion: z.string(),
  telemetrySource: z.enum(['nvml', 'simulated']),
});
export type Environment = z.infer<typeof EnvironmentSchema>;

export const HelloMessageSchema = z.object({ ...envelope, kind: z.literal('hello'), environment: EnvironmentSchema });
export const ReadyMessageSchema = z.object({ ...envelope, kind: z.literal('ready') });

/**
 * One serialized sketch on the wire: a base64 string (JSON), or its bytes (a binary batch's member as
 * decoded; JSON cannot carry bytes, so only the binary decoder makes these). Its content is the
 * Aggregator's sketch decoder's to check (ADR 0012, 0013).
 */
const wireSketch = z.union([
  z.string(),
  z.custom<Uint8Array>((x) => x instanceof Uint8Array, 'a sketch is base64 text or its bytes'),
]);

/** Latency sketches for one time slice of the measurement window (deltas: merge them all). */
export const SketchMessageSchema = z
  .object({
    ...envelope,
    kind: z.literal('sketch'),
    slice: count,
    sliceStartMs: timeMs,
    sliceEndMs: timeMs,
    requestsOk: count,
    requestsFailed: count,
    /** Failed requests by error class (timeout, http_5xx, stream_cut, ...). */
    errorClasses: errorClassCounts,
    inputTokens: count,
    outputTokens: count,
    /** Requests of requestsOk that met every SLO target (spec.slo); absent when no SLO is set (ADR 0030). */
    requestsSloMet: count.optional(),
    /**
     * LogHistogram.serialize() (SKETCH_FORMAT): base64 in JSON, the bytes themselves when a binary batch
     * (ADR 0033) carried them, as the consumer hands them on (ADR 0036, amended: no base64 round trip).
     * Values in milliseconds, >= 0 (zeros are counted exactly). Absent when the slice had none.
     */
    sketches: z.object({
      ttftMs: wireSketch.optional(),
      itlMs: wireSketch.optional(),
      e2eMs: wireSketch.optional(),
      tpotMs: wireSketch.optional(),
    }),
  })
  .refine((m) => m.sliceEndMs >= m.sliceStartMs, { message: 'sliceEndMs precedes sliceStartMs', path: ['sliceEndMs'] });

/** Protocol phase boundaries at which the agent records an energy-counter reading per GPU. */
export const MARKS = ['baselineStart', 'baselineEnd', 'windowStart', 'windowEnd'] as const;
export type Mark = (typeof MARKS)[number];

export const PHASES = ['starting', 'baseline', 'warmup', 'ready', 'measuring', 'cooldown', 'done'] as const;
export type Phase = (typeof PHASES)[number];

/** One GPU's reading. `null` = unavailable; `unavailable[field]` says why. */
export const GpuSampleSchema = z.object({
  gpuUuid: z.string().min(1).max(256),
  tMs: timeMs,
  /** NVML total energy counter since driver load, millijoules (monotonic until reset/wrap). */
  energyMillijoules: z.number().min(0).max(COUNTER_MAX_MJ).nullable(),
  powerWatts: z.number().min(0).max(POWER_MAX_WATTS).nullable(),
  utilizationGpuPct: z.number().min(0).max(100).nullable(),
  memoryUsedMiB: z.number().min(0).nullable(),
  smClockMhz: z.number().min(0).nullable(),
  memClockMhz: z.number().min(0).nullable(),
  temperatureC: z.number().min(-273.15).max(1000).nullable(),
  throttleReasons: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).nullable(),
  unavailable: z.record(z.string(), z.string()).optional(),
  /**
   * Marks only: the reading is a counter step edge (tMs = when the counter stepped, energy = its
   * value just after), so a segment between two marks holds exactly the energy of whole ticks.
   */
  tick: z
    .object({
      aligned: z.boolean(),
      /** tMs is known to ± this (half the spacing of the polls around the step). */
      uncertaintyMs: z.number().min(0),
      /** From the protocol boundary to the edge. */
      waitedMs: z.number(),
      /** The counter's step period on this GPU, measured at start; null: not measured. */
      periodMs: z.number().nullable(),
    })
    .optional(),
});
export type GpuSample = z.infer<typeof GpuSampleSchema>;

export const TelemetryMessageSchema = z
  .object({
    ...envelope,
    kind: z.literal('telemetry'),
    phase: z.enum(PHASES),
    /** Set when these readings were taken exactly at a protocol boundary. */
    mark: z.enum(MARKS).optional(),
    /** A batch: several readings per GPU over time, or exactly one per GPU at a mark. */
    samples: z.array(GpuSampleSchema).max(100_000),
  })
  .refine((m) => m.mark === undefined || new Set(m.samples.map((x) => x.gpuUuid)).size === m.samples.length, {
    message: 'the same GPU UUID appears twice in one mark reading',
    path: ['samples'],
  });

export const BackendMetricsSchema = z.object({
  backend: z.string(),
  source: z.string(),
  /**
   * The server's own version (vLLM /version; the PyTorch server's /stats with torch and transformers); null: not
   * exposed.
   */
  version: z.string().nullable().optional(),
  metrics: z.record(
    z.string(),
    z.object({ value: z.number().nullable(), unit: z.string(), reason: z.string().nullable() }),
  ),
});
export type BackendMetrics = z.infer<typeof BackendMetricsSchema>;

/**
 * How much the load generator itself may have added to the latencies it measured (issue #25): the
 * agent's event-loop delay p99, the lag of the loops that read the streams (how long a chunk that
 * reached the socket can wait before it is timed), and in rate mode how late requests left against
 * their schedule. `saturated`: the worst of them passed `thresholdMs`.
 */
export const ClientHealthSchema = z.object({
  eventLoopDelayP99Ms: z.number().nullable(),
  streamReadLagP99Ms: z.number().nullable(),
  /** Rate mode only (null otherwise): actual minus intended send time, p99. */
  schedulingLagP99Ms: z.number().nullable(),
  thresholdMs: z.number(),
  saturated: z.boolean(),
  /** Keep-alive connections opened and used before the window (one per stream slot): the window pays no set-up. */
  connectionsWarmed: z.number().int().min(0),
  streamSlots: z.number().int().min(0),
  /** How window totals were counted: tokens by chunk arrival, requests by completion. */
  tokenAccounting: z.literal('arrival'),
});
export type ClientHealth = z.infer<typeof ClientHealthSchema>;

const clockRange = z.object({ min: z.number(), max: z.number() });
/** GPU settings (power limit, locked clocks) a run asked for and what the driver reported after applying them. */
export const AppliedGpuSettingsSchema = z.object({
  gpuUuid: z.string(),
  requested: z.object({
    powerLimitWatts: z.number().optional(),
    smClockMHz: clockRange.optional(),
    memClockMHz: clockRange.optional(),
  }),
  previous: z.object({ powerLimitWatts: z.number().nullable() }),
  effective: z.object({
    powerLimitWatts: z.number().nullable(),
    enforcedPowerLimitWatts: z.number().nullable(),
    smClockMHz: clockRange.nullable(),
    memClockMHz: clockRange.nullable(),
    smClockNowMHz: z.number().nullable(),
    memClockNowMHz: z.number().nullable(),
  }),
  constraints: z.object({ minPowerLimitWatts: z.number(), maxPowerLimitWatts: z.number() }).nullable(),
  notes: z.array(z.string()),
});
export type AppliedGpuSettingsWire = z.infer<typeof AppliedGpuSettingsSchema>;

export const SummaryMessageSchema = z
  .object({
    ...envelope,
    kind: z.literal('summary'),
    /** Messages this publisher sent before the summary: the summary's own seq is this + 1. */
    messagesBefore: count,
    countsByKind: z.object({ hello: count, ready: count, sketch: count, telemetry: count }),
    requestsOk: count,
    requestsFailed: count,
    inputTokens: count,
    outputTokens: count,
    baselineStartMs: timeMs.nullable(),
    baselineEndMs: timeMs.nullable(),
    windowStartMs: timeMs,
    windowEndMs: timeMs,
    warnings: z.array(z.string()),
    /**
     * Backend-native metrics over the window (vLLM /metrics, the PyTorch server's /stats): each a number or null with a
     * reason.
     */
    backendMetrics: BackendMetricsSchema.optional(),
    client: ClientHealthSchema.optional(),
    /** Power limit / locked clocks applied for this run, requested vs effective, per GPU (absent: none). */
    gpuSettings: z.array(AppliedGpuSettingsSchema).max(64).optional(),
  })
  // Equal bounds are honest: a steady-state window that never opened is empty (and has no requests).
  .refine((m) => m.windowEndMs >= m.windowStartMs, {
    message: 'windowEndMs precedes windowStartMs',
    path: ['windowEndMs'],
  })
  .refine((m) => m.baselineStartMs === null || m.baselineEndMs === null || m.baselineEndMs >= m.baselineStartMs, {
    message: 'baselineEndMs precedes baselineStartMs',
    path: ['baselineEndMs'],
  });

export const AbortedMessageSchema = z.object({
  ...envelope,
  kind: z.literal('aborted'),
  phase: z.enum(PHASES),
  reason: z.string(),
});

export const WireMessageSchema = z.discriminatedUnion('kind', [
  HelloMessageSchema,
  ReadyMessageSchema,
  SketchMessageSchema,
  TelemetryMessageSchema,
  SummaryMessageSchema,
  AbortedMessageSchema,
]);
export type WireMessage = z.infer<typeof WireMessageSchema>;
export type HelloMessage = z.infer<typeof HelloMessageSchema>;
export type SketchMessage = z.infer<typeof SketchMessageSchema>;
export type TelemetryMessage = z.infer<typeof TelemetryMessageSchema>;
export type SummaryMessage = z.infer<typeof SummaryMessageSchema>;
export type AbortedMessage = z.infer<typeof AbortedMessageSchema>;

/** Control: the controller tells every replica of a run to start its measurement window. */
export const StartSignalSchema = z.object({
  v: z.literal(PROTOCOL_VERSION),
  experimentUid: z.string(),
  runId: z.string(),
  attempt: z.number().int().min(0),
  /** Wall-clock time at which replicas begin (a little in the future so they align). */
  startAtMs: z.number(),
});
export type StartSignal = z.infer<typeof StartSignalSchema>;

export interface PublisherKey {
  namespace: string;
  experimentUid: string;
  runId: string;
  attempt: number;
  replica: number;
}

/**
 * Subject token of a batch (ADR 0021): one bus message holding several consecutive wire messages of
 * one publisher, as a JSON array. Each keeps its own seq; the batch has one Nats-Msg-Id.
 */
export const BATCH_KIND = 'batch';
/** Most wire messages in one batch: a consumer refuses a longer array. */
export const MAX_BATCH_MESSAGES = 256;

/** `llem.v1.<ns>.<uid>.<run>.<attempt>.<replica>.<kind>` — every token sanitised. */
export function dataSubject(key: PublisherKey, kind: MessageKind | typeof BATCH_KIND): string {
  return [SUBJECT_ROOT, key.namespace, key.experimentUid, key.runId, String(key.attempt), String(key.replica), kind]
    .map((t, i) => (i === 0 ? t : sanitizeToken(t)))
    .join('.');
}

/** All data of one experiment: what its durable consumer filters on. */
export function experimentSubjectFilter(namespace: string, experimentUid: string): string {
  return `${SUBJECT_ROOT}.${sanitizeToken(namespace)}.${sanitizeToken(experimentUid)}.>`;
}

/** Control subjects live outside the data stream's `llem.v1.>` so they are never stored. */
export const CONTROL_ROOT = 'llem.control.v1';

export function startSubject(namespace: string, experimentUid: string, runId: string): string {
  return [CONTROL_ROOT, sanitizeToken(namespace), sanitizeToken(experimentUid), sanitizeToken(runId), 'start'].join(
    '.',
  );
}

/** Server-side de-duplication id: the same message re-sent after a reconnect is stored once. */
export function messageId(m: Pick<WireMessage, 'experimentUid' | 'runId' | 'attempt' | 'replica' | 'seq'>): string {
  return `${m.experimentUid}/${m.runId}/${m.attempt}/${m.replica}/${m.seq}`;
}

/** De-duplication id of a batch: its first message's id and the last seq it holds (`.../5-9`). */
export function batchMessageId(first: Parameters<typeof messageId>[0], lastSeq: number): string {
  return `${messageId(first)}-${lastSeq}`;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** A sketch message whose sketches are all base64 (bytes, which only binary batches carry, become base64). */
function sketchesAsBase64(m: WireMessage): WireMessage {
  if (m.kind !== 'sketch') return m;
  const s = m.sketches;
  let bytes = false;
  for (const k in s) if (typeof s[k as keyof typeof s] !== 'string') bytes = true;
  if (!bytes) return m;
  const out: Record<string, string | Uint8Array | undefined> = { ...s };
  for (const k in out) {
    const v = out[k];
    if (v instanceof Uint8Array) out[k] = Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
  }
  return { ...m, sketches: out };
}

export function encodeMessage(m: WireMessage): Uint8Array {
  // The same UTF-8 bytes as TextEncoder (JSON.stringify leaves no lone surrogates), in a fraction of
  // its time (~0.5 vs ~1.3 us for a 2.3 KB slice, ADR 0036); a plain Uint8Array view, not a Buffer.
  // JSON carries sketches as base64: a sketch given as bytes (as a binary batch decodes) is turned into it.
  const b = Buffer.from(JSON.stringify(sketchesAsBase64(m)), 'utf8');
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

const OPEN = encoder.encode('[');
const COMMA = encoder.encode(',');
const CLOSE = encoder.encode(']');

/** A batch of already encoded messages (encodeMessage) as one JSON array, without encoding them again. */
export function encodeBatch(encoded: readonly Uint8Array[]): Uint8Array {
  let bytes = 1 + encoded.length;
  for (const e of encoded) bytes += e.length;
  const out = new Uint8Array(bytes);
  out.set(OPEN, 0);
  let at = 1;
  for (const [i, e] of encoded.entries()) {
    if (i > 0) out.set(COMMA, at++);
    out.set(e, at);
    at += e.length;
  }
  out.set(CLOSE, at);
  return out;
}

/**
 * Messages decodeMessage produced (fresh objects, validated against the schema): a consumer that
 * validates again (the Aggregator) can skip the second parse for them. Anything else, including a
 * copy of a decoded message, is validated again.
 */
const decodedMessages = new WeakSet<object>();

export function isDecodedMessage(m: unknown): m is WireMessage {
  return typeof m === 'object' && m !== null && decodedMessages.has(m);
}

/** Parse and validate. Throws ProtocolError-worthy zod errors to the caller via the result. */
export function decodeMessage(data: Uint8Array): { ok: true; message: WireMessage } | { ok: false; error: string } {
  let raw: unknown;
  try {
    raw = JSON.parse(decoder.decode(data));
  } catch (err) {
    return { ok: false, error: `not JSON: ${(err as Error).message}` };
  }
  const parsed = validateWireMessage(raw);
  if (!parsed.success) return { ok: false, error: z.prettifyError(parsed.error) };
  decodedMessages.add(parsed.data);
  return { ok: true, message: parsed.data };
}

/**
 * The wire schema's verdict on a parsed message. Sketch slices, nearly all of the traffic, are
 * checked field by field without the schema library when they have exactly the schema's fields
 * (protocol-fast.ts, ADR 0027); everything else, and every refusal, is the schema's.
 */
export function validateWireMessage(raw: unknown): ReturnType<typeof WireMessageSchema.safeParse> {
  const fast = fastSketchMessage(raw);
  return fast !== null ? { success: true, data: fast } : WireMessageSchema.safeParse(raw);
}

export type DecodedBatch = { ok: true; messages: WireMessage[]; batch: boolean } | { ok: false; error: string };

/**
 * Parse and validate one bus message: a single wire message, or a batch (ADR 0021) of 1 to
 * MAX_BATCH_MESSAGES of them. One bad member refuses the whole bus message (nothing is applied).
 */
export function decodeMessages(data: Uint8Array): DecodedBatch {
  if (isBinaryBatch(data)) {
    const parsed = parseBinaryBatch(data);
    return parsed.ok ? validateMembers(parsed.members) : parsed;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(decoder.decode(data));
  } catch (err) {
    return { ok: false, error: `not JSON: ${(err as Error).message}` };
  }
  if (!Array.isArray(raw)) {
    const parsed = validateWireMessage(raw);
    if (!parsed.success) return { ok: false, error: z.prettifyError(parsed.error) };
    decodedMessages.add(parsed.data);
    return { ok: true, messages: [parsed.data], batch: false };
  }
  if (raw.length === 0 || raw.length > MAX_BATCH_MESSAGES) {
    return { ok: false, error: `a batch holds 1 to ${MAX_BATCH_MESSAGES} messages, this one ${raw.length}` };
  }
  return validateMembers(raw);
}

/** Every member of a batch (the JSON array's, or the binary envelope's rebuilt ones) checked as one message. */
function validateMembers(raw: readonly unknown[]): DecodedBatch {
  const messages: WireMessage[] = [];
  for (const [i, item] of raw.entries()) {
    const parsed = validateWireMessage(item);
    if (!parsed.success) return { ok: false, error: `batch member ${i}: ${z.prettifyError(parsed.error)}` };
    decodedMessages.add(parsed.data);
    messages.push(parsed.data);
  }
  return { ok: true, messages, batch: true };
}
