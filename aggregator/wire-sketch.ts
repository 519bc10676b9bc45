// Accepting a latency sketch from the wire. The sketch decoder (lib/sketch, ADR 0012) checks the
// encoding and every header field against the buckets (NaN, Infinity, negatives, lying counts);
// this adds what a latency cannot be, so no sum the run keeps can grow past what a checkpoint holds.
import { LogHistogram, type Buckets, type DecodedSketch } from '../lib/sketch/index.ts';

/** No request waits 115 days: a larger latency is a broken value (and sums of such could overflow). */
export const MAX_LATENCY_MS = 1e10;

export type AcceptedSketch = { sketch: LogHistogram; problem: null } | { sketch: null; problem: string };
export type DecodedWireSketch = { decoded: DecodedSketch; problem: null } | { decoded: null; problem: string };

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function implausible(count: number, max: number): string | null {
  if (count > 0 && !(max <= MAX_LATENCY_MS)) {
    return `is implausible: its maximum ${max} ms is above the plausible ${MAX_LATENCY_MS} ms`;
  }
  return null;
}

/** A wire sketch's bytes: base64 decoded (JSON), or the binary batch's own bytes as they are (no copy). */
function sketchBytes(wire: string | Uint8Array): Uint8Array {
  return typeof wire === 'string' ? Buffer.from(wire, 'base64') : wire;
}

export function acceptWireSketch(wire: string | Uint8Array): AcceptedSketch {
  let sketch: LogHistogram;
  try {
    sketch = LogHistogram.deserialize(sketchBytes(wire));
  } catch (err) {
    return { sketch: null, problem: `could not be decoded: ${describe(err)}` };
  }
  const problem = implausible(sketch.count, sketch.max);
  return problem === null ? { sketch, problem: null } : { sketch: null, problem };
}

/**
 * acceptWireSketch's checks, decoded into `scratch` (sketchScratch()) instead of a LogHistogram of its
 * own: what a run merges from every slice (ADR 0027). Valid until `scratch` is decoded into again.
 */
export function decodeWireSketch(wire: string | Uint8Array, scratch: Buckets): DecodedWireSketch {
  let decoded: DecodedSketch;
  try {
    decoded = LogHistogram.decodeInto(sketchBytes(wire), scratch);
  } catch (err) {
    return { decoded: null, problem: `could not be decoded: ${describe(err)}` };
  }
  // A sketch of zeros only has max 0 (the checks hold it to that), as LogHistogram.max says.
  const problem = implausible(decoded.parts.count, decoded.parts.max);
  return problem === null ? { decoded, problem: null } : { decoded: null, problem };
}
