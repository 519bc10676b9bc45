// The wire schema refuses what no agent can honestly measure (issue #17 item 2): negative, NaN or
// infinite energy, power and times; windows that end before they start; one GPU twice in a reading;
// error classes that are not names.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeMessage, WireMessageSchema, type WireMessage } from '../../../api/protocol.ts';
import { experimentMessages, makePlan } from '../../support/streams.ts';

const msgs = experimentMessages(makePlan({ configs: 1, cycles: 1 }), { seed: 1 });
const of = <K extends WireMessage['kind']>(kind: K): Extract<WireMessage, { kind: K }> =>
  msgs.find((m) => m.kind === kind) as Extract<WireMessage, { kind: K }>;

function refused(m: unknown, field: RegExp): void {
  const parsed = WireMessageSchema.safeParse(m);
  assert.equal(parsed.success, false, `accepted ${JSON.stringify(m).slice(0, 200)}`);
  assert.match(JSON.stringify(parsed.error?.issues.map((i) => i.path.join('.'))), field);
}

void describe('wire schema plausibility', () => {
  void it('accepts the messages a real agent sends', () => {
    for (const m of msgs) assert.ok(WireMessageSchema.safeParse(m).success, m.kind);
  });

  void it('refuses negative, NaN and infinite energy and power readings', () => {
    const t = of('telemetry');
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      refused(
        { ...t, samples: t.samples.map((s) => ({ ...s, energyMillijoules: bad })) },
        /samples\.0\.energyMillijoules/,
      );
      refused({ ...t, samples: t.samples.map((s) => ({ ...s, powerWatts: bad })) }, /samples\.0\.powerWatts/);
    }
    refused({ ...t, samples: t.samples.map((s) => ({ ...s, powerWatts: 2e11 })) }, /powerWatts/);
    refused({ ...t, samples: t.samples.map((s) => ({ ...s, tMs: -5 })) }, /tMs/);
  });

  void it('refuses a negative power limit in hello', () => {
    const h = of('hello');
    refused(
      {
        ...h,
        environment: { ...h.environment, gpus: h.environment.gpus.map((g) => ({ ...g, powerLimitWatts: -700 })) },
      },
      /powerLimitWatts/,
    );
  });

  void it('refuses one GPU twice in a mark reading, and takes a batch of readings over time', () => {
    const t = of('telemetry');
    assert.ok(t.mark !== undefined);
    refused({ ...t, samples: [t.samples[0], t.samples[0]] }, /samples/);
    const s = t.samples[0]!;
    const { mark: _mark, ...batch } = t;
    assert.ok(WireMessageSchema.safeParse({ ...batch, samples: [s, { ...s, tMs: s.tMs + 100 }] }).success);
  });

  void it('refuses a summary whose window ends before it starts, and a slice that ends before it starts', () => {
    const s = of('summary');
    refused({ ...s, windowStartMs: s.windowEndMs, windowEndMs: s.windowStartMs }, /windowEndMs/);
    assert.ok(WireMessageSchema.safeParse({ ...s, windowEndMs: s.windowStartMs }).success, 'an empty window is honest');
    refused({ ...s, baselineEndMs: (s.baselineStartMs as number) - 1 }, /baselineEndMs/);
    const k = of('sketch');
    refused({ ...k, sliceEndMs: k.sliceStartMs - 1 }, /sliceEndMs/);
  });

  void it('refuses __proto__ and prose as error classes, but takes constructor and toString as names', () => {
    const k = of('sketch');
    const data = new TextEncoder().encode(
      JSON.stringify(k).replace('"errorClasses":{}', '"errorClasses":{"__proto__":2}'),
    );
    const decoded = decodeMessage(data);
    assert.equal(decoded.ok, false);
    assert.match((decoded as { error: string }).error, /__proto__/);
    refused({ ...k, errorClasses: { 'not a name!': 1 } }, /errorClasses/);
    const ok = WireMessageSchema.safeParse({ ...k, errorClasses: { constructor: 1, toString: 2 } });
    assert.ok(ok.success);
    assert.deepEqual(Object.entries(ok.data.kind === 'sketch' ? ok.data.errorClasses : {}), [
      ['constructor', 1],
      ['toString', 2],
    ]);
  });
});
