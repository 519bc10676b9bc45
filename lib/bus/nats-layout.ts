// The JetStream layout, created idempotently: data stream, dead-letter stream, KV, object store.
import {
  DiscardPolicy,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  type JetStreamClient,
  type JetStreamManager,
  type StreamConfig,
} from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { Objm, type ObjectStore } from '@nats-io/obj';
import { SUBJECT_ROOT } from '../../api/protocol.ts';
import { DEAD_LETTER_ROOT } from './subjects.ts';
import type { NatsLayout } from './nats-options.ts';

const STREAM_NAME_IN_USE = 10058;
const NANOS_PER_SECOND = 1_000_000_000;

function storage(layout: NatsLayout): StorageType {
  return layout.storage === 'file' ? StorageType.File : StorageType.Memory;
}

/** Limits retention: the checkpoint, not an ack, decides what the aggregator still needs to re-read. */
export function dataStreamConfig(layout: NatsLayout): Partial<StreamConfig> & { name: string } {
  return {
    name: layout.streamName,
    subjects: [`${SUBJECT_ROOT}.>`],
    retention: RetentionPolicy.Limits,
    storage: storage(layout),
    discard: DiscardPolicy.Old,
    num_replicas: layout.replicas,
    duplicate_window: layout.duplicateWindowSeconds * NANOS_PER_SECOND,
    max_age: layout.maxAgeSeconds * NANOS_PER_SECOND,
    max_bytes: layout.maxBytes,
    max_msgs: layout.maxMessages,
    max_msg_size: layout.maxMessageBytes,
  };
}

export function deadLetterStreamConfig(layout: NatsLayout): Partial<StreamConfig> & { name: string } {
  return {
    ...dataStreamConfig(layout),
    name: layout.deadLetterStreamName,
    subjects: [`${DEAD_LETTER_ROOT}.>`],
  };
}

/** Add the stream, or bring an existing one's limits in line with the configuration. */
export async function ensureStream(
  jsm: JetStreamManager,
  cfg: Partial<StreamConfig> & { name: string },
): Promise<void> {
  try {
    await jsm.streams.add(cfg);
  } catch (err) {
    if (!(err instanceof JetStreamApiError) || err.code !== STREAM_NAME_IN_USE) throw err;
    const { name, storage: _storage, ...mutable } = cfg;
    await jsm.streams.update(name, mutable);
  }
}

export async function ensureCheckpointBucket(js: JetStreamClient, layout: NatsLayout): Promise<KV> {
  return await new Kvm(js).create(layout.checkpointBucket, {
    history: 1,
    storage: storage(layout),
    replicas: layout.replicas,
  });
}

export async function ensureArtifactBucket(js: JetStreamClient, layout: NatsLayout): Promise<ObjectStore> {
  return await new Objm(js).create(layout.artifactBucket, { storage: storage(layout), replicas: layout.replicas });
}

export async function openCheckpointBucket(js: JetStreamClient, layout: NatsLayout): Promise<KV> {
  return await new Kvm(js).open(layout.checkpointBucket);
}

export async function openArtifactBucket(js: JetStreamClient, layout: NatsLayout): Promise<ObjectStore> {
  return await new Objm(js).open(layout.artifactBucket);
}
