// Progress while `llem run` works: a live line on a TTY (current run, phase, requests, elapsed/ETA),
// plain log lines otherwise. Output goes to stderr so `--json` stdout stays machine-readable.
import type { ResultsSummary } from './results.ts';

export type ProgressEvent =
  | { type: 'start'; total: number; done: number; simulated: boolean; out: string; warnings?: string[] }
  | { type: 'run'; runId: string; index: number; total: number; attempt: number; requests: number }
  | { type: 'runEnd'; runId: string; status: 'complete' | 'retry' | 'failed' | 'skipped'; detail: string }
  | { type: 'finish'; summary: ResultsSummary };

export interface ProgressSink {
  event(e: ProgressEvent): void;
  /** Lets a live view poll the run in flight. */
  attach?(source: LiveSource): void;
}

export interface LiveSource {
  /** Current phase and requests done of the run in flight. */
  current(runId: string): { phase: string; requestsDone: number } | undefined;
}

function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

export class ConsoleProgress implements ProgressSink {
  private readonly started = Date.now();
  private total = 0;
  private finished = 0;
  private runStartedAt = Date.now();
  private current: { runId: string; index: number; requests: number; attempt: number } | null = null;
  private timer: NodeJS.Timeout | null = null;
  private source: LiveSource | null = null;

  constructor(
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly live = stream.isTTY === true,
  ) {}

  attach(source: LiveSource): void {
    this.source = source;
  }

  private line(text: string): void {
    if (this.live) this.stream.write('\r\x1b[2K');
    this.stream.write(text + '\n');
  }

  private render(): void {
    const c = this.current;
    if (c === null) return;
    const now = this.source?.current(c.runId);
    const elapsed = Date.now() - this.started;
    const perRun = this.finished > 0 ? elapsed / this.finished : null;
    const eta = perRun === null ? '?' : duration(perRun * (this.total - this.finished));
    const text = `run ${c.index + 1}/${this.total} ${c.runId} [${now?.phase ?? 'starting'}] requests ${now?.requestsDone ?? 0}/${c.requests} · elapsed ${duration(elapsed)} · ETA ${eta}`;
    this.stream.write(`\r\x1b[2K${text.slice(0, (this.stream.columns ?? 120) - 1)}`);
  }

  event(e: ProgressEvent): void {
    switch (e.type) {
      case 'start':
        this.total = e.total;
        this.finished = e.done;
        this.line(
          `llem: ${e.total} runs (${e.done} already complete)${e.simulated ? ' — SIMULATED GPU and mock server' : ''}; results in ${e.out}`,
        );
        for (const w of e.warnings ?? []) this.line(`llem: warning: ${w}`);
        if (this.live) this.timer = setInterval(() => this.render(), 250);
        break;
      case 'run':
        this.current = { runId: e.runId, index: e.index, requests: e.requests, attempt: e.attempt };
        this.runStartedAt = Date.now();
        if (!this.live) this.line(`run ${e.index + 1}/${e.total} ${e.runId} attempt ${e.attempt}: started`);
        break;
      case 'runEnd':
        if (e.status === 'complete' || e.status === 'skipped') this.finished += 1;
        if (e.status === 'skipped') {
          this.line(`run ${e.runId}: not needed — ${e.detail}`);
          break;
        }
        this.line(
          `run ${e.runId}: ${e.status} in ${duration(Date.now() - this.runStartedAt)}${e.detail === '' ? '' : ` — ${e.detail}`}`,
        );
        break;
      case 'finish':
        if (this.timer !== null) clearInterval(this.timer);
        this.timer = null;
        this.line(finishText(e.summary));
        break;
    }
  }

  close(): void {
    if (this.timer !== null) clearInterval(this.timer);
  }
}

export function finishText(s: ResultsSummary): string {
  const b = s.best;
  const net = b?.baselineSubtractedJoulesPerToken ?? null;
  const best =
    b === null
      ? 'no configuration has a J/token value'
      : `best (lowest gross J/token): ${b.label} at ${b.joulesPerToken.toPrecision(4)} J/token, ` +
        `${net === null ? 'baseline-subtracted unavailable' : `${net.toPrecision(4)} baseline-subtracted`}` +
        `${b.fewCycles ? ` (${b.cycles} cycle(s): fewer than 3)` : ''}`;
  return `llem: ${s.runsComplete}/${s.runsPlanned} runs complete${s.runsFailed > 0 ? `, ${s.runsFailed} failed` : ''}${s.runsSkipped > 0 ? `, ${s.runsSkipped} not needed (adaptive cycles)` : ''}; ${best}${s.simulated ? ' (simulated)' : ''}; report: ${s.out}/report.html`;
}
