// `llem run`: the whole experiment on this machine. Same planner (api/), agent (agent/) and
// aggregator (aggregator/) as the cluster, joined by the in-process bus.
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Aggregator } from '../aggregator/index.ts';
import { ladderActions, newAggregator } from '../aggregator/index.ts';
import { decodeMessages, experimentSubjectFilter, startSubject, PROTOCOL_VERSION } from '../api/protocol.ts';
import type { Configuration, PlannedRun } from '../api/matrix.ts';
import { sanitizeToken } from '../api/names.ts';
import { InProcessBus } from '../lib/bus/index.ts';
import type { Consumption } from '../lib/bus/types.ts';
import { formatIssue, InterruptedError, InvalidInputError, LlemError } from '../lib/errors.ts';
import { childOf, rootLogger, type Logger } from '../lib/log.ts';
import { loadExperimentFile, type LoadedExperiment } from '../lib/manifest/index.ts';
import { BackendPool } from './backends.ts';
import { BackendLedger } from './orphans.ts';
import { MessageObserver } from './observer.ts';
import type { ProgressSink } from './progress.ts';
import { LOCAL_NAMESPACE, runReplicas } from './run-replicas.ts';
import { writeResults, type ResultsSummary } from './results.ts';
import { RunLog } from './run-log.ts';
import { assertSameExperiment, ResultsDirectory, STATE_VERSION, type LocalState } from './state.ts';
import { awaitGpuMemoryReleased, nvmlMemoryReader, resolveLocalGpus, type LocalGpus } from './gpu-check.ts';
import { LOCK_FILE, lockResultsDirectory } from './lock.ts';
import { inSpan, traceApplied } from '../lib/telemetry/index.ts';
import { gpuEnvironment } from '../agent/index.ts';
import { LocalAdaptive, skippedByAdaptive } from './adaptive.ts';
import { assertLocalFiles } from './workload-files.ts';
import { localGpuControl, prepareGpuSettings, type LocalGpuControl } from './gpu-control.ts';

export interface LocalRunOptions {
  file: string;
  out?: string;
  simulate: boolean;
  fresh: boolean;
  serverCommand?: readonly string[];
  /** `llem mock-server` options (latencies, batch) for the simulated server under --simulate. */
  mockArgs?: readonly string[];
  /** The user's environment variables the backend server also gets (by name); nothing else of it does. */
  passEnv?: readonly string[];
  signal: AbortSignal;
  progress: ProgressSink;
  logger?: Logger;
}

export interface LocalRunOutcome extends ResultsSummary {
  exitCode: 0 | 1;
}

function ensureWritable(dir: string): void {
  const existed = existsSync(dir);
  if (existed && !statSync(dir).isDirectory()) {
    throw new InvalidInputError([
      { file: dir, path: '', message: 'is a file, not a directory; choose a directory with --out' },
    ]);
  }
  // Never write into (or --fresh clear) someone else's directory: only an empty one or our own.
  // A lock without state: another run has just started in it (the lock says so, exit 2).
  const ours = existsSync(join(dir, '.llem', 'state.json')) || existsSync(join(dir, LOCK_FILE));
  if (existed && readdirSync(dir).length > 0 && !ours) {
    throw new InvalidInputError([
      {
        file: dir,
        path: '',
        message: 'is not empty and is not a llem results directory (no .llem/state.json); choose a new or empty --out',
      },
    ]);
  }
  try {
    mkdirSync(dir, { recursive: true });
    const probe = join(dir, `.llem-write-test-${process.pid}`);
    writeFileSync(probe, '');
    rmSync(probe);
  } catch (err) {
    if (!existed) rmSync(dir, { recursive: true, force: true });
    throw new InvalidInputError(
      [
        {
          file: dir,
          path: '',
          message: `output directory is not writable (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); choose another with --out`,
        },
      ],
      { cause: err },
    );
  }
}

export function defaultOutDir(loaded: LoadedExperiment): string {
  return join('llem-results', sanitizeToken(loaded.experiment.metadata.name));
}

/**
 * LLEM_SIMULATED_GPU_WATTS (--simulate only): comma-separated constant power per simulated GPU, by machine-wide
 * index (replica r's GPUs are [r*g, (r+1)*g)), so each device draws its own power and per-GPU sums can be checked.
 */
export function simulatedDeviceWatts(env: NodeJS.ProcessEnv): number[] | undefined {
  const text = env['LLEM_SIMULATED_GPU_WATTS'];
  if (text === undefined || text.trim() === '') return undefined;
  const parts = text.split(',').map((x) => x.trim());
  const values = parts.map(Number);
  const bad = parts.findIndex((x, i) => x === '' || !Number.isFinite(values[i]) || (values[i] ?? -1) < 0);
  if (bad < 0 && values.length <= 4096) return values;
  throw new InvalidInputError([
    {
      file: 'LLEM_SIMULATED_GPU_WATTS',
      path: '',
      message: `must be comma-separated non-negative watts, one per simulated GPU (e.g. 150,450); entry ${bad + 1} is ${JSON.stringify(parts[bad] ?? '')}`,
    },
  ]);
}

function assertLocalDataset(loaded: LoadedExperiment): void {
  assertLocalFiles(loaded);
  if (loaded.matrix.configurations.every((c) => c.workload.dataset.configMapRef === undefined)) return;
  throw new InvalidInputError([
    {
      file: loaded.file,
      path: 'spec.workload.dataset.configMapRef',
      message:
        'a ConfigMap exists only in a cluster; for llem run, list the prompts under workload.dataset.prompts instead',
    },
  ]);
}

class LocalExperiment {
  // The aggregator checkpoints what it applied; old messages need not stay in memory for hours.
  readonly bus = new InProcessBus({ maxMessages: 50_000 });
  readonly pool: BackendPool;
  readonly observer: MessageObserver;
  readonly attempts = new Map<string, number>();
  private consumption: Consumption | null = null;
  private seqOffset: number;
  /** runs.ndjson, scanned once when the experiment opens (ADR 0025). */
  private readonly runLog: RunLog;

  readonly state: LocalState;
  readonly aggregator: Aggregator;
  /** The GPUs runs use (null with --simulate). */
  readonly gpus: LocalGpus | null;
  readonly gpuControl: LocalGpuControl;
  private readonly deviceWatts: number[] | undefined;

  constructor(
    readonly opts: LocalRunOptions,
    readonly loaded: LoadedExperiment,
    readonly dir: ResultsDirectory,
    opened: { state: LocalState; aggregator: Aggregator; gpus: LocalGpus | null; gpuControl: LocalGpuControl },
    readonly log: Logger,
  ) {
    this.gpus = opened.gpus;
    this.deviceWatts = opts.simulate ? simulatedDeviceWatts(process.env) : undefined;
    this.runLog = new RunLog(dir.dir);
    this.gpuControl = opened.gpuControl;
    this.state = opened.state;
    this.aggregator = opened.aggregator;
    this.seqOffset = this.aggregator.lastStreamSeq;
    this.pool = new BackendPool({
      simulate: opts.simulate,
      scratchDir: join(dir.stateDir, 'scratch'),
      ledgerFile: join(dir.stateDir, 'backends.json'),
      logger: log,
      signal: opts.signal,
      ...(opts.serverCommand !== undefined ? { serverCommand: opts.serverCommand } : {}),
      ...(opened.gpus === null
        ? {}
        : { gpuEntries: opened.gpus.entries, awaitGpuReleased: releaseWaiter(opened.gpus) }),
      ...(opts.mockArgs !== undefined ? { mockArgs: opts.mockArgs } : {}),
      ...(opts.passEnv !== undefined ? { passEnv: opts.passEnv } : {}),
    });
    this.observer = new MessageObserver((runId, attempt, ready) => this.maybeStart(runId, attempt, ready));
  }

  private configurationOf(run: PlannedRun): Configuration {
    const c = this.loaded.matrix.configurations.find((x) => x.id === run.configurationId);
    if (c === undefined)
      throw new LlemError('LLEM_E_RUN', `run ${run.id} names unknown configuration ${run.configurationId}`);
    return c;
  }

  private maybeStart(runId: string, attempt: number, ready: Set<number>): void {
    const run = this.loaded.matrix.runs.find((r) => r.id === runId);
    if (run === undefined || ready.size < this.configurationOf(run).replicas) return;
    const signal = {
      v: PROTOCOL_VERSION,
      experimentUid: this.state.experimentUid,
      runId,
      attempt,
      startAtMs: Date.now() + 100,
    };
    void this.bus.publishControl(
      startSubject(LOCAL_NAMESPACE, this.state.experimentUid, runId),
      new TextEncoder().encode(JSON.stringify(signal)),
    );
  }

  async startConsuming(): Promise<void> {
    this.consumption = await this.bus.consume({
      durable: 'local',
      filterSubject: experimentSubjectFilter(LOCAL_NAMESPACE, this.state.experimentUid),
      afterStreamSeq: 0,
      handler: async (m) => {
        const decoded = decodeMessages(m.data);
        if (!decoded.ok) return 'dead-letter';
        // The in-process stream restarts at 1 in every process; the restored aggregator remembers the old sequence.
        this.aggregator.applyBatch(decoded.messages, m.streamSeq + this.seqOffset);
        for (const message of decoded.messages) {
          traceApplied(message, m.headers);
          this.observer.observe(message, (id) => this.attempts.get(id));
          if (message.kind === 'hello' && Object.keys(this.state.environment).length === 0) {
            this.state.environment = this.observer.get(message.runId)?.environment ?? {};
            // Once per experiment: run transitions are journalled, the environment lives in the snapshot.
            this.dir.writeState(this.state);
          }
        }
        return 'ack';
      },
    });
  }

  async drain(): Promise<void> {
    await this.consumption?.idle();
  }

  async close(): Promise<void> {
    await this.consumption?.stop();
    await this.pool.stopAll();
    await this.bus.close();
  }

  private runStatus(runId: string): string {
    return this.aggregator.runResult(runId)?.status ?? 'pending';
  }

  /** All attempts of one run, up to policy.retries + 1. */
  async execute(run: PlannedRun, index: number): Promise<void> {
    const record = this.state.runs[run.id] ?? { status: 'pending', attempts: 0, lastError: null };
    // A crash between writing a run's file and recording it complete leaves a file of an attempt
    // that is about to be superseded: drop it so runs/ only ever describes what results hold.
    this.runLog.supersede(run.id);
    const maxAttempts = this.loaded.experiment.spec.policy.retries + 1;
    const configuration = this.configurationOf(run);
    // Attempt numbers keep counting across resumes (the aggregator drops older attempts' data);
    // the retry budget is per invocation, so a resumed run gets its full set of tries.
    for (let tries = 0; tries < maxAttempts; tries += 1) {
      const attempt = record.attempts;
      record.attempts += 1;
      record.status = 'running';
      this.state.runs[run.id] = record;
      this.dir.recordRun(run.id, record);
      this.attempts.set(run.id, attempt);
      // Before any agent starts: the aggregator refuses messages of attempts never started.
      this.aggregator.startAttempt(run.id, attempt);
      this.observer.reset(run.id);
      this.opts.progress.event({
        type: 'run',
        runId: run.id,
        index,
        total: this.loaded.matrix.runs.length,
        attempt,
        requests: configuration.workload.requests,
      });
      let error: string | null;
      try {
        // One span per attempt: agents start -> their data applied (drain); the agents' spans are its children.
        const attrs = {
          'llem.run.id': run.id,
          'llem.run.attempt': attempt,
          'llem.config.hash': configuration.configHash,
        };
        error = await inSpan('llem.run.attempt', attrs, async (span) => {
          const backends = await this.pool.ensure(configuration);
          const failed = await runReplicas({
            experiment: this.loaded.experiment,
            experimentUid: this.state.experimentUid,
            configuration,
            run,
            attempt,
            backends,
            bus: this.bus,
            simulate: this.opts.simulate,
            simulatedDeviceWatts: this.deviceWatts,
            nvmlLibrary: gpuEnvironment(process.env).nvmlLibrary,
            signal: this.opts.signal,
            logger: this.log,
            gpuControl: this.gpuControl,
          });
          await this.drain();
          const outcome = failed === null ? this.runStatus(run.id) : 'failed';
          span.setAttributes({ 'llem.run.outcome': outcome, ...(failed === null ? {} : { 'llem.run.error': failed }) });
          return failed;
        });
      } catch (err) {
        if (this.opts.signal.aborted) throw new InterruptedError('interrupted', { cause: err });
        error = err instanceof Error ? err.message : String(err);
      }
      await this.drain();
      if (this.opts.signal.aborted) throw new InterruptedError(`interrupted during run ${run.id}`);
      const status = this.runStatus(run.id);
      if (status === 'complete') {
        record.status = 'complete';
        record.lastError = null;
        this.finishRun(run.id);
        this.opts.progress.event({ type: 'runEnd', runId: run.id, status: 'complete', detail: '' });
        return;
      }
      record.lastError = error ?? `run data incomplete (${status})`;
      if (tries + 1 < maxAttempts)
        this.opts.progress.event({ type: 'runEnd', runId: run.id, status: 'retry', detail: record.lastError });
    }
    record.status = 'failed';
    this.dir.writeCheckpoint(this.aggregator.checkpoint());
    this.dir.recordRun(run.id, record);
    this.opts.progress.event({ type: 'runEnd', runId: run.id, status: 'failed', detail: record.lastError ?? '' });
  }

  /**
   * A load-ladder step past saturation is skipped, decided from recorded results only (so a resumed
   * run decides the same). Runs are staged (api/matrix.ts), so every earlier step has ended here.
   */
  ladderSkip(run: PlannedRun): boolean {
    if (run.ladder === undefined) return false;
    const ended = (id: string): boolean =>
      ['complete', 'failed', 'skipped'].includes(this.state.runs[id]?.status ?? '');
    const action = ladderActions({
      configurations: this.loaded.matrix.configurations,
      runs: this.loaded.matrix.runs,
      slo: this.loaded.experiment.spec.slo,
      aggregator: this.aggregator,
      results: this.aggregator.results(),
      ended,
    }).get(run.id);
    if (action?.action === 'hold')
      throw new LlemError('LLEM_E_RUN', `run ${run.id} is out of ladder order: ${action.reason}`);
    if (action?.action !== 'skip') return false;
    const record = this.state.runs[run.id] ?? { status: 'pending', attempts: 0, lastError: null };
    record.status = 'skipped';
    record.lastError = action.reason;
    this.state.runs[run.id] = record;
    this.dir.recordRun(run.id, record);
    this.opts.progress.event({ type: 'runEnd', runId: run.id, status: 'skipped', detail: action.reason });
    return true;
  }

  /** Checkpoint first, then the per-run file, then the state that says "complete". */
  private finishRun(runId: string): void {
    this.dir.writeCheckpoint(this.aggregator.checkpoint());
    const result = this.aggregator.runResult(runId);
    const o = this.observer.get(runId);
    if (result !== null && o !== undefined)
      this.runLog.append({
        result,
        power: o.power,
        marks: o.marks,
        windowStartMs: o.windowStartMs,
        windowEndMs: o.windowEndMs,
      });
    const record = this.state.runs[runId];
    if (record !== undefined) this.dir.recordRun(runId, record);
  }
}

/** Memory per GPU now, before any backend: what each later server must give back. */
function releaseWaiter(gpus: LocalGpus): () => Promise<void> {
  const reader = nvmlMemoryReader(gpus.measuredUuids);
  const baseline = reader.read();
  return () => awaitGpuMemoryReleased(baseline, { read: reader.read });
}

function freshAggregator(uid: string, loaded: LoadedExperiment): Aggregator {
  const spec = loaded.experiment.spec;
  return newAggregator(uid, loaded.matrix, spec.placement.replicas, spec.policy.failurePolicy);
}

function openState(
  opts: LocalRunOptions,
  loaded: LoadedExperiment,
  dir: ResultsDirectory,
  uid: string,
): { state: LocalState; aggregator: Aggregator } {
  if (opts.fresh) dir.clear();
  const previous = dir.readState();
  if (previous !== null) {
    assertSameExperiment(previous, loaded.experiment, opts.file, dir.dir);
    if (previous.simulated !== opts.simulate) {
      throw new InvalidInputError([
        {
          file: opts.file,
          path: '',
          message: `${dir.dir} was started ${previous.simulated ? 'with' : 'without'} --simulate; resume the same way, or use --fresh`,
        },
      ]);
    }
    return { state: previous, aggregator: dir.restoreCheckpoint() ?? freshAggregator(uid, loaded) };
  }
  const state: LocalState = {
    version: STATE_VERSION,
    manifestFile: resolve(opts.file),
    experimentUid: uid,
    simulated: opts.simulate,
    experiment: JSON.parse(JSON.stringify(loaded.experiment)) as unknown,
    startedAt: new Date().toISOString(),
    runs: {},
    environment: {},
  };
  return { state, aggregator: freshAggregator(uid, loaded) };
}

export async function runLocalExperiment(opts: LocalRunOptions): Promise<LocalRunOutcome> {
  const loaded = await loadExperimentFile(opts.file);
  assertLocalDataset(loaded);
  let gpus: LocalGpus | null = null;
  // Replicas x gpusPerRun GPUs, or exit 2 naming the field, before anything is written.
  if (!opts.simulate) gpus = resolveLocalGpus(loaded);
  else simulatedDeviceWatts(process.env);
  const out = opts.out ?? defaultOutDir(loaded);
  ensureWritable(out);
  const lock = lockResultsDirectory(out);
  try {
    const notes =
      lock.tookOverFrom === null
        ? []
        : [
            `took over the lock of an llem run that is gone (PID ${lock.tookOverFrom.pid}, started ${lock.tookOverFrom.startedAt})`,
          ];
    return await runLocked({ opts, loaded, out, gpus }, notes);
  } finally {
    lock.release();
  }
}

interface LockedRun {
  opts: LocalRunOptions;
  loaded: LoadedExperiment;
  out: string;
  gpus: LocalGpus | null;
}

async function runLocked(run: LockedRun, notes: string[]): Promise<LocalRunOutcome> {
  const { opts, loaded, out, gpus } = run;
  const dir = new ResultsDirectory(out);
  const log = childOf(opts.logger ?? rootLogger, { experiment: loaded.experiment.metadata.name });
  // A killed earlier run may have left its server running (on the GPU, drawing power): stop it first.
  await new BackendLedger(join(dir.stateDir, 'backends.json')).reap(log);
  const uid = `local-${sanitizeToken(loaded.experiment.metadata.name)}`;
  const gpuControl = localGpuControl({
    simulate: opts.simulate,
    gpuCount: loaded.experiment.spec.placement.gpusPerRun,
    stateDir: dir.stateDir,
    env: process.env,
    nvmlLibrary: gpuEnvironment(process.env).nvmlLibrary,
  });
  // Before any state is written: settings outside the GPU's range are bad input (exit 2), nothing half-done.
  notes.push(
    ...prepareGpuSettings(gpuControl, loaded.matrix.configurations, gpus?.measuredUuids ?? [], opts.file, log),
  );
  const { state, aggregator } = openState(opts, loaded, dir, uid);
  dir.writeState(state);
  const exp = new LocalExperiment(opts, loaded, dir, { state, aggregator, gpus, gpuControl }, log);
  const adaptive = LocalAdaptive.of(loaded.experiment.spec, loaded.matrix, state, aggregator);
  opts.progress.attach?.({ current: (id) => exp.observer.get(id) });
  const done = loaded.matrix.runs.filter((r) => state.runs[r.id]?.status === 'complete').length;
  const warnings = [...notes, ...loaded.warnings.map((w) => formatIssue(w))];
  opts.progress.event({
    type: 'start',
    total: loaded.matrix.runs.length,
    done,
    simulated: opts.simulate,
    out,
    warnings,
  });
  try {
    await exp.startConsuming();
    const attrs = {
      'llem.experiment.name': loaded.experiment.metadata.name,
      'llem.experiment.uid': uid,
      'llem.runtime': 'local',
      'llem.simulated': opts.simulate,
    };
    await inSpan('llem.experiment', attrs, async () => {
      for (const [index, run] of loaded.matrix.runs.entries()) {
        if (state.runs[run.id]?.status === 'complete') continue;
        if (adaptive !== null && skippedByAdaptive(adaptive, run.id, opts.progress)) continue;
        adaptive?.forget(run.id);
        if (exp.ladderSkip(run)) continue;
        await exp.execute(run, index);
      }
    });
  } catch (err) {
    // Interrupted: what is complete is still worth a look; the next `llem run` continues.
    if (err instanceof InterruptedError)
      writeResults({ dir: out, loaded, state, results: aggregator.results(), aggregator, adaptive });
    throw err;
  } finally {
    await exp.close();
  }
  const summary = writeResults({ dir: out, loaded, state, results: aggregator.results(), aggregator, adaptive });
  opts.progress.event({ type: 'finish', summary });
  return {
    ...summary,
    exitCode: summary.runsFailed > 0 && loaded.experiment.spec.policy.failurePolicy === 'strict' ? 1 : 0,
  };
}
