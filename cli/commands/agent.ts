// `llem agent [--config FILE] [-- CMD ARGS...]`: run the measurement protocol for one run replica,
// supervising the backend server CMD as a child process group when given. Configuration:
// agent/config.ts (LLEM_AGENT_CONFIG, LLEM_NATS_*). SIGTERM/SIGINT at any phase: stop the load,
// publish `aborted`, stop the backend group, exit non-zero within 10 s.
import { mkdirSync, writeFileSync } from 'node:fs';
import { constants } from 'node:os';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { loadAgentEnvironment, type AgentEnvironment } from '../../agent/config.ts';
import { JsonLinesBus } from '../../agent/json-lines-bus.ts';
import { runAgent } from '../../agent/runner.ts';
import { describeExit, startBackend, type BackendProcess } from '../../agent/supervisor.ts';
import { watchGroup, type GroupWatch } from '../../agent/process-tree.ts';
import { awaitBackendReady } from '../../agent/readiness.ts';
import { hasGpuSettings } from '../../api/spec-gpu.ts';
import { FakeNvml, simulatedSettingsCell } from '../../agent/gpu-control/fake-nvml.ts';
import { markerDirFrom } from '../../agent/gpu-control/gpu-settings.ts';
import { loadNvmlControl, type NvmlControlApi } from '../../agent/gpu-control/nvml-control.ts';
import { applyRunGpuSettings, requestedOf, type GpuControlDeps } from '../../agent/gpu-control/run-settings.ts';
import { createNvmlTelemetry, createSimulatedGpu } from '../../agent/telemetry/sampler.ts';
import type { GpuTelemetry } from '../../agent/telemetry/types.ts';
import { openNatsBus } from '../../lib/bus/index.ts';
import type { Bus } from '../../lib/bus/types.ts';
import { BackendError, InterruptedError, InvalidInputError, isLlemError } from '../../lib/errors.ts';
import { rootLogger } from '../../lib/log.ts';
import { createLatencySketch } from '../../lib/sketch/index.ts';

const USAGE = `usage: llem agent [--config FILE] [-- CMD ARGS...]

Runs the measurement protocol for one run replica against the OpenAI-compatible backend at
backend.baseUrl. With CMD, starts it as a supervised child process group first.
Configuration: --config FILE or LLEM_AGENT_CONFIG (JSON); broker: LLEM_NATS_URL (unset: wire
messages are printed to stdout as JSON lines, start.mode must be "immediate").
`;

/** The abort deadline: everything after a signal must finish inside 10 s. */
const HARD_EXIT_MS = 9000;

async function openBus(env: AgentEnvironment): Promise<Bus> {
  if (env.nats === null) return new JsonLinesBus(process.stdout);
  const { servers, tls, ...auth } = env.nats;
  const p = env.config.publisher;
  return openNatsBus(
    { servers, name: `llem-agent-${p.runId}-${p.replica}`, ...auth, ...(tls === undefined ? {} : { tls }) },
    'LLEM_NATS_*',
  );
}

/** The backend's start-up files (config.files), written before it starts; a failure is a BackendError. */
function writeBackendFiles(files: AgentEnvironment['config']['files']): void {
  for (const f of files ?? []) {
    try {
      mkdirSync(dirname(f.path), { recursive: true });
      writeFileSync(f.path, f.content);
    } catch (err) {
      throw new BackendError(`cannot write backend file ${f.path}: ${(err as Error).message}`, { cause: err });
    }
  }
}

/**
 * NVML control for config.gpu (the fake one, whose cap the simulated GPU obeys, under the simulated
 * source); nothing when the run sets no GPU settings. Not permitted: GpuSettingsRefusedError (exit 2).
 */
function gpuControlFor(env: AgentEnvironment): { deps?: GpuControlDeps; cell?: Int32Array } {
  const c = env.config;
  if (!hasGpuSettings(requestedOf(c))) return {};
  if (!c.gpu.permitted) {
    applyRunGpuSettings(
      c,
      { source: c.telemetry.source, gpus: [], driverVersion: null, nvmlVersion: null, cudaVersion: null },
      undefined,
      rootLogger,
    );
  }
  const markerDir = markerDirFrom(process.env);
  if (c.telemetry.source === 'simulated') {
    const cell = simulatedSettingsCell();
    const n = c.telemetry.simulated?.gpuCount ?? 1;
    const uuids = Array.from({ length: n }, (_, i) => `GPU-simulated-${String(i).padStart(4, '0')}`);
    const fake = new FakeNvml({ uuids, stateFile: process.env['LLEM_SIMULATED_GPU_STATE'], cell });
    return { deps: { api: () => fake, markerDir }, cell };
  }
  let api: NvmlControlApi | undefined;
  return { deps: { api: () => (api ??= loadNvmlControl(env.nvmlLibrary)), markerDir } };
}

function telemetryFor(env: AgentEnvironment, settings?: Int32Array): GpuTelemetry {
  const m = env.config.measurement;
  const t = env.config.telemetry;
  const cadence = {
    sampleIntervalMs: m.sampleIntervalMs,
    batchIntervalMs: m.telemetryBatchMs,
    tickAlign: t.tickAlign,
    markTimeoutMs: t.markTimeoutSeconds * 1000,
  };
  if (t.source === 'simulated') return createSimulatedGpu({ ...cadence, ...t.simulated, settings });
  // The backend inherits this container's CUDA_VISIBLE_DEVICES / NVIDIA_VISIBLE_DEVICES: the same
  // variables select the GPUs measured here (telemetry/visible-devices.ts), so both see one set.
  return createNvmlTelemetry({
    ...cadence,
    libraryPath: env.nvmlLibrary,
    visibility: env.visibility,
    attribution: t.attribution,
  });
}

function parse(argv: string[]): { configFile: string | undefined; command: string[]; help: boolean } {
  const dash = argv.indexOf('--');
  const own = dash < 0 ? argv : argv.slice(0, dash);
  const command = dash < 0 ? [] : argv.slice(dash + 1);
  try {
    const { values } = parseArgs({
      args: own,
      options: { config: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
    });
    return { configFile: values.config, command, help: values.help === true };
  } catch (err) {
    throw new InvalidInputError([{ file: 'llem agent', path: '', message: `${(err as Error).message}\n${USAGE}` }]);
  }
}

/** Wire SIGTERM/SIGINT and backend death to one abort; returns a disposer. */
function watch(
  abort: AbortController,
  backend: BackendProcess | null,
  received: { signal?: NodeJS.Signals },
): () => void {
  const onSignal = (sig: NodeJS.Signals): void => {
    received.signal = sig;
    setTimeout(() => process.exit(128 + constants.signals[sig]), HARD_EXIT_MS).unref();
    abort.abort(new InterruptedError(`received ${sig}`));
  };
  const forward = (sig: NodeJS.Signals): void => backend?.signal(sig);
  process
    .on('SIGTERM', onSignal)
    .on('SIGINT', onSignal)
    .on('SIGHUP', forward)
    .on('SIGUSR1', forward)
    .on('SIGUSR2', forward);
  void backend?.exited.then((exit) => {
    if (backend.terminating) return;
    const tail = backend.tail().slice(-10).join('\n  ');
    abort.abort(new BackendError(`backend ${describeExit(exit)}; last lines:\n  ${tail}`));
  });
  return () => {
    process
      .off('SIGTERM', onSignal)
      .off('SIGINT', onSignal)
      .off('SIGHUP', forward)
      .off('SIGUSR1', forward)
      .off('SIGUSR2', forward);
  };
}

/**
 * Once the backend answers its health check, its process tree (front, one worker per GPU, helpers) is complete:
 * a member dying from then on aborts the run with its pid and command (ADR 0025), instead of a half-served
 * window. The readiness poll here is the agent's own, repeated: cheap, and it keeps the runner untouched.
 */
function watchTreeWhenReady(env: AgentEnvironment, backend: BackendProcess, abort: AbortController): () => void {
  const stop = new AbortController();
  let tree: GroupWatch | null = null;
  const b = env.config.backend;
  void awaitBackendReady({
    url: new URL(b.readinessPath, b.baseUrl).toString(),
    timeoutMs: b.readinessTimeoutSeconds * 1000,
    pollMs: 500,
    signal: AbortSignal.any([stop.signal, abort.signal]),
  })
    .then(() => {
      if (stop.signal.aborted || abort.signal.aborted || backend.pid === undefined) return;
      tree = watchGroup(backend.pid);
      void tree.died.then((why) => {
        if (!backend.terminating) abort.abort(new BackendError(`backend ${why}`));
      });
    })
    .catch(() => undefined); // not ready in time: the runner reports that itself
  return () => {
    stop.abort();
    tree?.stop();
  };
}

export async function main(argv: string[]): Promise<number> {
  const args = parse(argv);
  if (args.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const env = loadAgentEnvironment(process.env, args.configFile);
  const log = rootLogger.child({
    component: 'agent',
    run: env.config.publisher.runId,
    replica: env.config.publisher.replica,
  });
  if (args.command.length > 0) writeBackendFiles(env.config.files);
  // Refuse GPU settings this pod may not change before anything starts (exit 2, naming the fields).
  const gpuControl = gpuControlFor(env);
  const bus = await openBus(env);
  const [cmd, ...cmdArgs] = args.command;
  const graceMs = env.config.backend.shutdownGraceSeconds * 1000;
  const backend =
    cmd === undefined
      ? null
      : startBackend(cmd, cmdArgs, { logger: log, orphanGuard: { graceMs }, uid: backendUid(process.env) });
  const abort = new AbortController();
  const received: { signal?: NodeJS.Signals } = {};
  const unwatch = watch(abort, backend, received);
  const untree = backend === null ? (): void => undefined : watchTreeWhenReady(env, backend, abort);
  try {
    const summary = await runAgent(env.config, {
      bus,
      telemetry: telemetryFor(env, gpuControl.cell),
      createSketch: createLatencySketch,
      signal: abort.signal,
      logger: log,
      ...(gpuControl.deps === undefined ? {} : { gpuControl: gpuControl.deps }),
    });
    log.info(
      { requestsOk: summary.requestsOk, requestsFailed: summary.requestsFailed, warnings: summary.warnings },
      'run complete',
    );
    return 0;
  } catch (err) {
    log.error({ err }, 'run did not complete');
    if (isLlemError(err)) process.stderr.write(`llem agent: ${err.message}\n`);
    // Killed by a signal: the conventional 128 + signal number (143 for SIGTERM).
    if (received.signal !== undefined) return 128 + constants.signals[received.signal];
    return isLlemError(err) ? err.exitCode : 1;
  } finally {
    unwatch();
    untree();
    if (backend !== null) log.info({ exit: describeExit(await backend.terminate(graceMs)) }, 'backend stopped');
    await bus.close().catch(() => undefined);
  }
}

/** LLEM_BACKEND_UID (set by the controller on pods that change GPU settings): the backend's user, when we are root. */
function backendUid(env: NodeJS.ProcessEnv): number | undefined {
  const v = Number(env['LLEM_BACKEND_UID']);
  return Number.isInteger(v) && v > 0 && process.getuid?.() === 0 ? v : undefined;
}
