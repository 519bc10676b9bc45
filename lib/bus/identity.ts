// Bus identity (ADR 0011): decentralised NATS JWT auth. One root secret (a random string the chart
// generates) deterministically yields the operator, system-account and llem-account NKeys, so the
// NATS pod (its init container writes the trusted operator and account JWTs) and the controller (it
// signs user JWTs) agree without sharing anything else. The controller issues each run its own user:
// publish only to `llem.v1.<ns>.<uid>.<run>.>`, subscribe only to that run's start subject and to
// reply inboxes. The server checks every publish against the user's JWT, so another namespace,
// another experiment or another run of the same experiment is refused by the server itself.
import { createHash, createHmac } from 'node:crypto';
import { createUser, fromSeed, type KeyPair } from '@nats-io/nkeys';
import { CONTROL_ROOT, SUBJECT_ROOT } from '../../api/protocol.ts';
import { sanitizeToken } from '../../api/names.ts';
import { InvalidInputError } from '../errors.ts';

/** Where the agent's creds file is mounted from the per-run Secret the controller creates. */
export const AGENT_CREDS_KEY = 'nats.creds';
/** The controller's replies (pulled stream messages included) arrive only here. */
export const CONTROLLER_INBOX = '_INBOX_llem_controller';
const MIN_ROOT_SECRET_LENGTH = 32;

// NKey prefix bytes (github.com/nats-io/nkeys): seed, operator, account, user.
const PREFIX = { seed: 18 << 3, operator: 14 << 3, account: 0, user: 20 << 3 } as const;
type Role = 'operator' | 'account';

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

function base32(data: Uint8Array): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of data) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

/** CRC-16/XMODEM, the checksum NKeys append. */
function crc16(data: Uint8Array): number {
  let crc = 0;
  for (const byte of data) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

/** An encoded NKey seed (`SO...`, `SA...`) from 32 raw bytes. */
function encodeSeed(role: Role, raw: Uint8Array): string {
  const rolePrefix = PREFIX[role];
  const body = new Uint8Array(2 + raw.length + 2);
  body[0] = PREFIX.seed | (rolePrefix >> 5);
  body[1] = (rolePrefix & 31) << 3;
  body.set(raw, 2);
  const crc = crc16(body.subarray(0, 2 + raw.length));
  body[body.length - 2] = crc & 0xff;
  body[body.length - 1] = crc >> 8;
  return base32(body);
}

function b64url(data: Uint8Array | string): string {
  return Buffer.from(typeof data === 'string' ? Buffer.from(data, 'utf8') : data).toString('base64url');
}

/** A NATS v2 JWT signed by `issuer` (ed25519-nkey). */
function signJwt(
  issuer: KeyPair,
  subject: string,
  name: string,
  nats: Record<string, unknown>,
  extra: Record<string, unknown> = {},
): string {
  const claims: Record<string, unknown> = {
    iat: Math.floor(Date.now() / 1000),
    iss: issuer.getPublicKey(),
    name,
    sub: subject,
    ...extra,
    nats: { ...nats, version: 2 },
  };
  claims['jti'] = base32(createHash('sha256').update(JSON.stringify(claims)).digest());
  const signed = `${b64url(JSON.stringify({ typ: 'JWT', alg: 'ed25519-nkey' }))}.${b64url(JSON.stringify(claims))}`;
  return `${signed}.${b64url(issuer.sign(new TextEncoder().encode(signed)))}`;
}

/** The `.creds` file format nats clients read (credsAuthenticator, LLEM_NATS_CREDS_FILE). */
export function formatCreds(jwt: string, seed: string): string {
  return [
    '-----BEGIN NATS USER JWT-----',
    jwt,
    '------END NATS USER JWT------',
    '',
    '************************* IMPORTANT *************************',
    'NKEY Seed printed below can be used to sign and prove identity.',
    '',
    '-----BEGIN USER NKEY SEED-----',
    seed,
    '------END USER NKEY SEED------',
    '',
  ].join('\n');
}

/** What one run's agent may do on the bus. */
export interface AgentScope {
  namespace: string;
  experimentUid: string;
  runId: string;
}

/** Subjects a run's agent user may publish to and subscribe to (also used by docs and tests). */
export function agentPermissions(scope: AgentScope): {
  pub: { allow: string[] };
  sub: { allow: string[]; deny: string[] };
} {
  const ns = sanitizeToken(scope.namespace);
  const uid = sanitizeToken(scope.experimentUid);
  const run = sanitizeToken(scope.runId);
  return {
    pub: { allow: [`${SUBJECT_ROOT}.${ns}.${uid}.${run}.>`] },
    // Acks come back on _INBOX.<random>; the controller's private inbox is denied explicitly.
    sub: { allow: [`${CONTROL_ROOT}.${ns}.${uid}.${run}.>`, '_INBOX.>'], deny: [`${CONTROLLER_INBOX}.>`] },
  };
}

const UNLIMITED = { subs: -1, data: -1, payload: -1 };

/** Keys and JWTs derived from one root secret; see the file comment. */
export class BusIssuer {
  readonly #operator: KeyPair;
  readonly #account: KeyPair;
  readonly #system: KeyPair;

  constructor(rootSecret: string, source = 'LLEM_NATS_ISSUER_SECRET') {
    if (rootSecret.length < MIN_ROOT_SECRET_LENGTH) {
      throw new InvalidInputError([
        {
          file: source,
          path: '',
          message: `must hold at least ${MIN_ROOT_SECRET_LENGTH} characters of random data (the chart generates one)`,
        },
      ]);
    }
    const derive = (label: string, role: Role): KeyPair => {
      const raw = createHmac('sha256', rootSecret).update(`llem/nats/v1/${label}`).digest();
      return fromSeed(new TextEncoder().encode(encodeSeed(role, raw)));
    };
    this.#operator = derive('operator', 'operator');
    this.#account = derive('account', 'account');
    this.#system = derive('system-account', 'account');
  }

  get accountPublicKey(): string {
    return this.#account.getPublicKey();
  }

  /** The server's trust section: operator JWT, system account, and both account JWTs preloaded. */
  serverConfig(): string {
    const op = this.#operator;
    const system = this.#system.getPublicKey();
    const account = this.#account.getPublicKey();
    const operatorJwt = signJwt(op, op.getPublicKey(), 'llem', { type: 'operator', system_account: system });
    const systemJwt = signJwt(op, system, 'SYS', {
      type: 'account',
      limits: { ...UNLIMITED, conn: -1, imports: -1, exports: -1, wildcards: true, leaf: -1 },
    });
    const jetstream = { mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1 };
    const limits = { ...UNLIMITED, conn: -1, imports: -1, exports: -1, wildcards: true, leaf: -1, ...jetstream };
    const accountJwt = signJwt(op, account, 'LLEM', { type: 'account', limits });
    return [
      '# Generated by `llem nats-server-config` (ADR 0011): agents and the controller authenticate with',
      '# user JWTs the controller signs; nothing connects without one (no no_auth_user).',
      `operator: ${operatorJwt}`,
      `system_account: ${system}`,
      'resolver: MEMORY',
      'resolver_preload: {',
      `  ${system}: ${systemJwt}`,
      `  ${account}: ${accountJwt}`,
      '}',
      '',
    ].join('\n');
  }

  #userCreds(name: string, permissions: Record<string, unknown>, expiresAtSeconds?: number): string {
    const user = createUser();
    const jwt = signJwt(
      this.#account,
      user.getPublicKey(),
      name,
      { type: 'user', ...UNLIMITED, ...permissions },
      expiresAtSeconds === undefined ? {} : { exp: expiresAtSeconds },
    );
    return formatCreds(jwt, new TextDecoder().decode(user.getSeed()));
  }

  /** The controller: every subject of the llem account (JetStream API, KV, object store, control). */
  controllerCreds(): string {
    return this.#userCreds('llem-controller', {});
  }

  /** One run's agent: its own data and start subjects only (agentPermissions). */
  agentCreds(scope: AgentScope): string {
    return this.#userCreds(`llem-agent-${scope.namespace}-${scope.runId}`, agentPermissions(scope));
  }
}
