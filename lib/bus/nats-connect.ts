// Turns parsed bus options into a NATS connection: one auth method, optional TLS, endless reconnects.
import { readFileSync } from 'node:fs';
import {
  connect,
  credsAuthenticator,
  nkeyAuthenticator,
  type NatsConnection,
  type NodeConnectionOptions,
} from '@nats-io/transport-node';
import { BusError } from '../errors.ts';
import type { NatsBusOptions } from './nats-options.ts';

function readPem(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new BusError(`cannot read ${what} ${file}: ${(err as Error).message}`, { cause: err });
  }
}

function tlsOptions(tls: NonNullable<NatsBusOptions['tls']>): NonNullable<NodeConnectionOptions['tls']> {
  const out: NonNullable<NodeConnectionOptions['tls']> = { rejectUnauthorized: tls.rejectUnauthorized };
  // Contents rather than paths: the client reads files lazily, so a typo would surface only at connect.
  if (tls.caFile !== undefined) out.ca = readPem(tls.caFile, 'TLS CA file');
  if (tls.certFile !== undefined) out.cert = readPem(tls.certFile, 'TLS certificate file');
  if (tls.keyFile !== undefined) out.key = readPem(tls.keyFile, 'TLS key file');
  return out;
}

function authOptions(o: NatsBusOptions): Partial<NodeConnectionOptions> {
  if (o.user !== undefined) return { user: o.user, pass: o.password ?? '' };
  if (o.token !== undefined) return { token: o.token };
  if (o.nkeySeed !== undefined) return { authenticator: nkeyAuthenticator(new TextEncoder().encode(o.nkeySeed)) };
  if (o.credsFile !== undefined) {
    const creds = new Uint8Array(readFileSync(o.credsFile));
    return { authenticator: credsAuthenticator(creds) };
  }
  if (o.creds !== undefined) return { authenticator: credsAuthenticator(new TextEncoder().encode(o.creds)) };
  return {};
}

export function connectionOptions(o: NatsBusOptions): NodeConnectionOptions {
  const base: NodeConnectionOptions = {
    servers: o.servers,
    timeout: o.connectTimeoutMs,
    reconnectTimeWait: o.reconnectWaitMs,
    reconnectJitter: Math.min(100, o.reconnectWaitMs),
    maxReconnectAttempts: o.maxReconnectAttempts,
    waitOnFirstConnect: false,
    ...authOptions(o),
  };
  if (o.name !== undefined) base.name = o.name;
  if (o.inboxPrefix !== undefined) base.inboxPrefix = o.inboxPrefix;
  if (o.tls !== undefined) base.tls = tlsOptions(o.tls);
  return base;
}

export async function connectNats(o: NatsBusOptions): Promise<NatsConnection> {
  const servers = Array.isArray(o.servers) ? o.servers.join(', ') : o.servers;
  try {
    return await connect(connectionOptions(o));
  } catch (err) {
    throw new BusError(`cannot connect to NATS at ${servers}: ${(err as Error).message}`, { cause: err });
  }
}
