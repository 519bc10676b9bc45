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
  // Centroids outside [min, max] are the sketch decoder's to refuse (header against centroids).
  return null;
}

export function acceptWireSketch(base64: string): AcceptedSketch {
  let digest: MergingDigest;
  try {
    const bytes = Buffer.from(base64, 'base64');
    const decoded = MergingDigest.deserialize(bytes);
    // The compact form folds any buffered values into centroids. When it differs from what was
    // sent (an agent's serialize() never sends buffers), it is decoded again, and the decoder's
    // centroid checks refuse a NaN that was hidden in a buffer instead of carrying it into state.
    const compact = decoded.serialize();
    digest = Buffer.compare(compact, bytes) === 0 ? decoded : MergingDigest.deserialize(compact);
  } catch (err) {
    return rejected(`could not be decoded: ${describe(err)}`);
  }
  const why = implausible(digest);
  return why === null ? { digest, problem: null } : rejected(`is implausible: ${why}`);
}
