// Synthetic prompts of a requested token length, without downloading a tokenizer: common English
// words that BPE tokenizers (Llama, GPT, Qwen, Mistral) encode as one token each with their
// leading space. Lengths are approximate (+/- a few tokens from BOS/chat templates); the real
// count comes back in the server's `usage.prompt_tokens` and that is what is reported.

const WORDS = (
  'the of and to in is was for on are with as at be by this had not but from or have an they which ' +
  'one you were all we her she there would their will when who him been has more if no out so said ' +
  'what up its about than into them can only other new some could time these two may then do first ' +
  'any my now such like our over man me even most made after also did many before must through back ' +
  'years where much your way well down should because each just those people how too little state good ' +
  'very make world still own see men work long get here between both life being under never day same ' +
  'another know while last might us great old year off come since against go came right used take three'
).split(' ');

import type { Rng } from '../../api/random.ts';

export type { Rng };
/** The same seed gives the same workload on every run. */
export { seededRandom as seededRng } from '../../api/random.ts';

/** The spec's token-length distribution (api/spec.ts TokenDistributionSchema), or a fixed number. */
export interface TokenDistribution {
  distribution: 'fixed' | 'uniform' | 'normal' | 'lognormal' | 'empirical';
  mean?: number | undefined;
  /** empirical: the lengths, drawn with `weights` (default: equal). */
  values?: number[] | undefined;
  weights?: number[] | undefined;
  stddev?: number | undefined;
  min?: number | undefined;
  max?: number | undefined;
}
export type TokenLength = number | TokenDistribution;

/** Box–Muller: one standard normal draw from two uniform ones. */
export function standardNormal(rng: Rng): number {
  return Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
}

export function drawLength(spec: TokenLength, rng: Rng): number {
  if (typeof spec === 'number') return Math.max(1, Math.round(spec));
  const lo = spec.min ?? 1;
  const hi = spec.max ?? Number.MAX_SAFE_INTEGER;
  const mean = spec.mean ?? lo;
  const sd = spec.stddev ?? 0;
  let x: number;
  if (spec.distribution === 'empirical') return drawEmpirical(spec.values ?? [lo], spec.weights, rng);
  if (spec.distribution === 'fixed') x = mean;
  else if (spec.distribution === 'uniform') x = lo + Math.floor(rng() * (hi - lo + 1));
  else if (spec.distribution === 'normal') x = mean + sd * standardNormal(rng);
  else {
    // Parameters chosen so the lognormal itself has the requested mean and stddev.
    const sigma2 = Math.log(1 + (sd * sd) / (mean * mean));
    x = Math.exp(Math.log(mean) - sigma2 / 2 + Math.sqrt(sigma2) * standardNormal(rng));
  }
  return Math.min(hi, Math.max(lo, Math.max(1, Math.round(x))));
}

/** One of `values`, with probability proportional to its weight (equal weights when none are given). */
export function drawEmpirical(values: readonly number[], weights: readonly number[] | undefined, rng: Rng): number {
  const w = weights ?? values.map(() => 1);
  let total = 0;
  for (const x of w) total += x;
  let u = rng() * total;
  for (let i = 0; i < values.length; i++) {
    u -= w[i] ?? 0;
    if (u < 0) return Math.max(1, Math.round(values[i] ?? 1));
  }
  return Math.max(1, Math.round(values[values.length - 1] ?? 1));
}

export function syntheticPrompt(tokens: number, rng: Rng): string {
  const words: string[] = new Array<string>(Math.max(1, tokens));
  for (let i = 0; i < words.length; i++) words[i] = WORDS[Math.floor(rng() * WORDS.length)] ?? 'the';
  return words.join(' ');
}

/** Exponential inter-arrival gap for a Poisson process of `ratePerSecond`. */
export function poissonGapMs(ratePerSecond: number, rng: Rng): number {
  return (-Math.log(1 - rng()) / ratePerSecond) * 1000;
}
