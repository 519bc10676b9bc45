// `llem run FILE [--simulate] [--out DIR] [--json] [--fresh] [--server-command CMD]`
import { checkOutDir } from '../out-dir.ts';
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { parseArgs } from 'node:util';
import { clientThreadsFor } from '../../agent/load/threaded-client.ts';
import { InvalidInputError, isLlemError } from '../../lib/errors.ts';
import { ConsoleProgress, parsePassEnv, runLocalExperiment } from '../../local/index.ts';
import { optionsFromArgv } from './mock-server.ts';

/** --mock-args is parsed as llem mock-server would, before anything runs (its errors name --mock-args). */
function checkMockArgs(args: string[], simulate: boolean, serverCommand: boolean): void {
  if (!simulate || serverCommand) {
    throw new InvalidInputError([
      { file: 'llem run', path: '--mock-args', message: 'applies only with --simulate and without --server-command' },
    ]);
  }
  if (
    args.some(
      (a) =>
        a === '--port' ||
        a === '--host' ||
        a === '--model' ||
        a.startsWith('--port=') ||
        a.startsWith('--host=') ||
        a.startsWith('--model='),
    )
  ) {
    throw new InvalidInputError([
      {
        file: 'llem run',
        path: '--mock-args',
        message: '--host, --port and --model are set by llem run; give latencies and batch only',
      },
    ]);
  }
  try {
    optionsFromArgv(args);
  } catch (err) {
    if (!(err instanceof InvalidInputError)) throw err;
    const issues = err.issues.map((i) => ({
      file: 'llem run',
      path: '--mock-args',
      message: `${i.path === '' ? '' : `${i.path} `}${i.message.split('\n')[0] ?? ''}`,
    }));
    throw new InvalidInputError(issues, { cause: err });
  }
}

const HELP = `usage: llem run FILE [options]

Runs every configuration of an EnergyExperiment on this machine and writes a results directory.

options:
  --simulate              simulated GPU + mock inference server (no GPU needed; results say simulated)
  --out DIR               results directory (default llem-results/<experiment name>)
  --fresh                 start over instead of resuming DIR
  --json                  stdout is one JSON document: the summary, or {exitCode, error} on failure
  --server-command CMD    run this OpenAI-compatible server instead of the backend's launcher
                          (split on spaces; {port} is replaced by the port to listen on)
  --mock-args ARGS        with --simulate: options of the mock server, which runs as its own process
                          (--mock-args="--ttft-ms 40 --itl-ms 8 --max-batch 256"; llem mock-server --help)
  --pass-env NAMES        also give the backend server these variables of your environment (comma-separated,
                          repeatable); otherwise it gets only what its launcher sets plus PATH, HOME, locale
                          and cache locations: never your shell's tokens

exit codes: 0 ok, 1 a run failed, 2 invalid input, 130 interrupted`;

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        simulate: { type: 'boolean', default: false },
        out: { type: 'string' },
        fresh: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        'server-command': { type: 'string' },
        'mock-args': { type: 'string' },
        'pass-env': { type: 'string', multiple: true },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    throw new InvalidInputError([{ file: 'llem run', path: '', message: `${(err as Error).message}\n\n${HELP}` }]);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  if (positionals.length !== 1 || positionals[0] === undefined) {
    throw new InvalidInputError([
      { file: 'llem run', path: '', message: `expected exactly one manifest FILE\n\n${HELP}` },
    ]);
  }
  let serverCommand: string[] | undefined;
  let mockArgs: string[] | undefined;
  let passEnv: string[];
  try {
    ({ serverCommand, mockArgs } = checkRunInputs(values));
    passEnv = parsePassEnv(values['pass-env']);
  } catch (err) {
    // --json: a refusal before the run is still exactly one JSON document on stdout.
    if (values.json) process.stdout.write(JSON.stringify(jsonFailure(err, false)) + '\n');
    throw err;
  }
  const controller = new AbortController();
  const onSignal = (sig: string): void => controller.abort(new Error(`received ${sig}`));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const progress = new ConsoleProgress();
  try {
    const outcome = await runLocalExperiment({
      file: positionals[0],
      simulate: values.simulate,
      fresh: values.fresh,
      signal: controller.signal,
      progress,
      ...(values.out !== undefined ? { out: values.out } : {}),
      ...(serverCommand !== undefined ? { serverCommand } : {}),
      ...(mockArgs !== undefined ? { mockArgs } : {}),
      passEnv,
    });
    if (values.json) process.stdout.write(JSON.stringify(outcome, null, 2) + '\n');
    return outcome.exitCode;
  } catch (err) {
    const interrupted = controller.signal.aborted && !(isLlemError(err) && err.exitCode === 2);
    // --json: stdout carries exactly one JSON document, a failure included (the human line stays on stderr).
    if (values.json) process.stdout.write(JSON.stringify(jsonFailure(err, interrupted)) + '\n');
    if (interrupted) {
      process.stderr.write('\nllem: interrupted; run the same command again to resume\n');
      return 130;
    }
    throw err;
  } finally {
    progress.close();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

interface RunFlags {
  out?: string | undefined;
  simulate: boolean;
  'server-command'?: string | undefined;
  'mock-args'?: string | undefined;
}

/** Everything a run refuses before anything is written; returns the split --server-command and --mock-args. */
function checkRunInputs(values: RunFlags): { serverCommand: string[] | undefined; mockArgs: string[] | undefined } {
  const serverCommand = values['server-command']?.split(' ').filter((s) => s !== '');
  if (serverCommand?.length === 0) {
    throw new InvalidInputError([
      {
        file: 'llem run',
        path: '--server-command',
        message: "is empty; give the server's command line, with {port} where the port goes",
      },
    ]);
  }
  const program = serverCommand?.[0];
  if (program !== undefined && findExecutable(program) === null) {
    throw new InvalidInputError([
      {
        file: 'llem run',
        path: '--server-command',
        message: `"${program}" is not ${program.includes('/') ? 'an executable file' : 'a command on PATH'}; give the server's command line, with {port} where the port goes`,
      },
    ]);
  }
  const mockArgs = values['mock-args']?.split(' ').filter((s) => s !== '');
  if (mockArgs !== undefined) checkMockArgs(mockArgs, values.simulate, serverCommand !== undefined);
  // Checked here, not when the first run's agent starts: bad input must stop before anything is written.
  clientThreadsFor(1, undefined, process.env['LLEM_CLIENT_THREADS']);
  // Without --out the results go to ./llem-results/<name>: the working directory is checked the same way.
  checkOutDir(values.out ?? 'llem-results', values.out === undefined ? 'working directory' : '--out');
  return { serverCommand, mockArgs };
}

function jsonFailure(
  err: unknown,
  interrupted: boolean,
): { exitCode: number; error: { code: string; message: string } } {
  if (interrupted)
    return {
      exitCode: 130,
      error: { code: 'LLEM_E_INTERRUPTED', message: 'interrupted; run the same command again to resume' },
    };
  if (isLlemError(err)) return { exitCode: err.exitCode, error: { code: err.code, message: err.message } };
  return { exitCode: 1, error: { code: 'LLEM_E_INTERNAL', message: err instanceof Error ? err.message : String(err) } };
}

/** The file `program` names (a path, or a name looked up on PATH) when it is an executable file, else null. */
function findExecutable(program: string): string | null {
  const candidates = program.includes('/')
    ? [program]
    : (process.env['PATH'] ?? '')
        .split(delimiter)
        .filter((d) => d !== '')
        .map((d) => join(d, program));
  for (const file of candidates) {
    try {
      accessSync(file, constants.X_OK);
      if (statSync(file).isFile()) return file;
    } catch {
      /* not here */
    }
  }
  return null;
}
