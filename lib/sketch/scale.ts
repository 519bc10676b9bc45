// Scale functions of Dunning & Ertl, "Computing extremely accurate quantiles using t-digests"
// (2019), in weight-limit form: each bounds the fraction of the total weight a centroid may hold
// at quantile q. Small bounds near the tails keep p99.9 accurate; larger ones mid-range keep the
// centroid count (and the serialised size) small.

export type ScaleName = 'k1' | 'k2' | 'k3' | 'k1k2';

/** Returns the largest fraction of the total weight a centroid spanning quantile q may hold. */
export type WeightLimit = (q: number) => number;

export interface ScaleFunction {
  readonly name: ScaleName;
  /** Built once per compression pass: the bound depends only on compression and total weight. */
  limit(compression: number, totalWeight: number): WeightLimit;
}

/** The log normaliser of k2/k3 keeps the centroid count bounded as n grows. */
function logNormalizer(compression: number, totalWeight: number, offset: number): number {
  const n = Math.max(totalWeight, compression * 2);
  return compression / (4 * Math.log(n / compression) + offset);
}

/** k1(q) = δ/(2π)·asin(2q-1): sqrt(q(1-q)) sized centroids; good mid-range, weak extreme tails. */
export const K1: ScaleFunction = {
  name: 'k1',
  limit: (compression) => {
    const c = 2 * Math.sin((0.5 * 2 * Math.PI) / compression);
    return (q) => c * Math.sqrt(q * (1 - q));
  },
};

/** k2(q) ∝ log(q/(1-q)): q(1-q) sized centroids, relative accuracy in both tails. */
export const K2: ScaleFunction = {
  name: 'k2',
  limit: (compression, totalWeight) => {
    const normalizer = logNormalizer(compression, totalWeight, 24);
    return (q) => (q * (1 - q)) / normalizer;
  },
};

/** k3: min(q, 1-q) sized centroids, the strongest extreme-tail accuracy. */
export const K3: ScaleFunction = {
  name: 'k3',
  limit: (compression, totalWeight) => {
    const normalizer = logNormalizer(compression, totalWeight, 21);
    return (q) => Math.min(q, 1 - q) / normalizer;
  },
};

/**
 * min(k1, k2): centroids are sqrt(q(1-q)) sized in the middle (k1's mid-range accuracy, where k2
 * alone is coarse) and q(1-q) sized in the tails (k2's p99.9). The centroid count is at most the
 * sum of both functions' counts.
 */
export const K1K2: ScaleFunction = {
  name: 'k1k2',
  limit: (compression, totalWeight) => {
    // Inlined min(K1, K2): this runs once per point in every compression pass.
    const c1 = 2 * Math.sin(Math.PI / compression);
    const inv2 = 1 / logNormalizer(compression, totalWeight, 24);
    return (q) => {
      const v = q * (1 - q);
      return Math.min(c1 * Math.sqrt(v), v * inv2);
    };
  },
};

const SCALES: Record<ScaleName, ScaleFunction> = { k1: K1, k2: K2, k3: K3, k1k2: K1K2 };
const SCALE_CODES: readonly ScaleName[] = ['k1', 'k2', 'k3', 'k1k2'];

export function scaleByName(name: ScaleName): ScaleFunction {
  return SCALES[name];
}

export function scaleCode(name: ScaleName): number {
  return SCALE_CODES.indexOf(name);
}

export function scaleFromCode(code: number): ScaleName | undefined {
  return SCALE_CODES[code];
}
