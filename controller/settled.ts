// Reading the result of background work without waiting for it (ADR 0028, ADR 0034).

const settled = new WeakMap<Promise<unknown>, { value: unknown }>();

/**
 * The promise's value if it has settled, else undefined: a pass never waits for network I/O, a timer
 * or an event-loop turn (in that turn other work ran: another worker's pass, watch events, a
 * checkpoint, and the pass's measured duration included it). A promise seen unsettled is followed,
 * so the next pass reads its value at once; a rejection is thrown to the pass that reads it.
 */
export async function settledOrUndefined<T>(p: Promise<T>): Promise<T | undefined> {
  const known = settled.get(p);
  if (known !== undefined) return known.value as T;
  // Work that settles within a few microtasks (in-process work) is still read in this pass.
  const turns = (async (): Promise<undefined> => {
    for (let i = 0; i < MICROTASK_TURNS; i++) await undefined;
    return undefined;
  })();
  const value = await Promise.race([p, turns]);
  if (value === undefined)
    p.then(
      (v) => settled.set(p, { value: v }),
      () => undefined,
    );
  return value;
}

const MICROTASK_TURNS = 16;
