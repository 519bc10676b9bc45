// `llem mock-server`: a simulated OpenAI-compatible streaming server (tests, quickstart, benchmarks).
import { parseArgs } from 'node:util';
import { MOCK_DEFAULTS, startMockServer, type MockServerOptions } from '../../agent/mock-server.ts';
import { InvalidInputError } from '../../lib/errors.ts';

const USAGE = `usage: llem mock-server [options]   (simulated: no model runs)

  --host ADDR          listen address (default ${MOCK_DEFAULTS.host})
  --port N             listen port, 0 = any free one (default 8000)
  --model NAME         served model name (default ${MOCK_DEFAULTS.model})
  --ttft-ms MS         injected time to first token, mean (default ${MOCK_DEFAULTS.ttft.meanMs})
  --ttft-std-ms MS     its normal spread (default 0 = constant)
  --itl-ms MS          injected inter-token latency, mean (default ${MOCK_DEFAULTS.itl.meanMs})
  --itl-std-ms MS      its normal spread (default 0)
  --max-batch N        sequences decoded at once; more wait in a queue (default ${MOCK_DEFAULTS.maxBatch})
  --max-tokens N       output length when a request sets none (default ${MOCK_DEFAULTS.defaultMaxTokens})
  --seed N             seed of the delay draws (default ${MOCK_DEFAULTS.seed})
  --ready-after-ms MS  /health answers 503 for this long (default 0)
`;

const NUMERIC = [
  'port',
  'ttft-ms',
  'ttft-std-ms',
  'itl-ms',
  'itl-std-ms',
  'max-batch',
  'max-tokens',
  'seed',
  'ready-after-ms',
] as const;

function numbers(values: Record<string, string | boolean | undefined>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const name of NUMERIC) {
    const raw = values[name];
    if (typeof raw !== 'string') continue;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < 0)
      throw new InvalidInputError([
        { file: 'llem mock-server', path: `--${name}`, message: `must be a non-negative number, got "${raw}"` },
      ]);
    if (name === 'port' && (!Number.isInteger(n) || n > 65535)) {
      throw new InvalidInputError([
        {
          file: 'llem mock-server',
          path: '--port',
          message: `must be a whole number from 0 to 65535 (0: any free port), got "${raw}"`,
        },
      ]);
    }
    out[name] = n;
  }
  return out;
}

export function optionsFromArgv(argv: string[]): MockServerOptions | 'help' {
  let values: Record<string, string | boolean | undefined>;
  try {
    const options = Object.fromEntries([...NUMERIC, 'host', 'model'].map((n) => [n, { type: 'string' as const }]));
    values = parseArgs({
      args: argv,
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      strict: true,
    }).values;
  } catch (err) {
    throw new InvalidInputError([
      { file: 'llem mock-server', path: '', message: `${(err as Error).message}\n${USAGE}` },
    ]);
  }
  if (values['help'] === true) return 'help';
  const n = numbers(values);
  const opts: MockServerOptions = {
    host: typeof values['host'] === 'string' ? values['host'] : MOCK_DEFAULTS.host,
    port: n['port'] ?? 8000,
    ttft: { meanMs: n['ttft-ms'] ?? MOCK_DEFAULTS.ttft.meanMs, stdMs: n['ttft-std-ms'] ?? 0 },
    itl: { meanMs: n['itl-ms'] ?? MOCK_DEFAULTS.itl.meanMs, stdMs: n['itl-std-ms'] ?? 0 },
    maxBatch: Math.max(1, n['max-batch'] ?? MOCK_DEFAULTS.maxBatch),
    defaultMaxTokens: Math.max(1, n['max-tokens'] ?? MOCK_DEFAULTS.defaultMaxTokens),
    seed: n['seed'] ?? MOCK_DEFAULTS.seed,
    readyAfterMs: n['ready-after-ms'] ?? 0,
  };
  if (typeof values['model'] === 'string') opts.model = values['model'];
  return opts;
}

export async function main(argv: string[]): Promise<number> {
  const opts = optionsFromArgv(argv);
  if (opts === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  const server = await startMockServer(opts);
  process.stdout.write(`llem mock-server (simulated) listening on ${server.url}\n`);
  const sig = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  await server.close();
  process.stdout.write(`llem mock-server: ${sig}, stopped\n`);
  return 0;
}
