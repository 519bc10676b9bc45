// The Bus over NATS JetStream (cluster mode). See docs/adr for the layout and docs/nats-security.md
// for the per-role permissions this code assumes.
import { setTimeout as sleep } from 'node:timers/promises';
import { headers, PermissionViolationError, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import {
  JetStreamApiError,
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { ObjectStore } from '@nats-io/obj';
import { experimentSubjectFilter } from '../../api/protocol.ts';
import { BusError, CheckpointError } from '../errors.ts';
import { childLogger, type Logger } from '../log.ts';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import {
  decodeCheckpoint,
  decodeCheckpointPointer,
  encodeCheckpoint,
  encodeCheckpointPointer,
} from './checkpoint-codec.ts';
import { connectNats } from './nats-connect.ts';
import { NatsConsumption } from './nats-consumer.ts';
import { JetStreamPublisher, PublishRefusedError } from './nats-publish.ts';
import {
  deadLetterStreamConfig,
  dataStreamConfig,
  ensureArtifactBucket,
  ensureCheckpointBucket,
  ensureStream,
  openArtifactBucket,
  openCheckpointBucket,
} from './nats-layout.ts';
import { parseNatsBusOptions, type NatsBusOptions } from './nats-options.ts';
import {
  assertCheckpointKey,
  assertControlSubject,
  assertDataFilter,
  assertDataSubject,
  belongsToExperiment,
  deadLetterSubject,
  experimentCheckpointKey,
  experimentDeadLetterFilter,
} from './subjects.ts';
import type {
  Bus,
  CheckpointRecord,
  ConsumeOptions,
  Consumption,
  ControlSubscription,
  DeleteExperimentOptions,
  PublishAck,
} from './types.ts';
import type { PublishOptions } from './types.ts';
import { traceHeaders } from './nats-trace-headers.ts';

/** Headers on a dead-lettered copy: where it came from. */
export const DEAD_LETTER_HEADERS = { subject: 'Llem-Original-Subject', streamSeq: 'Llem-Original-Stream-Seq' } as const;

const NOT_FOUND = 10014;

/** Errors a retry cannot fix: the server said no (permissions, limits, bad request). */
function isPermanent(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof PermissionViolationError || e instanceof JetStreamApiError || e instanceof PublishRefusedError)
      return true;
    if (/permissions violation/i.test(e.message)) return true;
  }
  return false;
}

function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

export class NatsBus implements Bus {
  readonly #nc: NatsConnection;
  readonly #js: JetStreamClient;
  readonly #opts: NatsBusOptions;
  readonly #log: Logger;
  readonly #consumptions = new Set<NatsConsumption>();
  #jsm: JetStreamManager | null = null;
  #kv: Promise<KV> | null = null;
  #objects: Promise<ObjectStore> | null = null;
  #deadLettered = 0;
  readonly #publisher: JetStreamPublisher;
  /**
   * JetStream de-duplicates by Nats-Msg-Id across the whole stream, whoever published: a tenant that
   * pre-published another run's predictable id would make the real message be dropped. Every id this
   * connection sends carries 128 random bits no other client knows (retries reuse them, so a retried
   * message is still stored once).
   */
  readonly #msgIdNonce = randomBytes(16).toString('base64url');

  constructor(nc: NatsConnection, opts: NatsBusOptions) {
    this.#nc = nc;
    this.#opts = opts;
    this.#js = jetstream(nc, { timeout: opts.publishTimeoutMs });
    this.#publisher = new JetStreamPublisher(nc, opts.inboxPrefix);
    this.#log = childLogger({ component: 'bus', bus: 'nats' });
    this.#watchConnection();
  }

  /** One watcher per connection; it ends when the connection closes. */
  #watchConnection(): void {
    const statuses = this.#nc.status();
    void (async () => {
      for await (const s of statuses) {
        if (s.type === 'disconnect') for (const c of this.#consumptions) c.interrupt();
        if (s.type === 'error' && s.error instanceof PermissionViolationError && s.error.operation === 'publish')
          this.#publisher.refuse(s.error.subject, s.error);
        if (s.type === 'disconnect' || s.type === 'reconnect')
          this.#log.info({ status: s.type }, 'NATS connection status');
      }
    })().catch((err: unknown) => this.#log.warn({ err }, 'connection status watcher ended'));
  }

  /** The underlying connection, for diagnostics and tests. */
  get connection(): NatsConnection {
    return this.#nc;
  }

  async ensureLayout(): Promise<void> {
    const jsm = await this.#manager();
    const { layout } = this.#opts;
    await ensureStream(jsm, dataStreamConfig(layout));
    await ensureStream(jsm, deadLetterStreamConfig(layout));
    this.#kv = Promise.resolve(await ensureCheckpointBucket(this.#js, layout));
    this.#objects = Promise.resolve(await ensureArtifactBucket(this.#js, layout));
  }

  async publish(subject: string, data: Uint8Array, opts: PublishOptions): Promise<PublishAck> {
    assertDataSubject(subject);
    return await this.#publishWithRetry(subject, data, `${opts.msgId}~${this.#msgIdNonce}`, traceHeaders(opts.headers));
  }

  async #publishWithRetry(
    subject: string,
    data: Uint8Array,
    msgId: string,
    hdrs?: ReturnType<typeof headers>,
  ): Promise<PublishAck> {
    const deadline = Date.now() + this.#opts.publishRetryMs;
    for (let waitMs = 25; ; waitMs = Math.min(waitMs * 2, 1000)) {
      try {
        const ack = await this.#publisher.publish(subject, data, msgId, this.#opts.publishTimeoutMs, hdrs);
        return { streamSeq: ack.seq, duplicate: ack.duplicate };
      } catch (err) {
        // Same msgId on every attempt: if the first one was stored, the retry is answered as a duplicate.
        if (isPermanent(err) || this.#nc.isClosed() || Date.now() + waitMs > deadline) {
          throw new BusError(`publish to ${subject} failed: ${describe(err)}`, { cause: err });
        }
        this.#log.debug({ err, subject }, 'publish failed; retrying with the same msgId');
        await sleep(waitMs);
      }
    }
  }

  async consume(opts: ConsumeOptions): Promise<Consumption> {
    assertDataFilter(opts.filterSubject);
    // Two consumptions of one durable would keep re-creating it under each other.
    await this.#stopDurable(opts.durable);
    const consumption = new NatsConsumption(
      {
        js: this.#js,
        jsm: await this.#manager(),
        streamName: this.#opts.layout.streamName,
        settings: this.#opts.consumer,
        log: this.#log.child({ durable: opts.durable }),
        deadLetter: (m) => this.#deadLetter(m),
      },
      opts,
    );
    try {
      await consumption.start();
    } catch (err) {
      throw new BusError(`cannot create consumer ${opts.durable} on ${opts.filterSubject}: ${describe(err)}`, {
        cause: err,
      });
    }
    this.#consumptions.add(consumption);
    return {
      stop: async () => {
        this.#consumptions.delete(consumption);
        await consumption.stop();
      },
      idle: () => consumption.idle(),
    };
  }

  async #deadLetter(m: JsMsg): Promise<void> {
    const h = headers();
    h.set(DEAD_LETTER_HEADERS.subject, m.subject);
    h.set(DEAD_LETTER_HEADERS.streamSeq, String(m.info.streamSequence));
    const msgId = `${this.#opts.layout.streamName}/${m.info.streamSequence}`;
    const ack = await this.#publishWithRetry(deadLetterSubject(m.subject), m.data, msgId, h);
    if (!ack.duplicate) this.#deadLettered++;
    this.#log.warn({ subject: m.subject, streamSeq: m.info.streamSequence }, 'message moved to dead letters');
  }

  async publishControl(subject: string, data: Uint8Array): Promise<void> {
    assertControlSubject(subject, false);
    this.#nc.publish(subject, data);
    await this.#nc.flush();
  }

  async subscribeControl(subject: string, handler: (data: Uint8Array) => void): Promise<ControlSubscription> {
    assertControlSubject(subject, true);
    const sub: Subscription = this.#nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err !== null) this.#log.error({ err, subject }, 'control subscription failed');
        else handler(msg.data);
      },
    });
    // After the round trip the server has seen the subscription; a permission error arrives before
    // the PONG, so a refused subscription is already closed here.
    await this.#nc.flush();
    if (sub.isClosed()) throw new BusError(`subscription to ${subject} was refused (permissions?)`);
    return {
      unsubscribe: async () => {
        sub.unsubscribe();
        await this.#nc.flush();
      },
    };
  }

  /** Largest checkpoint kept inline in the KV bucket: half the server's message size limit. */
  #inlineLimit(): number {
    return Math.floor((this.#nc.info?.max_payload ?? 1_048_576) / 2);
  }

  /** The object a key's current value points to, if it is a pointer. */
  async #pointedObject(kv: KV, key: string): Promise<string | null> {
    const entry = await kv.get(key);
    if (entry === null || entry.operation !== 'PUT') return null;
    return decodeCheckpointPointer(entry.value, key)?.object ?? null;
  }

  /**
   * Small checkpoints go into the KV bucket as they are. A large experiment's state can pass the
   * server's message size limit (1 MB by default): it is written to the object store first, under a
   * new name, then the KV value is switched to point at it, then the previous object is removed, so
   * a crash at any point leaves the last complete checkpoint readable.
   */
  async putCheckpoint(key: string, record: CheckpointRecord): Promise<void> {
    assertCheckpointKey(key);
    const kv = await this.#checkpoints();
    const encoded = encodeCheckpoint(record);
    const previous = await this.#pointedObject(kv, key).catch(() => null);
    if (encoded.length <= this.#inlineLimit()) {
      await kv.put(key, encoded);
    } else {
      // A fresh name every time, so the object just written is never the one deleted below.
      const object = `${checkpointObjectPrefix(key)}${record.lastStreamSeq}-${randomUUID()}`;
      await (await this.#artifacts()).putBlob({ name: object }, encoded);
      const sha256 = createHash('sha256').update(encoded).digest('hex');
      await kv.put(key, encodeCheckpointPointer({ object, bytes: encoded.length, sha256 }));
    }
    if (previous !== null) await (await this.#artifacts()).delete(previous).catch(() => undefined);
  }

  async getCheckpoint(key: string): Promise<CheckpointRecord | null> {
    assertCheckpointKey(key);
    const entry = await (await this.#checkpoints()).get(key);
    if (entry === null || entry.operation !== 'PUT') return null;
    const pointer = decodeCheckpointPointer(entry.value, key);
    if (pointer === null) return decodeCheckpoint(entry.value, key);
    const blob = await (await this.#artifacts()).getBlob(pointer.object);
    if (blob === null)
      throw new CheckpointError(`checkpoint ${key}: its object ${pointer.object} is missing from the object store`);
    const sha256 = createHash('sha256').update(blob).digest('hex');
    if (blob.length !== pointer.bytes || sha256 !== pointer.sha256) {
      throw new CheckpointError(
        `checkpoint ${key}: object ${pointer.object} does not match its pointer (${blob.length} bytes, sha256 ${sha256.slice(0, 12)})`,
      );
    }
    return decodeCheckpoint(blob, key);
  }

  async putArtifact(name: string, data: Uint8Array): Promise<void> {
    await (await this.#artifacts()).putBlob({ name }, data);
  }

  async getArtifact(name: string): Promise<Uint8Array | null> {
    return await (await this.#artifacts()).getBlob(name);
  }

  async #stopDurable(durable: string): Promise<void> {
    for (const c of [...this.#consumptions]) {
      if (c.durable !== durable) continue;
      this.#consumptions.delete(c);
      await c.stop();
    }
  }

  async deleteExperiment(opts: DeleteExperimentOptions): Promise<void> {
    await this.#stopDurable(opts.durable);
    const jsm = await this.#manager();
    const { streamName, deadLetterStreamName } = this.#opts.layout;
    await jsm.consumers.delete(streamName, opts.durable).catch((err: unknown) => {
      if (!(err instanceof JetStreamApiError && err.code === NOT_FOUND)) throw err;
    });
    await this.#deleteCheckpoints(experimentCheckpointKey(opts.namespace, opts.experimentUid));
    if (opts.purgeMessages) {
      await jsm.streams.purge(streamName, { filter: experimentSubjectFilter(opts.namespace, opts.experimentUid) });
      await jsm.streams.purge(deadLetterStreamName, {
        filter: experimentDeadLetterFilter(opts.namespace, opts.experimentUid),
      });
    }
  }

  async #deleteCheckpoints(experimentKey: string): Promise<void> {
    const kv = await this.#checkpoints();
    // One filter per listing: multi-filter consumers need nats-server 2.10.
    const doomed: string[] = (await kv.get(experimentKey)) === null ? [] : [experimentKey];
    for await (const key of await kv.keys(`${experimentKey}.>`)) {
      if (belongsToExperiment(key, experimentKey)) doomed.push(key);
    }
    for (const key of doomed) await kv.purge(key);
    // Every large-checkpoint object of those keys, also any a crash left without a pointer.
    const objects = await this.#artifacts();
    const prefixes = doomed.map(checkpointObjectPrefix);
    for (const info of await objects.list()) {
      if (prefixes.some((p) => info.name.startsWith(p))) await objects.delete(info.name).catch(() => undefined);
    }
  }

  deadLettered(): number {
    return this.#deadLettered;
  }

  async close(): Promise<void> {
    for (const c of [...this.#consumptions]) await c.stop();
    this.#consumptions.clear();
    this.#publisher.close();
    if (!this.#nc.isClosed()) await this.#nc.drain().catch(() => this.#nc.close());
  }

  async #manager(): Promise<JetStreamManager> {
    this.#jsm ??= await jetstreamManager(this.#nc, { timeout: this.#opts.publishTimeoutMs, checkAPI: false });
    return this.#jsm;
  }

  #checkpoints(): Promise<KV> {
    this.#kv ??= openCheckpointBucket(this.#js, this.#opts.layout);
    return this.#kv;
  }

  #artifacts(): Promise<ObjectStore> {
    this.#objects ??= openArtifactBucket(this.#js, this.#opts.layout);
    return this.#objects;
  }
}

/** Where a key's large checkpoints live in the object store. */
function checkpointObjectPrefix(key: string): string {
  return `checkpoints/${key}/`;
}

/**
 * Connect and return the NATS bus. `options` are parsed with zod (InvalidInputError on bad input);
 * the layout is not created here: the controller calls ensureLayout(), agents only publish.
 */
export async function openNatsBus(options: unknown, source = 'bus options'): Promise<NatsBus> {
  const parsed = parseNatsBusOptions(options, source);
  return new NatsBus(await connectNats(parsed), parsed);
}
