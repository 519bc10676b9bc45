// A mergeable latency sketch (quantile summary). Deterministic: the same adds and merges in the
// same order produce byte-identical serialisations.

export interface LatencySketch {
  add(value: number, weight?: number): void;
  /** Fold another sketch into this one (the other is unchanged). */
  merge(other: LatencySketch): void;
  /** Value at quantile q in [0, 1]; NaN when empty. */
  quantile(q: number): number;
  /** Fraction of values <= value, in [0, 1]; NaN when empty. */
  rank(value: number): number;
  readonly count: number;
  readonly min: number;
  readonly max: number;
  readonly mean: number;
  /** Compact, versioned binary form. */
  serialize(): Uint8Array;
}
