// Connection, layout and consumer options of the NATS bus: parsed once with zod, failing fast.
import { z } from 'zod';
import { InvalidInputError } from '../errors.ts';
import { natsUrlProblem } from './nats-env.ts';

const natsUrl = z.string().superRefine((url, ctx) => {
  const problem = natsUrlProblem(url);
  if (problem !== null) ctx.addIssue({ code: 'custom', message: problem });
});

export const NatsTlsSchema = z
  .strictObject({
    /** CA bundle that signed the server certificate (PEM file). */
    caFile: z.string().min(1).optional(),
    /** Client certificate and key for mutual TLS (PEM files); both or neither. */
    certFile: z.string().min(1).optional(),
    keyFile: z.string().min(1).optional(),
    /** Leave true outside tests. */
    rejectUnauthorized: z.boolean().default(true),
  })
  .refine((t) => (t.certFile === undefined) === (t.keyFile === undefined), {
    message: 'certFile and keyFile go together (mutual TLS needs both)',
    path: ['certFile'],
  });

export const NatsLayoutSchema = z.strictObject({
  /** The one file-backed data stream over `llem.v1.>`. */
  streamName: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/)
    .default('LLEM'),
  /** Dead letters (`llem.dlq.v1.>`), kept apart so they never reach a data consumer. */
  deadLetterStreamName: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/)
    .default('LLEM_DLQ'),
  checkpointBucket: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/)
    .default('llem-checkpoints'),
  artifactBucket: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/)
    .default('llem-artifacts'),
  /** Server-side de-duplication window for Nats-Msg-Id; covers any publisher retry. */
  duplicateWindowSeconds: z.number().positive().default(120),
  /** Limits retention: 0 / -1 = unlimited. */
  maxAgeSeconds: z
    .number()
    .min(0)
    .default(7 * 24 * 3600),
  maxBytes: z.number().int().min(-1).default(-1),
  maxMessages: z.number().int().min(-1).default(-1),
  maxMessageBytes: z
    .number()
    .int()
    .min(-1)
    .default(8 * 1024 * 1024),
  replicas: z.number().int().min(1).max(5).default(1),
  storage: z.enum(['file', 'memory']).default('file'),
});

export const NatsConsumerSchema = z.strictObject({
  /** Messages buffered ahead of the in-order handler. */
  maxAckPending: z.number().int().min(1).default(512),
  ackWaitSeconds: z.number().positive().default(30),
  /** First and largest pause between retries of a handler that threw (ms). */
  retryInitialMs: z.number().int().min(1).default(50),
  retryMaxMs: z.number().int().min(1).default(5000),
});

export const NatsBusOptionsSchema = z
  .strictObject({
    servers: z.union([natsUrl, z.array(natsUrl).min(1)]),
    name: z.string().optional(),
    user: z.string().min(1).optional(),
    password: z.string().optional(),
    token: z.string().min(1).optional(),
    /** NKey user seed (starts with SU). */
    nkeySeed: z
      .string()
      .regex(/^SU[A-Z2-7]+$/, 'must be an NKey user seed (SU...)')
      .optional(),
    /** Decentralised-auth credentials file (JWT + seed). */
    credsFile: z.string().min(1).optional(),
    /** The contents of a credentials file (the controller signs its own; ADR 0011). */
    creds: z.string().min(1).optional(),
    tls: NatsTlsSchema.optional(),
    /** Reply subjects prefix; give each role its own so permissions can keep replies private. */
    inboxPrefix: z
      .string()
      .regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/)
      .optional(),
    connectTimeoutMs: z.number().int().positive().default(10_000),
    reconnectWaitMs: z.number().int().positive().default(250),
    /** -1 = keep reconnecting forever (the default: a broker restart must not end an agent). */
    maxReconnectAttempts: z.number().int().min(-1).default(-1),
    /** One publish attempt waits this long for the server's ack. */
    publishTimeoutMs: z.number().int().positive().default(5000),
    /** Retries (same msgId, so never stored twice) stop after this long; keep it below the dedup window. */
    publishRetryMs: z.number().int().min(0).default(60_000),
    layout: NatsLayoutSchema.prefault({}),
    consumer: NatsConsumerSchema.prefault({}),
  })
  .superRefine((o, ctx) => {
    const methods = [
      o.user !== undefined,
      o.token !== undefined,
      o.nkeySeed !== undefined,
      o.credsFile !== undefined,
      o.creds !== undefined,
    ];
    if (methods.filter(Boolean).length > 1) {
      ctx.addIssue({
        code: 'custom',
        path: ['user'],
        message: 'choose one of user/password, token, nkeySeed, credsFile, creds',
      });
    }
    if (o.password !== undefined && o.user === undefined) {
      ctx.addIssue({ code: 'custom', path: ['password'], message: 'password needs user' });
    }
    if (o.layout.duplicateWindowSeconds * 1000 <= o.publishRetryMs) {
      ctx.addIssue({
        code: 'custom',
        path: ['publishRetryMs'],
        message: 'must be shorter than layout.duplicateWindowSeconds, or a late retry could be stored twice',
      });
    }
  });

export type NatsBusOptionsInput = z.input<typeof NatsBusOptionsSchema>;
export type NatsBusOptions = z.output<typeof NatsBusOptionsSchema>;
export type NatsLayout = NatsBusOptions['layout'];

/** Parse bus options; `source` names where they came from (file, flag, env) in the error. */
export function parseNatsBusOptions(input: unknown, source = 'bus options'): NatsBusOptions {
  const parsed = NatsBusOptionsSchema.safeParse(input);
  if (parsed.success) return parsed.data;
  throw new InvalidInputError(
    parsed.error.issues.map((i) => ({ file: source, path: i.path.map(String).join('.'), message: i.message })),
    { cause: parsed.error },
  );
}
