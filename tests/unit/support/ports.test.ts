import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { test } from 'node:test';
import { freePort, isAddressInUse } from '../../support/ports.ts';

test("freePort hands out distinct ports below the kernel's ephemeral range that can be bound", async () => {
  const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
  const ports = await Promise.all(Array.from({ length: 20 }, () => freePort()));
  assert.equal(new Set(ports).size, ports.length, 'no port is handed out twice by one process');
  for (const port of ports) {
    assert.ok(port >= 10_000 && port < low, `${port} is outside the range outgoing connections draw from (< ${low})`);
    const srv = createServer();
    await new Promise<void>((res, rej) => srv.once('error', rej).listen(port, '127.0.0.1', res));
    await new Promise((res) => srv.close(res));
  }
});

test('isAddressInUse recognises bind failures as servers print them, and nothing else', () => {
  assert.ok(
    isAddressInUse('failed to listen on 127.0.0.1:43581: listen tcp 127.0.0.1:43581: bind: address already in use'),
  );
  assert.ok(
    isAddressInUse("[Errno 98] error while attempting to bind on address ('127.0.0.1', 8000): address already in use"),
  );
  assert.ok(isAddressInUse('Error: listen EADDRINUSE: address already in use :::3000'));
  assert.equal(isAddressInUse('kube-apiserver not ready after 180000 ms (last: connect ECONNREFUSED)'), false);
});
