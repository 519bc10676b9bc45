// spec.slo reaches the agent (lib/backends/agent-config.ts -> agent/config.ts), and only when set: the
// agent then counts SLO-met requests in every slice, and sends no count without an SLO (ADR 0030).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateEnergyExperiment } from '../../../api/validation.ts';
import { agentConfigFor } from '../../../lib/backends/agent-config.ts';
import { parseAgentConfig } from '../../../agent/config.ts';
import { SliceRecorder } from '../../../agent/slices.ts';
import { createLatencySketch } from '../../../lib/sketch/index.ts';

function configWith(slo: unknown): ReturnType<typeof parseAgentConfig> {
  const v = validateEnergyExperiment({
    apiVersion: 'llem.dev/v1alpha1',
    kind: 'EnergyExperiment',
    metadata: { name: 'e' },
    spec: {
      model: { name: 'm', source: { random: {} } },
      backends: [{ type: 'pytorch' }],
      ...(slo === undefined ? {} : { slo }),
    },
  });
  assert.ok(v.ok);
  const [configuration] = v.matrix.configurations;
  const [run] = v.matrix.runs;
  assert.ok(configuration !== undefined && run !== undefined);
  const raw = agentConfigFor(
    { experiment: { namespace: 'ns', uid: 'u' }, spec: v.experiment.spec, configuration, run, attempt: 0, replica: 0 },
    true,
  );
  return parseAgentConfig(JSON.parse(JSON.stringify(raw)), 'test');
}

void describe('SLO targets in the agent config', () => {
  void it('carries spec.slo with its defaults to the agent', () => {
    const c = configWith({ ttftMs: { ms: 250 }, e2eMs: { p: 90, ms: 4000 } });
    assert.deepEqual(c.slo, { ttftMs: { p: 99, ms: 250 }, e2eMs: { p: 90, ms: 4000 } });
  });

  void it('leaves slo out when the spec has none, so slices carry no SLO-met count', () => {
    const c = configWith(undefined);
    assert.equal(c.slo, undefined);
    const rec = new SliceRecorder(createLatencySketch, 0);
    rec.addRequest({
      ok: true,
      startMs: 0,
      endMs: 5,
      ttftMs: 1,
      itlMs: [1],
      e2eMs: 2,
      tpotMs: 1,
      inputTokens: 1,
      outputTokens: 2,
    });
    assert.equal('requestsSloMet' in rec.cut(1000), false);
  });
});
