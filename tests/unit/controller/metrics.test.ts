import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  dataSubject,
  encodeMessage,
  messageId,
  PROTOCOL_VERSION,
  type GpuSample,
  type WireMessage,
} from '../../../api/protocol.ts';
import { CONTROLLER_METRICS, ControllerMetrics } from '../../../controller/metrics.ts';
import { BusExperimentStreams } from '../../../controller/results.ts';
import { InProcessBus } from '../../../lib/bus/index.ts';
import { rootLogger } from '../../../lib/log.ts';
import { fakeMessages } from '../../support/fake-agent.ts';

const base = {
  v: PROTOCOL_VERSION,
  namespace: 'team-a',
  experimentUid: 'uid-1',
  runId: 'r0',
  attempt: 0,
  replica: 0,
  sentAtMs: 0,
  simulated: true,
};
let seq = 0;

function sample(gpuUuid: string, powerWatts: number | null, tMs = 0): GpuSample {
  return {
    gpuUuid,
    tMs,
    energyMillijoules: null,
    powerWatts,
    utilizationGpuPct: null,
    memoryUsedMiB: null,
    smClockMhz: null,
    memClockMhz: null,
    temperatureC: null,
    throttleReasons: null,
  };
}

function telemetry(samples: GpuSample[], over: Partial<typeof base> = {}): WireMessage {
  return { ...base, ...over, seq: ++seq, kind: 'telemetry', phase: 'measuring', samples } as WireMessage;
}

function aborted(over: Partial<typeof base> = {}): WireMessage {
  return { ...base, ...over, seq: ++seq, kind: 'aborted', phase: 'measuring', reason: 'test' } as WireMessage;
}

async function power(m: ControllerMetrics, run = 'r0'): Promise<number | undefined> {
  const got = await m.registry.getSingleMetric('llem_run_power_watts')?.get();
  return got?.values.find((v) => v.labels['run'] === run && v.labels['experiment'] === 'exp')?.value;
}

void describe('llem_run_power_watts', () => {
  void it('is documented with namespace, experiment and run labels', () => {
    const doc = CONTROLLER_METRICS.find((d) => d.name === 'llem_run_power_watts');
    assert.deepEqual(doc?.labels, ['namespace', 'experiment', 'run']);
    assert.equal(doc?.type, 'gauge');
  });

  void it('sums the latest sampled power of every GPU of every replica of a running run', async () => {
    const m = new ControllerMetrics();
    m.runPower.observe(
      'team-a',
      'exp',
      telemetry([sample('GPU-a', 100, 0), sample('GPU-b', 150, 0), sample('GPU-a', 210, 100)]),
    );
    assert.equal(await power(m), 210 + 150);
    m.runPower.observe('team-a', 'exp', telemetry([sample('GPU-c', 90), sample('GPU-d', null)], { replica: 1 }));
    assert.equal(await power(m), 210 + 150 + 90);
  });

  void it('is removed when the run ends, and a late batch does not bring it back', async () => {
    const m = new ControllerMetrics();
    m.runPower.observe('team-a', 'exp', telemetry([sample('GPU-a', 300)]));
    m.runPower.observe('team-a', 'exp', telemetry([sample('GPU-b', 200)], { replica: 1 }));
    m.runPower.observe('team-a', 'exp', aborted({ replica: 1 }));
    assert.equal(await power(m), 300);
    m.runPower.observe('team-a', 'exp', aborted());
    assert.equal(await power(m), undefined);
    m.runPower.observe('team-a', 'exp', telemetry([sample('GPU-a', 300)]));
    assert.equal(await power(m), undefined);
  });

  void it('follows the newest attempt and ignores an older one', async () => {
    const m = new ControllerMetrics();
    m.runPower.observe('team-a', 'exp', telemetry([sample('GPU-a', 300)]));
    m.runPower.observe('team-a', 'exp', telemetry([sample('GPU-a', 120)], { attempt: 1 }));
    m.runPower.observe('team-a', 'exp', telemetry([sample('GPU-a', 999)]));
    assert.equal(await power(m), 120);
  });

  void it('goes when the reconciler sees the run stop running, and with the experiment', async () => {
    const m = new ControllerMetrics();
    m.runPower.observe('team-a', 'exp', telemetry([sample('GPU-a', 300)]));
    m.runPower.observe('team-a', 'exp', telemetry([sample('GPU-a', 250)], { runId: 'r1' }));
    m.runPower.endRun('team-a', 'exp', 'r0');
    assert.equal(await power(m, 'r0'), undefined);
    assert.equal(await power(m, 'r1'), 250);
    m.forgetExperiment('team-a', 'exp');
    assert.equal(await power(m, 'r1'), undefined);
  });
});

void describe('llem_run_power_watts from the experiment stream', () => {
  void it('is set from the telemetry the controller consumes and removed when the run ends', async () => {
    const metrics = new ControllerMetrics();
    const bus = new InProcessBus();
    await bus.ensureLayout();
    const streams = new BusExperimentStreams(
      bus,
      {
        changed: () => undefined,
        applied: () => undefined,
        lag: () => undefined,
        message: (r, msg) => metrics.runPower.observe(r.namespace, r.name, msg),
      },
      rootLogger.child({}, { level: 'silent' }),
      50,
    );
    const ref = { namespace: 'team-a', name: 'exp', uid: 'uid-1' };
    try {
      await streams.feed(ref, {
        planned: [],
        seed: [],
        newAggregator: () => {
          throw new Error('no aggregator in this test');
        },
      });
      const msgs = fakeMessages(
        { namespace: 'team-a', experimentUid: 'uid-1', runId: 'r0', attempt: 0, replica: 0 },
        10,
        5,
      );
      const publish = async (m: WireMessage): Promise<void> => {
        await bus.publish(dataSubject(m, m.kind), encodeMessage(m), { msgId: messageId(m) });
      };
      for (const m of msgs.slice(0, 3)) await publish(m);
      const watts = (msgs[2] as Extract<WireMessage, { kind: 'telemetry' }>).samples[0]?.powerWatts;
      await waitFor(async () => (await power(metrics)) === watts);
      for (const m of msgs.slice(3)) await publish(m);
      await waitFor(async () => (await power(metrics)) === undefined);
    } finally {
      await streams.stopAll();
      await bus.close();
    }
  });
});

async function waitFor(check: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) assert.fail('condition not reached in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
