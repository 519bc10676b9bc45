// Exactly once for batched sketch slices into the real Aggregator through a real nats-server (ADR 0021,
// ADR 0027; ADR 0033: binary batches and the previous release's JSON ones in one stream): a consumer
// that dies after applying past its last checkpoint is resumed from that checkpoint, so every batch
// after it is delivered again; batches published twice (a retry with the same Nats-Msg-Id, and the
// same members re-sent under another id) are in the stream too. The resumed
// aggregator's results are byte-equal to one that read the stream once, and every slice counts once.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { headers } from '@nats-io/transport-node';
import {
  decodeMessages,
  experimentSubjectFilter,
  type PublisherKey,
  type SketchMessage,
  type WireMessage,
} from '../../../api/protocol.ts';
import { Publisher, type BatchFormat } from '../../../agent/publisher.ts';
import { isBinaryBatch } from '../../../api/protocol-binary.ts';
import { Aggregator } from '../../../aggregator/aggregator.ts';
import type { ApplyOutcome } from '../../../aggregator/run-state.ts';
import { openNatsBus, type NatsBus } from '../../../lib/bus/nats.ts';
import { makePlan, replicaMessages } from '../../support/streams.ts';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';
import { until } from './fold.ts';

const NS = 'agg-batches';
const UID = 'exp-batches';
/** The data stream's default name (nats-options.ts). */
const STREAM = 'LLEM';
const plan = makePlan({ experimentUid: UID, configs: 3, cycles: 1 });

type Body = Parameters<Publisher['publish']>[1];

/** A run's whole stream (hello, telemetry, slices, summary) published in one burst, so it leaves in batches. */
async function publishRun(
  bus: NatsBus,
  run: (typeof plan.runs)[number],
  seed: number,
  format: BatchFormat,
): Promise<WireMessage[]> {
  const key: PublisherKey = { namespace: NS, experimentUid: UID, runId: run.runId, attempt: 0, replica: 0 };
  const messages = replicaMessages(run, 0, UID, { seed, slices: 60, requestsPerSlice: 12, outputTokensPerRequest: 32 });
  const publisher = new Publisher(bus, key, true, undefined, { format });
  const sent = messages.map((m) => {
    const { v, kind, seq, sentAtMs, simulated, namespace, experimentUid, runId, attempt, replica, ...body } = m;
    void [v, seq, sentAtMs, simulated, namespace, experimentUid, runId, attempt, replica];
    return publisher.publish(kind, body as Body);
  });
  await Promise.all(sent);
  await publisher.drain();
  return messages;
}

/** Applies every bus message of the experiment, in stream order, from `after` on. */
async function consume(
  bus: NatsBus,
  durable: string,
  agg: Aggregator,
  [after, last]: [number, number],
  onApplied?: (streamSeq: number, outcomes: ApplyOutcome[]) => void,
): Promise<void> {
  const c = await bus.consume({
    durable,
    filterSubject: experimentSubjectFilter(NS, UID),
    afterStreamSeq: after,
    handler: async (m) => {
      const d = decodeMessages(m.data);
      if (!d.ok) return 'dead-letter';
      const outcomes = agg.applyBatch(d.messages, m.streamSeq);
      onApplied?.(m.streamSeq, outcomes);
      return 'ack';
    },
  });
  // Until the stream's last message is applied.
  await until(() => agg.lastStreamSeq >= last, 30_000, `${durable} to apply up to stream sequence ${last}`).catch(
    (e) => {
      throw new Error(`${(e as Error).message}; applied up to ${agg.lastStreamSeq}`);
    },
  );
  await c.stop();
}

void describe('batched sketch slices into the aggregator over NATS', () => {
  let server: NatsServerHandle;
  let bus: NatsBus;
  /** The controller's own connection, as in the cluster (the agents publish on theirs). */
  let consumerBus: NatsBus;
  void before(async () => {
    server = await startNatsServer();
    bus = await openNatsBus({ servers: server.url });
    await bus.ensureLayout();
    consumerBus = await openNatsBus({ servers: server.url });
  });
  void after(async () => {
    await consumerBus.close();
    await bus.close();
    await server.cleanup();
  });

  void it('counts every slice once after a restart redelivers batches, binary and JSON, some published twice', async () => {
    // The first run's agent is of the previous release (JSON batches, ADR 0021); the others send binary ones.
    const formats: BatchFormat[] = plan.runs.map((_r, i) => (i === 0 ? 'json' : 'binary'));
    const published = await Promise.all(
      plan.runs.map((run, i) => publishRun(bus, run, 11 + i, formats[i] as BatchFormat)),
    );
    const jsm = await jetstreamManager(bus.connection);
    const stored = (await jsm.streams.info(STREAM)).state.last_seq;
    // Two batches again: the same bytes under the same id (a retry after a lost ack: stored once) and
    // the same members under a new id (stored again: the aggregator must see its members as duplicates).
    const batchSeqs: number[] = [];
    const forms = new Set<string>();
    for (let seq = 1; seq <= stored; seq++) {
      const m = await jsm.streams.getMessage(STREAM, { seq });
      if (m?.subject.endsWith('.batch') !== true) continue;
      if (batchSeqs.length < 2) batchSeqs.push(seq);
      forms.add(isBinaryBatch(m.data) ? 'binary' : String.fromCharCode(m.data[0] ?? 0));
    }
    assert.equal(batchSeqs.length, 2, 'the publishers sent batches');
    assert.deepEqual([...forms].sort(), ['[', 'binary'], 'binary batches and JSON arrays are both in the stream');
    const again = await jsm.streams.getMessage(STREAM, { seq: batchSeqs[1] as number });
    assert.ok(again !== null);
    // As the publisher's connection retries it: the very id it stored (its connection nonce included).
    const h = headers();
    h.set('Nats-Msg-Id', again.header.get('Nats-Msg-Id'));
    const reply = await bus.connection.request(again.subject, again.data, { headers: h, timeout: 5000 });
    const retry = reply.json<{ duplicate?: boolean }>();
    assert.equal(retry.duplicate, true, 'the server stores a retried batch once');
    const resent = await bus.publish(again.subject, again.data, { msgId: 'the-same-members-under-another-id' });
    assert.equal(resent.duplicate, false);
    const last = resent.streamSeq;

    // The reference reads the stream once.
    const reference = new Aggregator(plan);
    await consume(consumerBus, 'reference', reference, [0, last]);

    // The crashed consumer: a checkpoint a third of the way, then it goes on applying and dies.
    const crashed = new Aggregator(plan);
    let checkpoint: { state: Uint8Array; lastStreamSeq: number } | null = null;
    await consume(consumerBus, 'crashed', crashed, [0, last], (streamSeq) => {
      if (checkpoint === null && streamSeq >= Math.floor(stored / 3)) {
        checkpoint = { state: crashed.checkpoint(), lastStreamSeq: crashed.lastStreamSeq };
      }
    });
    assert.ok(checkpoint !== null);
    const { state, lastStreamSeq } = checkpoint as { state: Uint8Array; lastStreamSeq: number };
    assert.ok(lastStreamSeq < stored, 'batches after the checkpoint were applied before the crash');

    // Resumed from the checkpoint: everything after it is delivered again.
    const resumed = Aggregator.restore(state);
    let duplicates = 0;
    let redelivered = 0;
    await consume(consumerBus, 'crashed', resumed, [lastStreamSeq, last], (_seq, outcomes) => {
      redelivered++;
      duplicates += outcomes.filter((o) => o.outcome === 'duplicate').length;
    });
    assert.ok(redelivered > 0, 'the resumed consumer was delivered the batches after its checkpoint');
    assert.ok(duplicates > 0, 'the members sent again under another id were duplicates by seq');

    assert.equal(resumed.resultsJson(), reference.resultsJson(), 'results byte-equal to one reading');
    assert.deepEqual(resumed.checkpoint(), reference.checkpoint());
    const results = resumed.results();
    for (const [i, run] of results.runs.entries()) {
      const slices = (published[i] as WireMessage[]).filter((m): m is SketchMessage => m.kind === 'sketch');
      const requests = slices.reduce((n, s) => n + s.requestsOk, 0);
      assert.equal(run.status, 'complete', `run ${run.runId}: ${run.reasons.join('; ')}`);
      assert.equal(run.counts.requestsOk, requests, `run ${run.runId} counts each slice's requests once`);
    }
  });
});
