// The Bus: agents publish wire messages, the aggregator consumes them with explicit acks.
// Two implementations with the same semantics: NATS JetStream (cluster) and in-process (local).

export interface PublishAck {
  /** Stream sequence the message was stored at. */
  streamSeq: number;
  /** True when the server had already stored a message with the same msgId (de-duplicated). */
  duplicate: boolean;
}

export interface DeliveredMessage {
  subject: string;
  data: Uint8Array;
  /** Stream sequence (monotonic per stream); the aggregator checkpoints the last one it applied. */
  streamSeq: number;
  /** How many times the server has delivered this message (1 on first delivery). */
  deliveryCount: number;
  /** Message headers the publisher set (W3C `traceparent` when traced); absent when none. */
  headers?: Record<string, string>;
}

export interface PublishOptions {
  msgId: string;
  /** Extra headers stored with the message (W3C trace context); omitted when not traced. */
  headers?: Record<string, string> | undefined;
}

/** What the consumer's handler says about one message. */
export type Disposition = 'ack' | 'dead-letter';

export interface ConsumeOptions {
  /** Durable consumer name (one per experiment). */
  durable: string;
  /** Subject filter, e.g. experimentSubjectFilter(ns, uid). */
  filterSubject: string;
  /** Deliver only messages with streamSeq > this (resume after a checkpoint). 0 = from the start. */
  afterStreamSeq: number;
  /**
   * Called once per message in stream order; the next message is not delivered until it resolves.
   * A thrown error means "not applied": the message is redelivered later (nak with backoff).
   */
  handler: (m: DeliveredMessage) => Promise<Disposition>;
}

export interface Consumption {
  /** Stop delivering; resolves when the in-flight handler (if any) has finished. */
  stop(): Promise<void>;
  /** Resolves once no message is pending for this consumer at the time of the call (tests, drain). */
  idle(): Promise<void>;
}

export interface ControlSubscription {
  unsubscribe(): Promise<void>;
}

export interface CheckpointRecord {
  state: Uint8Array;
  /** Last stream sequence whose effects are contained in `state`. */
  lastStreamSeq: number;
}

export interface DeleteExperimentOptions {
  namespace: string;
  experimentUid: string;
  durable: string;
  /** Also purge the experiment's messages from the stream. */
  purgeMessages: boolean;
}

export interface Bus {
  /** Idempotently create the stream, KV and object-store buckets. */
  ensureLayout(): Promise<void>;
  publish(subject: string, data: Uint8Array, opts: PublishOptions): Promise<PublishAck>;
  consume(opts: ConsumeOptions): Promise<Consumption>;
  /** Control plane (start barrier): fire-and-forget, not stored in the data stream. */
  publishControl(subject: string, data: Uint8Array): Promise<void>;
  subscribeControl(subject: string, handler: (data: Uint8Array) => void): Promise<ControlSubscription>;
  putCheckpoint(key: string, record: CheckpointRecord): Promise<void>;
  getCheckpoint(key: string): Promise<CheckpointRecord | null>;
  putArtifact(name: string, data: Uint8Array): Promise<void>;
  getArtifact(name: string): Promise<Uint8Array | null>;
  deleteExperiment(opts: DeleteExperimentOptions): Promise<void>;
  /** Messages moved to the dead-letter subject since this bus was opened. */
  deadLettered(): number;
  close(): Promise<void>;
}
