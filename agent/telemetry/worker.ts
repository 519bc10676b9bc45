// Sampler worker: owns the DeviceReader, samples on its own event loop, posts compact batches.
// Blocking NVML calls (milliseconds each) happen here, never on the load generator's loop: the
// periodic samples, the back-to-back counter polls that find a tick edge at each mark, and the
// process listings of the exclusivity check.
import { parentPort, workerData } from 'node:worker_threads';
import type { GpuSample, Mark } from '../../api/protocol.ts';
import { isLlemError } from '../../lib/errors.ts';
import { classifyProcesses, readProcessTable } from './processes.ts';
import { awaitTickEdges, measureTickPeriodMs } from './ticks.ts';
import type { DeviceReader, SamplerReply, SamplerRequest } from './types.ts';
import type { SamplerSpec } from './sampler.ts';

/** Without a measured period, wait at most this long for a step (NVML steps every ~100 ms). */
const DEFAULT_EDGE_WAIT_MS = 350;

async function createReader(spec: SamplerSpec): Promise<DeviceReader> {
  if (spec.source === 'simulated') {
    const { SimulatedReader } = await import('./simulated.ts');
    return new SimulatedReader(spec.load, spec.options);
  }
  const [{ loadNvmlApi }, { NvmlReader }] = await Promise.all([import('./nvml-api.ts'), import('./nvml.ts')]);
  return new NvmlReader(loadNvmlApi(spec.libraryPath), spec.visibility, spec.attribution);
}

class SamplerLoop {
  private pending: GpuSample[] = [];
  private readonly periods: Map<string, number | null>;
  private readonly edgeWaitMs: number;

  constructor(
    private readonly reader: DeviceReader,
    private readonly spec: SamplerSpec,
    private readonly post: (m: SamplerReply) => void,
  ) {
    this.periods = !spec.tickAlign
      ? new Map()
      : reader.knownTickPeriodMs !== undefined
        ? new Map(reader.readCounters().map((r) => [r.gpuUuid, reader.knownTickPeriodMs ?? null]))
        : measureTickPeriodMs(() => reader.readCounters(), { maxWaitMs: DEFAULT_EDGE_WAIT_MS });
    const known = [...this.periods.values()].filter((p): p is number => p !== null);
    this.edgeWaitMs = known.length > 0 ? Math.max(...known) * 2.5 : DEFAULT_EDGE_WAIT_MS;
  }

  sample(): void {
    this.pending.push(...this.reader.read());
  }

  flush(): void {
    if (this.pending.length === 0) return;
    this.post({ type: 'batch', samples: this.pending });
    this.pending = [];
  }

  /** Lists the GPUs' processes; posts a sighting when one is not ours. */
  checkProcesses(): void {
    const listed = this.reader.listProcesses();
    if (listed === null || listed.length === 0) return;
    const verdict = classifyProcesses(listed, readProcessTable(), process.pid);
    if (verdict.foreign.length > 0 || verdict.unverified > 0)
      this.post({ type: 'processes', sighting: { tMs: Date.now(), verdict } });
  }

  /** A boundary reading: at the counter's next step edge, with the rest of the sample read right after. */
  mark(mark: Mark | undefined): GpuSample[] {
    this.reader.beforeMark?.(mark);
    if (!this.spec.tickAlign) return this.reader.read();
    const edges = awaitTickEdges(() => this.reader.readCounters(), { maxWaitMs: this.edgeWaitMs });
    const rest = this.reader.read();
    return rest.map((s) => {
      const e = edges.find((x) => x.gpuUuid === s.gpuUuid);
      if (e === undefined) return s;
      return {
        ...s,
        tMs: e.edgeMs,
        energyMillijoules: e.energyMillijoules,
        tick: {
          aligned: e.aligned,
          uncertaintyMs: e.uncertaintyMs,
          waitedMs: e.waitedMs,
          periodMs: this.periods.get(s.gpuUuid) ?? null,
        },
      };
    });
  }
}

function failure(err: unknown): SamplerReply {
  return {
    type: 'failed',
    message: err instanceof Error ? err.message : String(err),
    ...(isLlemError(err) ? { code: err.code } : {}),
  };
}

async function main(): Promise<void> {
  const port = parentPort;
  if (port === null) return;
  const spec = workerData as SamplerSpec;
  const post = (m: SamplerReply): void => port.postMessage(m);
  let reader: DeviceReader;
  let loop: SamplerLoop;
  try {
    reader = await createReader(spec);
    const environment = reader.open();
    loop = new SamplerLoop(reader, spec, post);
    post({ type: 'opened', environment });
  } catch (err) {
    post(failure(err));
    return;
  }
  const sampler = setInterval(() => loop.sample(), spec.sampleIntervalMs);
  const batcher = setInterval(() => {
    loop.flush();
    if (spec.watchProcesses) loop.checkProcesses();
  }, spec.batchIntervalMs);
  port.on('message', (req: SamplerRequest) => {
    loop.flush();
    if (req.type === 'mark') {
      const samples = loop.mark(req.mark);
      // Before the reply: a sighting at a boundary is known when the mark resolves.
      if (spec.watchProcesses) loop.checkProcesses();
      post({ type: 'done', id: req.id, samples });
    } else if (req.type === 'flush') {
      post({ type: 'done', id: req.id });
    } else {
      clearInterval(sampler);
      clearInterval(batcher);
      reader.close();
      post({ type: 'done', id: req.id });
      port.close();
    }
  });
}

await main();
