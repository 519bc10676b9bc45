// The shared Bus contract against a real nats-server with JetStream.
import { after, before } from 'node:test';
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
