// Types for the untyped npm `tdigest` package (0.1.x), only the parts the adapter uses.
declare module 'tdigest' {
  export interface TDigestCentroid {
    mean: number;
    n: number;
  }
  export class TDigest {
    constructor(delta?: number | false, K?: number, CX?: number);
    n: number;
    push(x: number | number[], n?: number): void;
    push_centroid(c: TDigestCentroid | TDigestCentroid[]): void;
    percentile(p: number): number | undefined;
    p_rank(x: number): number | undefined;
    toArray(): TDigestCentroid[];
    compress(): void;
    size(): number;
  }
}
