// Simulated replicas in a cluster: each pod's simulated GPUs are its own (the aggregator refuses a GPU UUID two
// replicas report, so replicas that all called their GPU GPU-simulated-0000 could never complete a run).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseAgentConfig } from '../../../agent/config.ts';
import { validateEnergyExperiment } from '../../../api/validation.ts';
import { agentConfigFor } from '../../../lib/backends/agent-config.ts';

void test("simulated replica r's agent reads the machine's GPUs r*g .. r*g+g-1, so replicas never share a UUID", () => {
  const v = validateEnergyExperiment({
    apiVersion: 'llem.dev/v1alpha1',
    kind: 'EnergyExperiment',
    metadata: { name: 'e', namespace: 'ns' },
    spec: {
      model: { name: 'm', source: { random: {} } },
      backends: [{ type: 'pytorch', pytorch: { tensorParallelSize: 2 } }],
      placement: { replicas: 3, gpusPerRun: 2 },
    },
  });
  assert.ok(v.ok, JSON.stringify(v));
  const configuration = v.matrix.configurations[0];
  const run = v.matrix.runs[0];
  assert.ok(configuration !== undefined && run !== undefined);
  const simulated = [0, 1, 2].map((replica) => {
    const raw = agentConfigFor(
      { experiment: { namespace: 'ns', uid: 'u' }, spec: v.experiment.spec, configuration, run, attempt: 0, replica },
      true,
    );
    return parseAgentConfig(raw, `replica ${replica}`).telemetry.simulated;
  });
  assert.deepEqual(simulated, [{ gpuCount: 2 }, { gpuCount: 2, firstDevice: 2 }, { gpuCount: 2, firstDevice: 4 }]);
});
