// Tick-aligned counter readings. NVML's total-energy counter moves in steps (~every 100 ms on
// H100/H200): a reading taken at an arbitrary moment carries the energy up to the last step, so a
// window bounded by arbitrary readings is off by up to one step at each end. Polling the counter
// back to back near a boundary finds the moment it steps; a window bounded by two such edges
// holds exactly the energy between them, and its duration is known to the polls' spacing.
// Runs in the sampler worker only: the loop blocks for up to one tick (each NVML read ~4 ms).

export interface CounterReading {
  gpuUuid: string;
  /** Wall-clock ms at the middle of the read call. */
  tMs: number;
  energyMillijoules: number | null;
}

export interface TickEdge {
  gpuUuid: string;
  /** Counter value just after the step. */
  energyMillijoules: number | null;
  /** Best estimate of when the counter stepped: midway between the last read before and the first after. */
  edgeMs: number;
  /** Half the gap between those two reads: the edge time is known to ± this. */
  uncertaintyMs: number;
  /** From the boundary (the first read) to the edge. */
  waitedMs: number;
  /** false: no step seen within the wait limit (counter unavailable or not moving): edgeMs is the last read. */
  aligned: boolean;
}

export interface EdgeWaitOptions {
  /** Give up after this long without a step (the counter may be frozen or unavailable). */
  maxWaitMs: number;
}

/**
 * Reads every GPU's counter back to back until each has stepped once (or maxWaitMs passed), and
 * returns one edge per GPU in the order of the first reading.
 */
export function awaitTickEdges(read: () => CounterReading[], opts: EdgeWaitOptions): TickEdge[] {
  const first = read();
  const startMs = first[0]?.tMs ?? 0;
  const prev = new Map(first.map((r) => [r.gpuUuid, r]));
  const edges = new Map<string, TickEdge>();
  let last = first;
  while (edges.size < first.length) {
    last = read();
    for (const r of last) {
      const p = prev.get(r.gpuUuid);
      if (p === undefined || edges.has(r.gpuUuid)) continue;
      if (r.energyMillijoules !== null && p.energyMillijoules !== null && r.energyMillijoules !== p.energyMillijoules) {
        edges.set(r.gpuUuid, {
          gpuUuid: r.gpuUuid,
          energyMillijoules: r.energyMillijoules,
          edgeMs: (p.tMs + r.tMs) / 2,
          uncertaintyMs: (r.tMs - p.tMs) / 2,
          waitedMs: (p.tMs + r.tMs) / 2 - startMs,
          aligned: true,
        });
      } else {
        prev.set(r.gpuUuid, r);
      }
    }
    if ((last[0]?.tMs ?? startMs) - startMs > opts.maxWaitMs) break;
  }
  return first.map((f) => edges.get(f.gpuUuid) ?? unaligned(last.find((r) => r.gpuUuid === f.gpuUuid) ?? f, startMs));
}

function unaligned(r: CounterReading, startMs: number): TickEdge {
  return {
    gpuUuid: r.gpuUuid,
    energyMillijoules: r.energyMillijoules,
    edgeMs: r.tMs,
    uncertaintyMs: 0,
    waitedMs: r.tMs - startMs,
    aligned: false,
  };
}

/**
 * The counter's step period: the mean spacing over `intervals` consecutive edges (measured once at
 * start; one interval alone is off by the edges' timing error, a few percent on an H100).
 */
export function measureTickPeriodMs(
  read: () => CounterReading[],
  opts: EdgeWaitOptions,
  intervals = 10,
): Map<string, number | null> {
  const first = awaitTickEdges(read, opts);
  let last = first;
  const counted = new Map(first.map((e) => [e.gpuUuid, e.aligned ? 0 : -1]));
  for (let i = 0; i < intervals; i++) {
    last = awaitTickEdges(read, opts);
    for (const e of last) if ((counted.get(e.gpuUuid) ?? -1) >= 0) counted.set(e.gpuUuid, e.aligned ? i + 1 : -1);
  }
  return new Map(
    first.map((e) => {
      const n = counted.get(e.gpuUuid) ?? -1;
      const end = last.find((x) => x.gpuUuid === e.gpuUuid);
      return [e.gpuUuid, n > 0 && end !== undefined ? (end.edgeMs - e.edgeMs) / n : null];
    }),
  );
}
