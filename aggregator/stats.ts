// Across-cycle statistics: mean, sample standard deviation and the 95% confidence interval of
// the mean by Student's t. The t quantile is computed (regularised incomplete beta + bisection),
// not tabulated, so every degree of freedom is exact to ~1e-10 and deterministic.

function logGamma(x: number): number {
  // Lanczos approximation (g = 7, n = 9).
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  const z = x - 1;
  let a = c[0] as number;
  const t = z + 7.5;
  for (let i = 1; i < 9; i++) a += (c[i] as number) / (z + i);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Continued fraction for the incomplete beta function (Numerical Recipes' betacf). */
function betaContinuedFraction(a: number, b: number, x: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 300; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    d = Math.abs(d) < tiny ? 1 / tiny : 1 / d;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    d = Math.abs(d) < tiny ? 1 / tiny : 1 / d;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-15) break;
  }
  return h;
}

function regularizedBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const front = Math.exp(logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log(1 - x));
  if (x < (a + 1) / (a + b + 2)) return (front * betaContinuedFraction(a, b, x)) / a;
  return 1 - (front * betaContinuedFraction(b, a, 1 - x)) / b;
}

/** P(T <= t) for Student's t with `df` degrees of freedom. */
export function studentTCdf(t: number, df: number): number {
  const x = df / (df + t * t);
  const tail = 0.5 * regularizedBeta(x, df / 2, 0.5);
  return t >= 0 ? 1 - tail : tail;
}

/** t such that P(T <= t) = p, for p in (0.5, 1). */
/** Quantiles already inverted, by `p/df`: a rollup asks the same few thousands of times (bisection is ~200 CDFs). */
const quantileCache = new Map<string, number>();

export function studentTQuantile(p: number, df: number): number {
  if (!(df > 0) || !(p > 0.5 && p < 1))
    throw new RangeError(`studentTQuantile needs df > 0 and p in (0.5, 1), got df=${df} p=${p}`);
  const key = `${p}/${df}`;
  const known = quantileCache.get(key);
  if (known !== undefined) return known;
  const q = invertStudentT(p, df);
  if (quantileCache.size < 10_000) quantileCache.set(key, q);
  return q;
}

function invertStudentT(p: number, df: number): number {
  let lo = 0;
  let hi = 1;
  while (studentTCdf(hi, df) < p) hi *= 2;
  for (let i = 0; i < 200 && hi - lo > 1e-12 * hi; i++) {
    const mid = (lo + hi) / 2;
    if (studentTCdf(mid, df) < p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/** Below this many cycles a 95% interval rests on t with one degree of freedom (12.7) or none. */
export const MIN_CYCLES_FOR_CI = 3;

/**
 * - `fewCycles`: fewer than MIN_CYCLES_FOR_CI values; the interval (if any) is too wide to rank by.
 * - `ciClampedAtZero`: the Student-t lower bound fell below zero for a quantity that cannot be
 *   negative (J/token, power, latency); it is reported as 0 instead.
 */
export const CYCLE_STAT_FLAGS = ['fewCycles', 'ciClampedAtZero'] as const;
export type CycleStatFlag = (typeof CYCLE_STAT_FLAGS)[number];

export interface CycleStats {
  /** Cycles that contributed a value. */
  n: number;
  mean: number | null;
  /** Sample standard deviation (n - 1); null below two cycles. */
  std: number | null;
  ci95Low: number | null;
  ci95High: number | null;
  /** Why some field above is null; null when none is. */
  reason: string | null;
  /** What weakens the figures (see CYCLE_STAT_FLAGS); empty when nothing does. */
  flags: CycleStatFlag[];
}

export interface CycleStatsOptions {
  /** The quantity cannot be negative: a lower bound below zero is clamped to 0 and flagged. */
  nonNegative?: boolean;
}

/** Mean, std and 95% CI over the cycles' values; `skipped` lists why some cycles had no value. */
export function cycleStats(
  values: readonly number[],
  skipped: readonly string[] = [],
  options: CycleStatsOptions = {},
): CycleStats {
  const n = values.length;
  const why = skipped.length > 0 ? `; ${skipped.length} cycle(s) without a value: ${skipped.join('; ')}` : '';
  const flags: CycleStatFlag[] = n < MIN_CYCLES_FOR_CI ? ['fewCycles'] : [];
  const none = { std: null, ci95Low: null, ci95High: null, flags };
  if (n === 0) return { n, mean: null, ...none, reason: `no cycle has a value${why}` };
  let sum = 0;
  for (const v of values) sum += v;
  const mean = sum / n;
  if (n === 1) return { n, mean, ...none, reason: `one cycle: no spread to estimate${why}` };
  let ss = 0;
  for (const v of values) ss += (v - mean) * (v - mean);
  const std = Math.sqrt(ss / (n - 1));
  const half = (studentTQuantile(0.975, n - 1) * std) / Math.sqrt(n);
  let low = mean - half;
  if (options.nonNegative === true && low < 0) {
    low = 0;
    flags.push('ciClampedAtZero');
  }
  return { n, mean, std, ci95Low: low, ci95High: mean + half, reason: why === '' ? null : why.slice(2), flags };
}
