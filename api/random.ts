// The one seeded random generator: workloads, shuffled run orders and test streams must draw the
// same sequence for the same seed on every platform.

export type Rng = () => number;

/** mulberry32: tiny, fast, and the same sequence everywhere for the same 32-bit seed. */
export function seededRandom(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
