// `llem`: thin. Parses the command name, hands argv to the command module, maps errors to exit codes.
import { isInvalidInput, isLlemError } from '../lib/errors.ts';
import { logLevelProblem } from '../lib/log-level.ts';

export type CommandMain = (argv: string[]) => Promise<number>;

/** Each command lives in cli/commands/<name>.ts and exports `main`. Loaded lazily to keep start-up fast. */
const COMMANDS: Record<string, { summary: string; load: () => Promise<{ main: CommandMain }> }> = {
  run: {
    summary: 'run an experiment on this machine and write a results directory',
    load: () => import('./commands/run.ts'),
  },
  results: { summary: 'show, export or compare results directories', load: () => import('./commands/results.ts') },
  controller: { summary: 'run the Kubernetes controller', load: () => import('./commands/controller.ts') },
  validate: { summary: 'validate EnergyExperiment manifests', load: () => import('./commands/validate.ts') },
  plan: { summary: 'show the run matrix of a manifest', load: () => import('./commands/plan.ts') },
  crd: { summary: 'generate the CRD YAML from the schema', load: () => import('./commands/crd.ts') },
  agent: {
    summary: 'run the measurement protocol for one run (supervises the backend)',
    load: () => import('./commands/agent.ts'),
  },
  'nats-server-config': {
    summary: "write the NATS server config that trusts the controller's issuer (chart init container)",
    load: () => import('./commands/nats-server-config.ts'),
  },
  'mock-server': {
    summary: 'simulated OpenAI-compatible streaming server',
    load: () => import('./commands/mock-server.ts'),
  },
  'gpu-info': {
    summary: 'discover GPUs and print telemetry samples as JSON',
    load: () => import('./commands/telemetry.ts'),
  },
};

/** Commands that export OpenTelemetry traces and metrics when OTEL_* variables say so (lib/telemetry). */
const TRACED: Record<string, string> = { run: 'llem-run', agent: 'llem-agent', controller: 'llem-controller' };
/** Commands that need a newer Node.js than the rest of llem (>= 20, ADR 0015). */
const NODE_MAJOR_NEEDED: Record<string, number> = { controller: 22 };
/** Long-running services whose structured logs are their output: info unless told otherwise. */
const INFO_BY_DEFAULT = new Set(['controller', 'agent']);

function nodeMajor(): number {
  return Number(process.versions.node.split('.')[0]);
}

/**
 * Takes `--log-level LEVEL` (anywhere before a `--`) out of the command's arguments and sets
 * LLEM_LOG_LEVEL from it, before lib/log.ts is loaded; child processes inherit it. Throws on a bad level.
 */
export function applyLogLevel(command: string, argv: string[], env: NodeJS.ProcessEnv = process.env): string[] {
  const out: string[] = [];
  let flag: string | undefined;
  for (let i = 0; i < argv.length; i += 1) {
    const a = argv[i] as string;
    if (a === '--') {
      out.push(...argv.slice(i));
      break;
    }
    if (a === '--log-level') {
      flag = argv[i + 1];
      if (flag === undefined || flag.startsWith('-'))
        throw new Error('--log-level needs a value: trace, debug, info, warn, error, fatal or silent');
      i += 1;
    } else if (a.startsWith('--log-level=')) {
      flag = a.slice('--log-level='.length);
    } else {
      out.push(a);
    }
  }
  const problem = logLevelProblem(flag, '--log-level') ?? logLevelProblem(env['LLEM_LOG_LEVEL'], 'LLEM_LOG_LEVEL');
  if (problem !== null) throw new Error(problem);
  if (flag !== undefined) env['LLEM_LOG_LEVEL'] = flag;
  else if (env['LLEM_LOG_LEVEL'] === undefined && INFO_BY_DEFAULT.has(command)) env['LLEM_LOG_LEVEL'] = 'info';
  return out;
}

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(14)} ${c.summary}`);
  return [
    'usage: llem <command> [options]',
    '',
    'commands:',
    ...lines,
    '',
    'global options:',
    '  --log-level LEVEL  structured logs (JSON lines on stderr) at LEVEL and above: trace, debug, info,',
    '                     warn (the default; info for controller and agent), error, fatal, silent; or LLEM_LOG_LEVEL',
    '',
    'llem <command> --help for details',
  ].join('\n');
}

export async function cliMain(argv: string[]): Promise<number> {
  // `llem --log-level debug run ...`: a global option may come before the command name.
  const lead = argv[0] === '--log-level' ? 2 : argv[0]?.startsWith('--log-level=') === true ? 1 : 0;
  const name = argv[lead];
  const rest = [...argv.slice(0, lead), ...argv.slice(lead + 1)];
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage() + '\n');
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS[name];
  if (command === undefined) {
    process.stderr.write(`llem: unknown command "${name}"\n\n${usage()}\n`);
    return 2;
  }
  let args: string[];
  try {
    args = applyLogLevel(name, rest);
  } catch (err) {
    process.stderr.write(`llem: ${(err as Error).message}\n`);
    return 2;
  }
  const needs = NODE_MAJOR_NEEDED[name];
  if (needs !== undefined && nodeMajor() < needs) {
    process.stderr.write(
      `llem ${name}: needs Node.js >= ${needs} (its Kubernetes client does), this is ${process.version}; ` +
        'install a current Node.js, or in a llem checkout run `source scripts/node-env.sh` first\n',
    );
    return 2;
  }
  const service = TRACED[name];
  const telemetry = service === undefined ? null : await import('../lib/telemetry/index.ts');
  try {
    await telemetry?.startTelemetry(service ?? 'llem');
    const mod = await command.load();
    return await mod.main(args);
  } catch (err) {
    return reportError(err, name);
  } finally {
    await telemetry?.shutdownTelemetry();
  }
}

/** node:util parseArgs errors (unknown option, missing value, stray argument): bad command-line input. */
function isArgvError(err: unknown): err is Error {
  return (
    err instanceof Error &&
    typeof (err as NodeJS.ErrnoException).code === 'string' &&
    (err as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS') === true
  );
}

function reportError(err: unknown, command: string): number {
  if (isArgvError(err)) {
    process.stderr.write(`llem ${command}: ${err.message}; see llem ${command} --help\n`);
    return 2;
  }
  if (isInvalidInput(err)) {
    process.stderr.write(err.issues.length > 0 ? err.message + '\n' : 'invalid input\n');
    return 2;
  }
  if (isLlemError(err)) {
    process.stderr.write(`llem: ${err.message}\n`);
    return err.exitCode;
  }
  const detail = process.env['LLEM_DEBUG'] === '1' && err instanceof Error ? `\n${err.stack ?? ''}` : '';
  process.stderr.write(`llem: internal error: ${err instanceof Error ? err.message : String(err)}${detail}\n`);
  return 1;
}

const isEntry = process.argv[1] !== undefined && /(?:llem\.mjs|main\.ts|llem)$/.test(process.argv[1]);
if (isEntry || process.env['LLEM_CLI_ENTRY'] === '1') {
  // A closed or full stdout (| head, > /dev/full) ends the command with one line, not a stack trace.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') process.stderr.write(`llem: cannot write output: ${err.code ?? err.message}\n`);
    process.exit(err.code === 'EPIPE' ? 0 : 1);
  });
  const code = await cliMain(process.argv.slice(2));
  process.exitCode = code;
}
