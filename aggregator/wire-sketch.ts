// Accepting a latency sketch from the wire. The sketch decoder (lib/sketch, ADR 0012) checks the
// encoding and every header field against the buckets (NaN, Infinity, negatives, lying counts);
// this adds what a latency cannot be, so no sum the run keeps can grow past what a checkpoint holds.
import { LogHistogram } from '../lib/sketch/index.ts';

/** No request waits 115 days: a larger latency is a broken value (and sums of such could overflow). */
export const MAX_LATENCY_MS = 1e10;

export type AcceptedSketch = { sketch: LogHistogram; problem: null } | { sketch: null; problem: string };

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function acceptWireSketch(base64: string): AcceptedSketch {
  let sketch: LogHistogram;
  try {
    sketch = LogHistogram.deserialize(Buffer.from(base64, 'base64'));
  } catch (err) {
    return { sketch: null, problem: `could not be decoded: ${describe(err)}` };
  }
  if (sketch.count > 0 && !(sketch.max <= MAX_LATENCY_MS)) {
    const problem = `is implausible: its maximum ${sketch.max} ms is above the plausible ${MAX_LATENCY_MS} ms`;
    return { sketch: null, problem };
  }
  return { sketch, problem: null };
}
