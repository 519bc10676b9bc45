// Accepting a latency sketch from the wire: decoded, folded to its compact form (so buffered
// values such as a NaN are judged as centroids, never carried into a checkpoint) and checked for
// what a latency cannot be. The sketch module checks the encoding; this checks the physics.
import { MergingDigest } from '../lib/sketch/index.ts';

/** No request waits 115 days: a larger latency is a broken value (and sums of such could overflow). */
export const MAX_LATENCY_MS = 1e10;

export type AcceptedSketch = { digest: MergingDigest; problem: null } | { digest: null; problem: string };

function rejected(problem: string): AcceptedSketch {
  return { digest: null, problem };
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Latency figures in milliseconds: finite, never negative. */
function implausible(d: MergingDigest): string | null {
  if (!Number.isSafeInteger(d.count) || d.count < 0) return `its count ${d.count} is not a whole number of samples`;
  if (d.count === 0) return null;
  const { min, max, mean } = d;
  if (![min, max, mean].every(Number.isFinite)) return `its min/max/mean (${min}/${max}/${mean}) are not finite`;
  if (min < 0) return `its minimum ${min} ms is a negative latency`;
  if (max < min) return `its maximum ${max} is below its minimum ${min}`;
  if (max > MAX_LATENCY_MS) return `its maximum ${max} ms is above the plausible ${MAX_LATENCY_MS} ms`;
  const q0 = d.quantile(0);
  const q1 = d.quantile(1);
  if (!Number.isFinite(q0) || !Number.isFinite(q1) || q0 < 0 || q1 > MAX_LATENCY_MS) return `its quantiles (${q0} .. ${q1}) are not finite non-negative latencies`;
  return null;
}

export function acceptWireSketch(base64: string): AcceptedSketch {
  let digest: MergingDigest;
  try {
    const decoded = MergingDigest.deserialize(Buffer.from(base64, 'base64'));
    // Re-decoding the compact form folds any buffered values into centroids, which the decoder
    // validates: a NaN hidden in a buffer is refused here instead of poisoning the run's state.
    digest = MergingDigest.deserialize(decoded.serialize());
  } catch (err) {
    return rejected(`could not be decoded: ${describe(err)}`);
  }
  const why = implausible(digest);
  return why === null ? { digest, problem: null } : rejected(`is implausible: ${why}`);
}
