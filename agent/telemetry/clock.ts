// Wall-clock milliseconds with sub-millisecond resolution: counter step edges are located to a few
// ms, finer than Date.now()'s whole milliseconds. Same epoch as Date.now().
export const preciseNowMs = (): number => performance.timeOrigin + performance.now();
