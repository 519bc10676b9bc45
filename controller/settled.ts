// Reading the result of background work without waiting for it (ADR 0028).

/**
 * The promise's value if it settles within this turn of the event loop (a loaded feed, a stored
 * artifact, in-process work), else undefined: a pass never waits for network I/O or a timer.
 */
export async function settledOrUndefined<T>(p: Promise<T>): Promise<T | undefined> {
  let immediate: NodeJS.Immediate | undefined;
  const turn = new Promise<undefined>((resolve) => (immediate = setImmediate(() => resolve(undefined))));
  try {
    return await Promise.race([p, turn]);
  } finally {
    clearImmediate(immediate);
  }
}
