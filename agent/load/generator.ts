import { setMaxListeners } from 'node:events';
// Load generator: offline (all at once), concurrency (closed loop), rate (open-loop Poisson).
import type { ApiKind, RequestHooks, RequestResult, StreamRequest } from './client.ts';
import { drawLength, poissonGapMs, seededRng, syntheticPrompt, type Rng, type TokenLength } from './prompts.ts';
import { traceRequest, type TraceRequest } from './trace.ts';
import { turnPrompt, type Conversation } from './conversation.ts';

export type LoadMode = 'offline' | 'concurrency' | 'rate';

export interface Workload {
  api: ApiKind;
  model: string;
  mode: LoadMode;
  concurrency: number;
  ratePerSecond: number;
  inputTokens: TokenLength;
  outputTokens: TokenLength;
  ignoreEos: boolean;
  temperature: number;
  /** Nucleus sampling (1: off). */
  topP?: number;
  /** Cap on each request's output length (workload.sampling.maxTokens). */
  maxTokens?: number;
  seed: number;
  /** Inline prompts, used round-robin instead of synthetic ones. */
  prompts?: string[] | undefined;
  /** A request trace: its lengths, and (runLoad) its arrival times, scaled by traceTimeScale. */
  trace?: TraceRequest[] | undefined;
  /** 2: the trace replayed at half speed; 0.5: twice as fast. */
  traceTimeScale?: number | undefined;
  /** Multi-turn conversations, `concurrency` of them at once (conversation.ts). */
  conversations?: Conversation[] | undefined;
  /** Synthetic prompts start with one of `prefixes` shared prefixes of `prefixTokens` tokens. */
  sharedPrefix?: { prefixes: number; prefixTokens: number } | undefined;
}

/** Anything that can send one request: the streaming client, or a fake in tests. */
export interface RequestSender {
  send(req: StreamRequest, signal?: AbortSignal, hooks?: RequestHooks): Promise<RequestResult>;
  /** Open and use this many keep-alive connections now (StreamingClient.warm); resolves with how many. */
  warm?(connections: number, path: string): Promise<number>;
}

export interface LoadRunOptions {
  /** Requests to issue at least. */
  requests: number;
  /** Keep issuing (same request stream) until this much time has passed, too. */
  minDurationMs?: number;
  signal: AbortSignal;
  onResult: (r: RequestResult) => void;
  onInFlight?: (inFlight: number) => void;
  /** The first `target` requests all have their first token: the batch is full (steady state opens). */
  onSaturated?: () => void;
  /** No further request will be issued (steady-state window closes). */
  onDraining?: () => void;
  /** Rate mode: how late (ms) each request left against its Poisson schedule (client health). */
  onScheduleLag?: (lagMs: number) => void;
}

/** Deterministic request stream: the same seed gives the same prompts and lengths. */
export class RequestFactory {
  private readonly rng: Rng;
  private readonly workload: Workload;
  private n = 0;

  private readonly prefixes: string[];

  constructor(workload: Workload, seedOffset = 0) {
    this.workload = workload;
    this.rng = seededRng(workload.seed + seedOffset);
    // The same prefixes for the warm-up and the window (their own seed, not the offset one).
    const sp = workload.sharedPrefix;
    const prefixRng = seededRng(workload.seed ^ 0x70726566);
    this.prefixes =
      sp === undefined ? [] : Array.from({ length: sp.prefixes }, () => syntheticPrompt(sp.prefixTokens, prefixRng));
  }

  /** One turn of a conversation: its prompt, and its output length (or the workload's). */
  turn(prompt: string, outputTokens: number | undefined): StreamRequest {
    const out = outputTokens ?? drawLength(this.workload.outputTokens, this.rng);
    const req = this.request(prompt, { inputTokens: prompt.split(/\s+/).length, outputTokens: out });
    return { ...req, collectText: true };
  }

  private synthetic(tokens: number): { prompt: string; tokens: number } {
    const suffix = syntheticPrompt(tokens, this.rng);
    if (this.prefixes.length === 0) return { prompt: suffix, tokens };
    const i = Math.floor(this.rng() * this.prefixes.length);
    const prefixTokens = this.workload.sharedPrefix?.prefixTokens ?? 0;
    return { prompt: `${this.prefixes[i] ?? ''} ${suffix}`, tokens: prefixTokens + tokens };
  }

  next(): StreamRequest {
    const w = this.workload;
    const inline = w.prompts !== undefined && w.prompts.length > 0 ? w.prompts[this.n % w.prompts.length] : undefined;
    const traced = w.trace !== undefined && w.trace.length > 0 ? traceRequest(w.trace, this.n) : undefined;
    this.n++;
    if (traced !== undefined) return this.request(syntheticPrompt(traced.inputTokens, this.rng), traced);
    const drawn = inline === undefined ? this.synthetic(drawLength(w.inputTokens, this.rng)) : undefined;
    const promptTokens = drawn?.tokens ?? (inline ?? '').split(/\s+/).length;
    return {
      api: w.api,
      model: w.model,
      prompt: inline ?? drawn?.prompt ?? '',
      promptTokens,
      maxTokens: Math.min(drawLength(w.outputTokens, this.rng), w.maxTokens ?? Infinity),
      ignoreEos: w.ignoreEos,
      temperature: w.temperature,
      ...(w.topP !== undefined ? { topP: w.topP } : {}),
    };
  }

  private request(prompt: string, lengths: { inputTokens: number; outputTokens: number }): StreamRequest {
    const w = this.workload;
    return {
      api: w.api,
      model: w.model,
      prompt,
      promptTokens: lengths.inputTokens,
      maxTokens: Math.min(lengths.outputTokens, w.maxTokens ?? Infinity),
      ignoreEos: w.ignoreEos,
      temperature: w.temperature,
      ...(w.topP !== undefined ? { topP: w.topP } : {}),
    };
  }
}

export interface LoadRunStats {
  issued: number;
  completed: number;
  durationMs: number;
}

class LoadRun {
  issued = 0;
  completed = 0;
  private streaming = 0;
  inFlight = 0;
  private saturated = false;
  private draining = false;
  readonly t0 = performance.now();
  private readonly sender: RequestSender;
  private readonly factory: RequestFactory;
  private readonly opts: LoadRunOptions;
  private readonly target: number;

  constructor(sender: RequestSender, factory: RequestFactory, opts: LoadRunOptions, target: number) {
    this.sender = sender;
    this.factory = factory;
    this.opts = opts;
    this.target = target;
  }

  private readonly hooks: RequestHooks = {
    onFirstToken: () => {
      this.streaming++;
      if (!this.saturated && this.streaming >= this.target) {
        this.saturated = true;
        this.opts.onSaturated?.();
      }
    },
  };

  wantMore(): boolean {
    if (this.opts.signal.aborted) return false;
    return this.issued < this.opts.requests || performance.now() - this.t0 < (this.opts.minDurationMs ?? 0);
  }

  scheduleLag(lagMs: number): void {
    this.opts.onScheduleLag?.(lagMs);
  }

  drain(): void {
    if (this.draining) return;
    this.draining = true;
    this.opts.onDraining?.();
  }

  async one(given?: StreamRequest): Promise<RequestResult> {
    this.issued++;
    this.inFlight++;
    this.opts.onInFlight?.(this.inFlight);
    const req = given ?? this.factory.next();
    const result = await this.sender.send(req, this.opts.signal, this.hooks);
    this.inFlight--;
    this.completed++;
    // Drain is noted before the result is counted: a steady-state window excludes the tail.
    if (!this.wantMore()) this.drain();
    this.opts.onInFlight?.(this.inFlight);
    this.opts.onResult(result);
    return result;
  }

  /** Multi-turn: each worker walks whole conversations, one turn after the answer plus think time. */
  async conversations(list: readonly Conversation[], workers: number): Promise<void> {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (this.wantMore()) {
        const c = list[next++ % list.length];
        if (c === undefined) return;
        let history = '';
        for (const turn of c.turns) {
          if (!this.wantMore()) return;
          const prompt = turnPrompt(history, turn.user);
          const result = await this.one(this.factory.turn(prompt, turn.outputTokens));
          // A failed turn ends its conversation: the next turn would lack its answer.
          if (!result.ok) break;
          history = `${prompt} ${result.text ?? ''}\n`;
          if (turn.thinkTimeMs > 0) await abortableSleep(turn.thinkTimeMs, this.opts.signal);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, workers) }, worker));
  }
}

async function closedLoop(run: LoadRun, workers: number): Promise<void> {
  const worker = async (): Promise<void> => {
    while (run.wantMore()) await run.one();
  };
  await Promise.all(Array.from({ length: Math.max(1, workers) }, worker));
}

async function offline(run: LoadRun, batch: number): Promise<void> {
  while (run.wantMore()) {
    const wave: Promise<unknown>[] = [];
    for (let i = 0; i < batch && run.wantMore(); i++) wave.push(run.one());
    await Promise.all(wave);
  }
}

/** Gap (ms) before arrival n+1, given arrival n: the open loop's schedule. */
type Schedule = (n: number) => number;

function poissonSchedule(ratePerSecond: number, rng: Rng): Schedule {
  return () => poissonGapMs(ratePerSecond, rng);
}

/** The trace's own gaps, times `scale`; past its end it repeats (traceRequest). */
export function traceSchedule(trace: readonly TraceRequest[], scale: number): Schedule {
  return (n) => (traceRequest(trace, n + 1).atMs - traceRequest(trace, n).atMs) * scale;
}

async function openLoop(run: LoadRun, gapMs: Schedule, signal: AbortSignal): Promise<void> {
  let n = 0;
  const pending = new Set<Promise<void>>();
  // A sender that throws (a dead client thread) stops the arrivals; the error is rethrown once the
  // requests in flight are done, never left as an unhandled rejection while the loop sleeps.
  let failure: { error: unknown } | null = null;
  let due = performance.now();
  while (run.wantMore() && failure === null) {
    const now = performance.now();
    // Issue every arrival already due: timer granularity must not thin out a high rate.
    while (due <= now && run.wantMore() && failure === null) {
      run.scheduleLag(performance.now() - due);
      const p: Promise<void> = run
        .one()
        .then(() => undefined)
        .catch((error: unknown) => {
          failure ??= { error };
        })
        .finally(() => pending.delete(p));
      pending.add(p);
      due += gapMs(n++);
    }
    if (!run.wantMore() || failure !== null) break;
    await abortableSleep(Math.max(0, due - performance.now()), signal);
  }
  run.drain();
  await Promise.all(pending);
  if (failure !== null) throw (failure as { error: unknown }).error;
}

export function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

export async function runLoad(
  sender: RequestSender,
  factory: RequestFactory,
  workload: Workload,
  opts: LoadRunOptions,
): Promise<LoadRunStats> {
  // Every request in flight listens for the stop signal: hundreds at once is the point, not a leak.
  setMaxListeners(0, opts.signal);
  const target =
    workload.mode === 'offline' ? opts.requests : workload.mode === 'concurrency' ? workload.concurrency : 1;
  const run = new LoadRun(sender, factory, opts, Math.max(1, target));
  // A trace is its own schedule, whatever the mode says; conversations are a closed loop of `concurrency`.
  if (workload.conversations !== undefined && workload.conversations.length > 0)
    await run.conversations(workload.conversations, workload.concurrency);
  else if (workload.trace !== undefined && workload.trace.length > 0)
    await openLoop(run, traceSchedule(workload.trace, workload.traceTimeScale ?? 1), opts.signal);
  else if (workload.mode === 'offline') await offline(run, opts.requests);
  else if (workload.mode === 'concurrency') await closedLoop(run, workload.concurrency);
  else await openLoop(run, poissonSchedule(workload.ratePerSecond, seededRng(workload.seed ^ 0x5eed)), opts.signal);
  run.drain();
  return { issued: run.issued, completed: run.completed, durationMs: performance.now() - run.t0 };
}
