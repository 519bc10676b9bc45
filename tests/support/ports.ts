// Free TCP ports for test servers (nats-server, etcd, kube-apiserver, mock backends).
//
//   freePort(): Promise<number>          a port on 127.0.0.1 that was bindable a moment ago
//   isAddressInUse(text): boolean        whether a server's log says its port was taken first
//
// A port picked by listen(0) comes from the kernel's ephemeral range, the same range every outgoing
// connection of every parallel test process draws its local port from; between our close() and the
// server's bind another process took it often enough to fail CI ("bind: address already in use").
// So ports are picked at random below the ephemeral range, where the kernel hands out none, and are
// checked by binding them once. A collision with another test process picking the same port is still
// possible; callers that start a server retry on isAddressInUse().
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

export { isAddressInUse } from '../../lib/errors.ts';

const LOWEST = 10_000;
const handedOut = new Set<number>();

function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > LOWEST + 1000 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

const HIGHEST = ephemeralLow() - 1;

function canBind(port: number): Promise<boolean> {
  return new Promise((res) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => res(false));
    srv.listen({ port, host: '127.0.0.1', exclusive: true }, () => srv.close(() => res(true)));
  });
}

/**
 * A port on 127.0.0.1, below the ephemeral range, that was free when checked and not handed out before by this process.
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt += 1) {
    const port = LOWEST + Math.floor(Math.random() * (HIGHEST - LOWEST + 1));
    if (handedOut.has(port)) continue;
    if (await canBind(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no free TCP port found in ${LOWEST}-${HIGHEST} after 200 tries`);
}
