// The NATS connection settings both roles read from their environment (the chart and the pod
// builder set them), parsed once with zod. Each issue names the variable that is wrong.
//
//   LLEM_NATS_URL          server URL(s), comma-separated (nats://host:4222, tls://host:4222)
//   LLEM_NATS_CREDS_FILE | LLEM_NATS_TOKEN | LLEM_NATS_USER + LLEM_NATS_PASSWORD   one auth method
//   LLEM_NATS_CA_FILE, LLEM_NATS_CERT_FILE + LLEM_NATS_KEY_FILE                     TLS (optional)
//   LLEM_NATS_NAME         connection name (optional)
import { accessSync, constants } from 'node:fs';
import { z } from 'zod';
import { InvalidInputError } from '../errors.ts';

/** Connection settings in the shape `openNatsBus` takes (spread them into its options). */
export interface NatsEnv {
  servers: string[];
  credsFile?: string;
  token?: string;
  user?: string;
  password?: string;
  tls?: { caFile?: string; certFile?: string; keyFile?: string };
  name?: string;
}

const URL_PATTERN = /^(nats|tls|ws|wss):\/\/[^\s]+$/;
/** `scheme://anything@host`: a user, password or token written into the URL. */
const EMBEDDED_CREDENTIALS = /^[a-z]+:\/\/[^/?#]*@/i;

/**
 * What is wrong with one NATS server URL, or null. The URL itself is never repeated in the message:
 * it may hold a password, and messages reach logs and Kubernetes Events.
 */
export function natsUrlProblem(url: string): string | null {
  if (EMBEDDED_CREDENTIALS.test(url)) {
    return 'must not embed credentials (user:password@ or token@): put them in a Secret and set LLEM_NATS_USER + LLEM_NATS_PASSWORD, LLEM_NATS_TOKEN or LLEM_NATS_CREDS_FILE from it (chart: nats.external.existingSecret with userKey/passwordKey, tokenKey or credsKey)';
  }
  if (!URL_PATTERN.test(url)) return 'must be a URL such as nats://host:4222 or tls://host:4222';
  return null;
}
/** Unset and empty are the same thing in a pod spec. */
const optional = z.preprocess((v) => (v === '' ? undefined : v), z.string().optional());

const NatsEnvSchema = z
  .object({
    LLEM_NATS_URL: z.string().transform((s, ctx) => {
      const servers = s
        .split(',')
        .map((x) => x.trim())
        .filter((x) => x !== '');
      servers.forEach((url, i) => {
        const problem = natsUrlProblem(url);
        if (problem !== null) ctx.addIssue({ code: 'custom', message: `server ${i + 1} ${problem}` });
      });
      if (servers.length === 0)
        ctx.addIssue({ code: 'custom', message: 'names no server: set it to a URL such as nats://host:4222' });
      return servers;
    }),
    LLEM_NATS_CREDS_FILE: optional,
    LLEM_NATS_TOKEN: optional,
    LLEM_NATS_USER: optional,
    LLEM_NATS_PASSWORD: optional,
    LLEM_NATS_CA_FILE: optional,
    LLEM_NATS_CERT_FILE: optional,
    LLEM_NATS_KEY_FILE: optional,
    LLEM_NATS_NAME: optional,
  })
  .superRefine((e, ctx) => {
    const methods = (['LLEM_NATS_CREDS_FILE', 'LLEM_NATS_TOKEN', 'LLEM_NATS_USER'] as const).filter(
      (k) => e[k] !== undefined,
    );
    if (methods.length > 1) {
      ctx.addIssue({
        code: 'custom',
        path: [methods[1] ?? ''],
        message: `choose one auth method: ${methods.join(' and ')} are both set (credentials file, token, or user + password)`,
      });
    }
    if (e.LLEM_NATS_PASSWORD !== undefined && e.LLEM_NATS_USER === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['LLEM_NATS_PASSWORD'],
        message: 'is set without LLEM_NATS_USER: set both, or neither',
      });
    }
    // A named file must be readable now, not discovered missing when the connection is attempted.
    for (const k of [
      'LLEM_NATS_CREDS_FILE',
      'LLEM_NATS_CA_FILE',
      'LLEM_NATS_CERT_FILE',
      'LLEM_NATS_KEY_FILE',
    ] as const) {
      const file = e[k];
      if (file === undefined) continue;
      try {
        accessSync(file, constants.R_OK);
      } catch (err) {
        ctx.addIssue({
          code: 'custom',
          path: [k],
          message: `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'}): check the path and the mounted secret`,
        });
      }
    }
    if ((e.LLEM_NATS_CERT_FILE === undefined) !== (e.LLEM_NATS_KEY_FILE === undefined)) {
      const missing = e.LLEM_NATS_CERT_FILE === undefined ? 'LLEM_NATS_CERT_FILE' : 'LLEM_NATS_KEY_FILE';
      ctx.addIssue({
        code: 'custom',
        path: [missing],
        message: 'not set: mutual TLS needs both LLEM_NATS_CERT_FILE and LLEM_NATS_KEY_FILE',
      });
    }
  });

/** Drops the unset keys (exactOptionalPropertyTypes: absent, never undefined). */
function defined<T extends Record<string, string | undefined>>(o: T): { [K in keyof T]?: string } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as { [K in keyof T]?: string };
}

/**
 * The NATS settings in `env`, or null when LLEM_NATS_URL is unset or empty (no broker).
 * Throws InvalidInputError naming the variable on a bad URL or a bad combination.
 */
export function natsOptionsFromEnv(env: Readonly<Record<string, string | undefined>>): NatsEnv | null {
  if ((env['LLEM_NATS_URL'] ?? '').trim() === '') return null;
  const parsed = NatsEnvSchema.safeParse(env);
  if (!parsed.success) {
    throw new InvalidInputError(
      parsed.error.issues.map((i) => ({ file: String(i.path[0] ?? 'LLEM_NATS_*'), path: '', message: i.message })),
      { cause: parsed.error },
    );
  }
  const e = parsed.data;
  const tls = defined({ caFile: e.LLEM_NATS_CA_FILE, certFile: e.LLEM_NATS_CERT_FILE, keyFile: e.LLEM_NATS_KEY_FILE });
  return {
    servers: e.LLEM_NATS_URL,
    ...defined({
      credsFile: e.LLEM_NATS_CREDS_FILE,
      token: e.LLEM_NATS_TOKEN,
      user: e.LLEM_NATS_USER,
      password: e.LLEM_NATS_PASSWORD,
      name: e.LLEM_NATS_NAME,
    }),
    ...(Object.keys(tls).length > 0 ? { tls } : {}),
  };
}
