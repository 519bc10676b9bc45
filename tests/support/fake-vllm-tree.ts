// A multi-process fake backend shaped like vLLM's process tree (simulated): a front process serving the
// OpenAI API (the mock server), one worker process per "GPU" holding fake GPU memory, and a helper that
// ignores SIGTERM for a while (as vLLM's resource tracker and torch compile workers can). All stay in the
// front's process group, as multiprocessing children do.
// "GPU memory" is visible as files: <memDir>/<role>.pid holds the pid of a process holding memory; the
// memory is released when that process is gone (the driver frees a process's memory when it exits).
// Run: node --import tsx tests/support/fake-vllm-tree.ts --port N --mem-dir DIR [--gpus 2]
//      [--helper-ignore-term-ms 30000] [--ready-after-ms 1500]
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startMockServer } from '../../agent/mock-server.ts';

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    'mem-dir': { type: 'string' },
    gpus: { type: 'string', default: '2' },
    'helper-ignore-term-ms': { type: 'string', default: '30000' },
    'ready-after-ms': { type: 'string', default: '1500' },
    role: { type: 'string', default: 'front' },
  },
});
const memDir = values['mem-dir'] ?? '/tmp/llem-fake-gpu';
mkdirSync(memDir, { recursive: true });
/** Holds memory from now on; tells the front (as vLLM's workers report in before the engine serves). */
const hold = (role: string): void => {
  writeFileSync(join(memDir, `${role}.pid`), String(process.pid));
  process.send?.('up');
};

async function worker(role: string): Promise<void> {
  // A worker frees its memory and exits shortly after SIGTERM (as a vLLM worker does when the engine stops).
  process.on('SIGTERM', () => setTimeout(() => process.exit(0), 200));
  hold(role);
  setInterval(() => undefined, 1 << 30);
}

async function helper(ignoreMs: number): Promise<void> {
  process.on('SIGTERM', () => setTimeout(() => process.exit(0), ignoreMs));
  hold('helper');
  setInterval(() => undefined, 1 << 30);
}

function child(role: string): ChildProcess {
  return spawn(process.execPath, [...process.execArgv, import.meta.filename ?? process.argv[1]!, ...roleArgs(role)], {
    stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
  });
}

function roleArgs(role: string): string[] {
  return ['--mem-dir', memDir, '--role', role, '--helper-ignore-term-ms', values['helper-ignore-term-ms'] ?? '0'];
}

async function front(): Promise<void> {
  hold('front');
  const kids = [...Array.from({ length: Number(values.gpus) }, (_, i) => child(`worker-${i}`)), child('helper')];
  await Promise.all(kids.map((k) => new Promise((r) => k.once('message', r))));
  for (const k of kids) k.disconnect();
  await new Promise((r) => setTimeout(r, Number(values['ready-after-ms'])));
  const server = await startMockServer({ host: '127.0.0.1', port: Number(values.port), seed: 1 });
  process.stdout.write(`fake vLLM tree (simulated): front ${process.pid}, ${kids.length} children\n`);
  const stop = async (): Promise<void> => {
    for (const k of kids) k.kill('SIGTERM');
    await server.close();
    // vLLM's front waits for its workers before it exits.
    await Promise.all(kids.map((k) => (k.exitCode !== null ? null : new Promise((r) => k.once('exit', r)))));
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop());
  process.once('SIGINT', () => void stop());
}

const role = values.role ?? 'front';
if (role === 'front') await front();
else if (role === 'helper') await helper(Number(values['helper-ignore-term-ms']));
else await worker(role);
