// Request traces (issue #22 item 5): arrival times and input/output lengths, replayed with their timing.
// One JSON object a line. Accepted field names, so public traces load as they are (docs/workloads.md):
//   llem:      {"timestampMs": 0, "inputTokens": 512, "outputTokens": 128}
//   Mooncake:  {"timestamp": 0 (ms), "input_length": 512, "output_length": 128, ...}
//   Azure LLM inference (2023/2024, converted to JSON lines): {"TIMESTAMP": "2023-11-16 18:15:46.6805900",
//              "ContextTokens": 512, "GeneratedTokens": 128}
//   BurstGPT:  {"Timestamp": 0.5 (s), "Request tokens": 512, "Response tokens": 128, ...}
// Times are made relative to the first line; lines must be in time order (a trace is a schedule).
import { InvalidInputError, type InputIssue } from '../../lib/errors.ts';

export interface TraceRequest {
  /** Arrival time from the trace's first request, ms. */
  atMs: number;
  inputTokens: number;
  outputTokens: number;
}

type Row = Record<string, unknown>;

/** [time field, unit to ms], then input and output length fields, per format. */
const TIME_FIELDS: Array<[string, number | 'date']> = [
  ['timestampMs', 1],
  ['timestamp', 1],
  ['TIMESTAMP', 'date'],
  ['Timestamp', 1000],
];
const INPUT_FIELDS = ['inputTokens', 'input_length', 'ContextTokens', 'Request tokens'];
const OUTPUT_FIELDS = ['outputTokens', 'output_length', 'GeneratedTokens', 'Response tokens'];

function timeOf(row: Row): { ms: number } | { error: string } {
  for (const [field, unit] of TIME_FIELDS) {
    const v = row[field];
    if (v === undefined) continue;
    const ms =
      unit === 'date' && typeof v === 'string' ? Date.parse(`${v.replace(' ', 'T').slice(0, 23)}Z`) : Number(v);
    if (typeof v === 'boolean' || !Number.isFinite(ms))
      return { error: `${field} is not a time (got ${JSON.stringify(v)})` };
    return { ms: unit === 'date' ? ms : ms * unit };
  }
  return { error: `has no arrival time (one of ${TIME_FIELDS.map(([f]) => f).join(', ')})` };
}

function lengthOf(row: Row, fields: readonly string[], what: string): { n: number } | { error: string } {
  const field = fields.find((f) => row[f] !== undefined);
  if (field === undefined) return { error: `has no ${what} length (one of ${fields.join(', ')})` };
  const v = row[field];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1)
    return { error: `${field} must be a positive integer token count (got ${JSON.stringify(v)})` };
  return { n: v };
}

function parseLine(text: string, where: string): { row?: TraceRequest & { absMs: number }; issue?: InputIssue } {
  let row: unknown;
  try {
    row = JSON.parse(text);
  } catch {
    return { issue: { file: where, path: '', message: 'is not a JSON object' } };
  }
  if (typeof row !== 'object' || row === null || Array.isArray(row))
    return { issue: { file: where, path: '', message: 'is not a JSON object' } };
  const t = timeOf(row as Row);
  const i = lengthOf(row as Row, INPUT_FIELDS, 'input');
  const o = lengthOf(row as Row, OUTPUT_FIELDS, 'output');
  for (const r of [t, i, o]) if ('error' in r) return { issue: { file: where, path: '', message: r.error } };
  const absMs = (t as { ms: number }).ms;
  return { row: { absMs, atMs: 0, inputTokens: (i as { n: number }).n, outputTokens: (o as { n: number }).n } };
}

/** Parses a JSONL trace; every bad line is an issue naming file:line. Throws InvalidInputError (exit 2). */
export function parseTrace(text: string, file: string): TraceRequest[] {
  const out: Array<TraceRequest & { absMs: number }> = [];
  const issues: InputIssue[] = [];
  text.split('\n').forEach((line, n) => {
    if (line.trim() === '' || issues.length >= 20) return;
    const where = `${file}:${n + 1}`;
    const { row, issue } = parseLine(line, where);
    if (issue !== undefined) return void issues.push(issue);
    const prev = out.at(-1);
    if (row !== undefined && prev !== undefined && row.absMs < prev.absMs) {
      issues.push({ file: where, path: '', message: 'arrives before the line above it: sort the trace by time' });
      return;
    }
    if (row !== undefined) out.push(row);
  });
  if (issues.length === 0 && out.length === 0)
    issues.push({
      file,
      path: '',
      message: 'holds no requests (one JSON object with a time and two lengths per line)',
    });
  if (issues.length > 0) throw new InvalidInputError(issues);
  const t0 = out[0]?.absMs ?? 0;
  return out.map((r) => ({ atMs: r.absMs - t0, inputTokens: r.inputTokens, outputTokens: r.outputTokens }));
}

/** Request n of a replay: the trace repeats (shifted by its span plus one mean gap) when n passes its end. */
export function traceRequest(trace: readonly TraceRequest[], n: number): TraceRequest {
  const len = trace.length;
  const last = trace[len - 1] ?? { atMs: 0, inputTokens: 1, outputTokens: 1 };
  const period = last.atMs + (len > 1 ? last.atMs / (len - 1) : 1000);
  const r = trace[n % len] ?? last;
  return { ...r, atMs: r.atMs + Math.floor(n / len) * period };
}
