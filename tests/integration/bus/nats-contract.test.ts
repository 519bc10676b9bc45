// The shared Bus contract against a real nats-server with JetStream.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { connect } from '@nats-io/transport-node';
import { Objm } from '@nats-io/obj';
import { Kvm } from '@nats-io/kv';
import { experimentCheckpointKey } from '../../../lib/bus/subjects.ts';
import { openNatsBus, type NatsBus } from '../../../lib/bus/nats.ts';
import { startNatsServer, type NatsServerHandle } from '../../support/nats-server.ts';
import { busContract } from '../../unit/bus/bus-contract.ts';

let server: NatsServerHandle;
void before(async () => {
  server = await startNatsServer();
});
void after(async () => {
  await server.cleanup();
});

void busContract('NATS JetStream', async () => {
  const opts = { servers: server.url, consumer: { retryInitialMs: 5 } };
  const bus = await openNatsBus(opts);
  const peers: NatsBus[] = [];
  return {
    bus,
    peer: async () => {
      const p = await openNatsBus(opts);
      peers.push(p);
      return p;
    },
    close: async () => {
      for (const p of peers) await p.close();
      await bus.close();
    },
  };
});

void test('large checkpoints live in the object store; replaced ones leave no object behind; a damaged one is refused by name', async () => {
  const bus = await openNatsBus({ servers: server.url });
  await bus.ensureLayout();
  const nc = await connect({ servers: server.url });
  try {
    const objects = await new Objm(nc).open('llem-artifacts');
    const names = async (): Promise<string[]> =>
      (await objects.list()).map((o) => o.name).filter((n) => n.startsWith('checkpoints/'));
    const key = experimentCheckpointKey('ns-big', 'uid-big');
    const big = new Uint8Array(2_000_000).map((_, i) => i % 249);
    await bus.putCheckpoint(key, { state: big, lastStreamSeq: 1 });
    await bus.putCheckpoint(key, { state: big, lastStreamSeq: 2 });
    const kept = await names();
    assert.equal(kept.length, 1, `one object for the current checkpoint: ${kept.join(', ')}`);
    await bus.putCheckpoint(key, { state: new Uint8Array([1, 2, 3]), lastStreamSeq: 3 });
    assert.deepEqual(await names(), [], 'a small checkpoint goes inline and the object is removed');
    await bus.putCheckpoint(key, { state: big, lastStreamSeq: 4 });
    const [object] = await names();
    await objects.putBlob({ name: object ?? '' }, big.subarray(1));
    await assert.rejects(
      bus.getCheckpoint(key),
      (e: Error) =>
        e.name === 'CheckpointError' && e.message.includes(key) && /does not match its pointer/.test(e.message),
    );
    await objects.delete(object ?? '');
    await assert.rejects(bus.getCheckpoint(key), /is missing from the object store/);
    const kv = await new Kvm(nc).open('llem-checkpoints');
    await kv.put(key, new Uint8Array([2, 123]));
    await assert.rejects(bus.getCheckpoint(key), /unreadable object-store pointer/);
    // An object a crash left without a pointer goes with the experiment too.
    await bus.putCheckpoint(key, { state: big, lastStreamSeq: 5 });
    await objects.putBlob({ name: `checkpoints/${key}/stray-from-a-crash` }, new Uint8Array([1]));
    assert.equal((await names()).length, 2);
    await bus.deleteExperiment({
      namespace: 'ns-big',
      experimentUid: 'uid-big',
      durable: 'd-big',
      purgeMessages: false,
    });
    assert.deepEqual(await names(), []);
  } finally {
    await nc.close();
    await bus.close();
  }
});
