import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ciHalfWidthPct,
  decideAdaptive,
  type AdaptiveDecisions,
  type AdaptiveRunRecord,
} from '../../../aggregator/index.ts';
import { executionOrder, runId, type Configuration } from '../../../api/matrix.ts';
import {
  AdaptiveCyclesSchema,
  MeasurementSchema,
  type AdaptiveCycles,
  type MeasurementOrder,
} from '../../../api/spec.ts';
import { seededRandom } from '../../../api/random.ts';
import { validateEnergyExperiment } from '../../../api/validation.ts';
import { studentTQuantile } from '../../../aggregator/stats.ts';

interface Plan {
  runs: { id: string; configurationId: string; cycle: number }[];
  order: MeasurementOrder;
  rule: AdaptiveCycles;
}

function plan(configs: string[], rule: Partial<AdaptiveCycles>, order: MeasurementOrder = 'interleave'): Plan {
  const r = AdaptiveCyclesSchema.parse({ target: { metric: 'joulesPerToken', ciHalfWidthPct: 2 }, ...rule });
  const cs = configs.map((id, index) => ({ id, index }) as unknown as Configuration);
  const runs = executionOrder(cs, { cycles: r.max, order, seed: 7 }).map(({ configuration, cycle }) => ({
    id: runId(configuration.id, cycle),
    configurationId: configuration.id,
    cycle,
  }));
  return { runs, order, rule: r };
}

type Value = (configId: string, cycle: number) => number;

function decide(p: Plan, recorded: Map<string, AdaptiveRunRecord>): AdaptiveDecisions {
  const open: AdaptiveRunRecord = { status: 'open', value: null, gpuSeconds: 0 };
  return decideAdaptive({ ...p, record: (id) => recorded.get(id) ?? open });
}

/**
 * `llem run`'s loop: runs in plan order, each decided just before it would start. `stopAfter`: the
 * process is killed while that many-th run executes (its record never written).
 */
function execute(
  p: Plan,
  value: Value,
  recorded = new Map<string, AdaptiveRunRecord>(),
  stopAfter = Infinity,
): string[] {
  const executed: string[] = [];
  for (const run of p.runs) {
    if (recorded.has(run.id)) continue;
    const d = decide(p, recorded).runs.get(run.id);
    if (d === 'skip') continue;
    assert.equal(d, 'run', `${run.id} is decided ${d} though every earlier run finished`);
    if (executed.length === stopAfter) return executed;
    executed.push(run.id);
    recorded.set(run.id, { status: 'complete', value: value(run.configurationId, run.cycle), gpuSeconds: 600 });
  }
  return executed;
}

function outcomeOf(p: Plan, value: Value): { executed: string[]; d: AdaptiveDecisions } {
  const recorded = new Map<string, AdaptiveRunRecord>();
  const executed = execute(p, value, recorded);
  return { executed, d: decide(p, recorded) };
}

const tight: Value = (_c, cycle) => 1 + [0, 0.004, -0.004, 0.002, -0.002][cycle % 5]!;
const noisy: Value = (c, cycle) => 1 + 0.3 * Math.sin(cycle * 2.3 + c.length);

void describe('adaptive cycles', () => {
  void it('stops a configuration once its CI meets the target after min cycles, skipping the rest', () => {
    const p = plan(['a', 'b'], { min: 3, max: 20 });
    const { executed, d } = outcomeOf(p, (c, k) => (c === 'a' ? tight(c, k) : noisy(c, k)));
    const a = d.outcome.configurations.find((c) => c.configurationId === 'a');
    assert.equal(a?.reason, 'targetMet');
    assert.equal(a?.cycles, 3);
    assert.equal(a?.cyclesSkipped, 17);
    assert.ok(a.ciHalfWidthPct !== null && a.ciHalfWidthPct <= 2);
    assert.equal(executed.filter((id) => id.startsWith('a-')).length, 3);
    assert.equal(d.runs.get('a-c3'), 'skip');
  });

  void it('runs max cycles and says maxCycles with the achieved half-width when the target is never met', () => {
    const p = plan(['b'], { min: 3, max: 8 });
    const { executed, d } = outcomeOf(p, noisy);
    const b = d.outcome.configurations[0];
    assert.equal(executed.length, 8);
    assert.equal(b?.reason, 'maxCycles');
    assert.equal(b?.cycles, 8);
    const values = Array.from({ length: 8 }, (_, k) => noisy('b', k));
    assert.equal(b?.ciHalfWidthPct, ciHalfWidthPct(values));
    assert.ok((b?.ciHalfWidthPct ?? 0) > 2);
    assert.deepEqual(
      b?.history.map((h) => h.n),
      [1, 2, 3, 4, 5, 6, 7, 8],
    );
    assert.equal(b?.history[0]?.ciHalfWidthPct, null, 'one value has no interval');
  });

  void it('stops every configuration when the recorded GPU time reaches the budget', () => {
    // 600 GPU-seconds a run, 3 configurations a cycle block: 0.5 h are spent after the first block.
    const p = plan(['a', 'b', 'c'], { min: 3, max: 10, budget: { gpuHours: 0.5 } });
    const { executed, d } = outcomeOf(p, noisy);
    assert.equal(executed.length, 3);
    assert.deepEqual(
      d.outcome.configurations.map((c) => c.reason),
      ['budget', 'budget', 'budget'],
    );
    assert.equal(d.outcome.spentGpuHours, 0.5);
    // The budget is checked at cycle-block boundaries: a block that starts under budget runs whole.
    const q = plan(['a', 'b', 'c'], { min: 3, max: 10, budget: { gpuHours: 0.6 } });
    assert.equal(outcomeOf(q, noisy).executed.length, 6);
  });

  void it('makes the same decisions after a resume as an uninterrupted run, whatever run it was killed in', () => {
    for (const order of ['interleave', 'shuffle', 'sequential'] as const) {
      const p = plan(['a', 'b', 'c'], { min: 3, max: 9, budget: { gpuHours: 3 } }, order);
      const value: Value = (c, k) => (c === 'a' ? tight(c, k) : c === 'b' ? noisy(c, k) : 2 + 0.01 * (k % 3));
      const whole = outcomeOf(p, value);
      for (let kill = 0; kill < whole.executed.length; kill++) {
        const recorded = new Map<string, AdaptiveRunRecord>();
        const first = execute(p, value, recorded, kill);
        const second = execute(p, value, recorded);
        assert.deepEqual([...first, ...second], whole.executed, `${order}, killed in run ${kill}`);
        assert.deepEqual(decide(p, recorded), whole.d, `${order}, killed in run ${kill}`);
      }
    }
  });

  void it('lets the runs of one interleaved cycle block finish in any order and decides alike', () => {
    const p = plan(['a', 'b', 'c', 'd'], { min: 3, max: 6 });
    const value: Value = (c, k) => (c === 'a' ? tight(c, k) : noisy(c, k));
    const recorded = new Map<string, AdaptiveRunRecord>();
    const random = seededRandom(3);
    for (;;) {
      const d = decide(p, recorded);
      const runnable = p.runs.filter((r) => d.runs.get(r.id) === 'run');
      if (runnable.length === 0) break;
      // A cluster with parallelism: every run of the open block may start; they finish in any order.
      const pick = runnable[Math.floor(random() * runnable.length)]!;
      recorded.set(pick.id, { status: 'complete', value: value(pick.configurationId, pick.cycle), gpuSeconds: 600 });
    }
    assert.deepEqual(decide(p, recorded), outcomeOf(p, value).d);
  });

  void it('lets only one run at a time through in sequential order', () => {
    const p = plan(['a', 'b'], { min: 3, max: 5 }, 'sequential');
    const d = decide(p, new Map());
    assert.deepEqual(
      p.runs.map((r) => d.runs.get(r.id)),
      ['run', ...Array<string>(9).fill('wait')],
    );
  });

  void it('keeps a heavy-tailed metric measuring when an outlier after min cycles widens the CI', () => {
    const spikes: Value = (_c, k) => (k === 3 ? 40 : 1 + 0.001 * (k % 2));
    const p = plan(['p99'], { min: 4, max: 12, target: { metric: 'ttftMsP99', ciHalfWidthPct: 5 } });
    const { d } = outcomeOf(p, spikes);
    const c = d.outcome.configurations[0];
    assert.equal(c?.reason, 'maxCycles', 'one spike in 12 cycles leaves the CI wider than ±5%');
    const values = Array.from({ length: 12 }, (_, k) => spikes('p99', k));
    const mean = values.reduce((a, b) => a + b) / 12;
    const sd = Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / 11);
    const expected = ((studentTQuantile(0.975, 11) * sd) / Math.sqrt(12) / mean) * 100;
    assert.ok(Math.abs((c?.ciHalfWidthPct ?? 0) - expected) < 1e-9);
    // Pareto(1.5) draws: an infinite-variance metric still gives finite, reproducible decisions.
    const random = seededRandom(11);
    const pareto = new Map<number, number>();
    const heavy: Value = (_c, k) => pareto.get(k) ?? (pareto.set(k, (1 - random()) ** (-1 / 1.5)), pareto.get(k)!);
    const q = plan(['x'], { min: 3, max: 30, target: { metric: 'joulesPerToken', ciHalfWidthPct: 10 } });
    const out = outcomeOf(q, heavy).d.outcome.configurations[0];
    assert.ok(out?.ciHalfWidthPct !== null && Number.isFinite(out?.ciHalfWidthPct));
    assert.ok(out?.reason === 'maxCycles' || (out?.reason === 'targetMet' && (out.ciHalfWidthPct ?? 99) <= 10));
  });

  void it('counts a failed run as finished without a value, so the configuration still needs a value per cycle', () => {
    const p = plan(['a'], { min: 3, max: 6 });
    const recorded = new Map<string, AdaptiveRunRecord>([
      ['a-c0', { status: 'complete', value: 1, gpuSeconds: 1 }],
      ['a-c1', { status: 'failed', value: null, gpuSeconds: 1 }],
      ['a-c2', { status: 'complete', value: 1.001, gpuSeconds: 1 }],
    ]);
    const d = decide(p, recorded);
    assert.equal(d.runs.get('a-c3'), 'run', 'two values are fewer than min 3');
    assert.equal(d.outcome.configurations[0]?.cycles, 2);
  });

  void it('keeps the plain integer form and refuses an adaptive form whose min exceeds max', () => {
    assert.equal(MeasurementSchema.parse({ cycles: 4 }).cycles, 4);
    const bad = MeasurementSchema.safeParse({
      cycles: { target: { metric: 'joulesPerToken', ciHalfWidthPct: 2 }, min: 5, max: 3 },
    });
    assert.equal(bad.success, false);
    assert.deepEqual(bad.error?.issues[0]?.path, ['cycles', 'max']);
    const manifest = (cycles: unknown): unknown => ({
      apiVersion: 'llem.dev/v1alpha1',
      kind: 'EnergyExperiment',
      metadata: { name: 'x' },
      spec: { model: { name: 'm' }, backends: [{ type: 'pytorch' }], measurement: { cycles } },
    });
    const metric = validateEnergyExperiment(manifest({ target: { metric: 'watts', ciHalfWidthPct: 2 } }));
    assert.equal(metric.ok, false);
    assert.equal(metric.ok ? '' : metric.issues[0]?.path, 'spec.measurement.cycles.target.metric');
    assert.match(metric.ok ? '' : (metric.issues[0]?.message ?? ''), /must be one of joulesPerToken/);
    const zero = validateEnergyExperiment(manifest(0));
    assert.deepEqual(zero.ok ? [] : zero.issues, [
      { path: 'spec.measurement.cycles', message: 'must be >= 1 (got 0)' },
    ]);
  });
});
