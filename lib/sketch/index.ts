// Latency sketches: LogHistogram is the one the system uses (docs/adr/0012); MergingDigest (the
// t-digest of docs/adr/0004) and the npm tdigest adapter remain for the comparison benchmark.
import type { LatencySketch } from './types.ts';
import { MergingDigest } from './merging-digest.ts';
import { MERGING_DIGEST_MAGIC } from './merging-digest-codec.ts';
import { LogHistogram } from './log-histogram.ts';
import { LOG_HISTOGRAM_MAGIC } from './log-histogram-layout.ts';
import { TDIGEST_MAGIC, TDigestSketch } from './tdigest-adapter.ts';
import { ProtocolError } from '../errors.ts';

export type { LatencySketch } from './types.ts';
export { MergingDigest, DEFAULT_COMPRESSION, DEFAULT_SCALE, type MergingDigestOptions } from './merging-digest.ts';
export { MERGING_DIGEST_VERSION } from './merging-digest-codec.ts';
export { TDigestSketch } from './tdigest-adapter.ts';
export { LogHistogram, sketchScratch, type DecodedSketch } from './log-histogram.ts';
export type { Buckets } from './log-buckets.ts';
export { BYTE_BUDGET, FINEST_BITS, LOG_HISTOGRAM_VERSION, withoutSum } from './log-histogram-layout.ts';
export type { ScaleName } from './scale.ts';

/** The sketch every producer should create. */
export function createLatencySketch(): LogHistogram {
  return new LogHistogram();
}

/** Decode any supported sketch by its magic byte; throws ProtocolError on malformed bytes. */
export function deserializeSketch(bytes: Uint8Array): LatencySketch {
  switch (bytes[0]) {
    case LOG_HISTOGRAM_MAGIC:
      return LogHistogram.deserialize(bytes);
    case MERGING_DIGEST_MAGIC:
      return MergingDigest.deserialize(bytes);
    case TDIGEST_MAGIC:
      return TDigestSketch.deserialize(bytes);
    default:
      throw new ProtocolError(`sketch: unknown format byte ${bytes[0] ?? 'none (empty input)'}`);
  }
}

export function sketchToBase64(sketch: LatencySketch): string {
  return Buffer.from(sketch.serialize()).toString('base64');
}

export function sketchFromBase64(text: string): LatencySketch {
  return deserializeSketch(Buffer.from(text, 'base64'));
}
