import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Pod } from '@kubernetes/client-node';
import { validateEnergyExperiment } from '../../../api/validation.ts';
import { stepRuns, type RunInputs, type RunJudge } from '../../../controller/runs.ts';
import { newAggregator, type Aggregator } from '../../../aggregator/index.ts';
import { buildPod, podName, podLabels } from '../../../controller/pods.ts';
import { fakeMessages } from '../../support/fake-agent.ts';

const ref = { name: 'exp', namespace: 'ns', uid: 'uid-1234567' };

/** The controller's judge: the Aggregator's verdicts, nothing else. */
function judgeOf(agg: Aggregator | null, failures: Map<string, string> = new Map()): RunJudge {
  return { verdict: (id) => agg?.runVerdict(id) ?? null, failure: (id, a) => failures.get(`${id}/${a}`) };
}

function matrix(
  points: number[],
  retries = 1,
  parallelism = 2,
): { inputs: RunInputs; v: Extract<ReturnType<typeof validateEnergyExperiment>, { ok: true }> } {
  const v = validateEnergyExperiment({
    apiVersion: 'llem.dev/v1alpha1',
    kind: 'EnergyExperiment',
    metadata: { name: 'exp' },
    spec: {
      model: { name: 'm', source: { random: {} } },
      backends: [{ type: 'pytorch' }],
      sweep: { axes: { 'pytorch.maxBatchSize': points } },
      measurement: { cycles: 1 },
      placement: { parallelism },
      policy: { retries },
    },
  });
  assert.ok(v.ok);
  const inputs: RunInputs = {
    planned: v.matrix.runs,
    previous: [],
    pods: [],
    judge: judgeOf(null),
    resumed: new Set(),
    policy: v.experiment.spec.policy,
    replicas: 1,
    parallelism,
    now: new Date('2026-01-01T00:00:00Z'),
    retryBaseMs: 1000,
    expected: new Set(),
    podName: (r, a, i) => podName(ref, r, a, i),
  };
  return { inputs, v };
}

function pod(runId: string, attempt: number, phase: string, reason?: string): V1Pod {
  return {
    metadata: { name: podName(ref, runId, attempt, 0), labels: podLabels(ref, runId, attempt, 0) },
    status: {
      phase,
      containerStatuses: [
        {
          name: 'backend',
          ready: false,
          restartCount: 0,
          image: '',
          imageID: '',
          state: { terminated: { exitCode: 137, reason: reason ?? 'Error' } },
        },
      ],
    },
  };
}

void test('starts no more runs than placement.parallelism', () => {
  const { inputs } = matrix([1, 2, 3], 1, 2);
  const out = stepRuns(inputs);
  assert.equal(out.create.length, 2);
  assert.deepEqual(
    out.runs.map((r) => r.phase),
    ['Running', 'Running', 'Pending'],
  );
});

void test('stepping again with the same inputs changes nothing', () => {
  const { inputs } = matrix([1, 2], 1, 2);
  const first = stepRuns(inputs);
  const pods = first.create.map((c) => pod(c.run.id, 0, 'Running'));
  const second = stepRuns({ ...inputs, previous: first.runs, pods });
  const third = stepRuns({ ...inputs, previous: second.runs, pods });
  assert.deepEqual(third.runs, second.runs);
  assert.equal(third.create.length + third.deletePods.length, 0);
});

void test('an OOM-killed pod retries the run as the next attempt, then fails it when retries are spent', () => {
  const { inputs } = matrix([1], 1, 1);
  const started = stepRuns(inputs);
  const id = started.runs[0]?.id ?? '';
  const retried = stepRuns({ ...inputs, previous: started.runs, pods: [pod(id, 0, 'Failed', 'OOMKilled')] });
  assert.equal(retried.runs[0]?.phase, 'Pending');
  assert.equal(retried.runs[0]?.attempt, 1);
  assert.match(retried.runs[0]?.message ?? '', /OOMKilled/);
  assert.equal(retried.create.length, 0, 'backoff first');
  const later = new Date(inputs.now.getTime() + 5000);
  const restarted = stepRuns({ ...inputs, now: later, previous: retried.runs, pods: [] });
  assert.equal(restarted.create[0]?.attempt, 1);
  const failed = stepRuns({
    ...inputs,
    now: later,
    previous: restarted.runs,
    pods: [pod(id, 1, 'Failed', 'OOMKilled')],
  });
  assert.equal(failed.runs[0]?.phase, 'Failed');
});

void test('a run succeeds only once the Aggregator judges every message of its attempt arrived', () => {
  const { inputs, v } = matrix([1], 0, 1);
  const started = stepRuns(inputs);
  const id = started.runs[0]?.id ?? '';
  const msgs = fakeMessages(
    { namespace: 'ns', experimentUid: ref.uid, runId: id, attempt: 0, replica: 0 },
    160,
    50,
    v.matrix.runs[0]?.configHash,
  );
  const agg = newAggregator(ref.uid, v.matrix, 1, 'strict');
  let seq = 0;
  for (const m of msgs.filter((m) => m.seq !== 3)) agg.apply(m, ++seq);
  const gap = stepRuns({ ...inputs, judge: judgeOf(agg), previous: started.runs, pods: [pod(id, 0, 'Running')] });
  assert.equal(gap.runs[0]?.phase, 'Running', 'a gap keeps it incomplete');
  agg.apply(msgs[2]!, ++seq);
  assert.equal(agg.apply(msgs[2]!, seq + 1).outcome, 'duplicate');
  const done = stepRuns({ ...inputs, judge: judgeOf(agg), previous: started.runs, pods: [pod(id, 0, 'Running')] });
  assert.equal(done.runs[0]?.phase, 'Succeeded');
  assert.equal(agg.results().runs[0]?.status, 'complete', 'status and the strict results agree: one judge');
  assert.deepEqual(done.deletePods, [podName(ref, id, 0, 0)], 'a succeeded run releases its finished pod');
});

void test('a run whose data arrived for an attempt the table does not know yet adopts that attempt, never an older one', () => {
  const { inputs, v } = matrix([1], 2, 1);
  const id = v.matrix.runs[0]?.id ?? '';
  const agg = newAggregator(ref.uid, v.matrix, 1, 'strict');
  const msgs = fakeMessages(
    { namespace: 'ns', experimentUid: ref.uid, runId: id, attempt: 2, replica: 0 },
    160,
    50,
    v.matrix.runs[0]?.configHash,
  );
  // Attempts 1 and 2 were started (the Aggregator's checkpoint holds that), but the table lost its write.
  agg.startAttempt(id, 1);
  agg.startAttempt(id, 2);
  let seq = 0;
  for (const m of msgs) agg.apply(m, ++seq);
  // The table (written before pods) lost its last write: it still says attempt 0 Pending.
  const out = stepRuns({
    ...inputs,
    judge: judgeOf(agg),
    previous: [{ id, configurationId: v.matrix.runs[0]!.configurationId, cycle: 0, phase: 'Pending', attempt: 0 }],
  });
  assert.equal(out.create.length, 0, 'no pod for an attempt that already finished');
  assert.equal(out.runs[0]?.phase, 'Succeeded');
  assert.equal(out.runs[0]?.attempt, 2);
});

void test('an attempt the Aggregator failed on is retried as the next attempt with reason AggregatorFailed', () => {
  const { inputs } = matrix([1], 1, 1);
  const started = stepRuns(inputs);
  const id = started.runs[0]?.id ?? '';
  const failures = new Map([[`${id}/0`, 'the aggregator failed on run x: boom']]);
  const out = stepRuns({
    ...inputs,
    judge: judgeOf(null, failures),
    previous: started.runs,
    pods: [pod(id, 0, 'Running')],
  });
  assert.equal(out.runs[0]?.phase, 'Pending');
  assert.equal(out.runs[0]?.attempt, 1);
  assert.match(out.runs[0]?.message ?? '', /AggregatorFailed/);
});

void test('after a restart, a Running run with no pod and no data gets its pods created for the same attempt', () => {
  const { inputs } = matrix([1], 0, 1);
  const started = stepRuns(inputs);
  const id = started.runs[0]?.id ?? '';
  const lost = stepRuns({ ...inputs, previous: started.runs, pods: [] });
  assert.equal(lost.runs[0]?.phase, 'Failed', 'without the restart flag a vanished pod is PodLost');
  const resumed = stepRuns({ ...inputs, previous: started.runs, pods: [], resumed: new Set([id]) });
  assert.equal(resumed.runs[0]?.phase, 'Running');
  assert.deepEqual(
    resumed.create.map((c) => c.attempt),
    [0],
  );
});

void test('agent pods carry GPU limits, owner reference, labels and the agent init container', () => {
  const { v } = matrix([1]);
  const run = v.matrix.runs[0]!;
  const configuration = v.matrix.configurations[0]!;
  const p = buildPod(
    { experiment: ref, spec: v.experiment.spec, configuration, run, attempt: 0, replica: 0 },
    { agentImage: 'agent:1', backendImages: { pytorch: 'pt:1' }, agentEnv: [], simulate: false },
  );
  const c = p.spec?.containers[0];
  assert.equal(c?.resources?.limits?.['nvidia.com/gpu'], '1');
  assert.equal(c?.image, 'pt:1');
  assert.deepEqual(c?.command?.slice(2), ['agent', '--'], 'after /llem/bin/node /llem/bin/llem.mjs');
  assert.equal(p.spec?.initContainers?.[0]?.image, 'agent:1');
  assert.equal(p.metadata?.ownerReferences?.[0]?.uid, ref.uid);
  assert.equal(p.metadata?.labels?.['llem.dev/experiment'], 'exp');
  assert.equal(p.metadata?.labels?.['llem.dev/run'], run.id);
  const cfg = JSON.parse(c?.env?.find((e) => e.name === 'LLEM_AGENT_CONFIG')?.value ?? '{}') as {
    publisher: { runId: string };
  };
  assert.equal(cfg.publisher.runId, run.id);
});

void test('a pod whose image is missing on the node (pull policy Never, or a failed pull) fails its run at once with the image named: no retry storm, no waiting out the run timeout', () => {
  for (const reason of ['ErrImageNeverPull', 'ErrImagePull', 'ImagePullBackOff']) {
    const { inputs, v } = matrix([1], 2);
    const id = v.matrix.runs[0]?.id ?? '';
    const started = stepRuns(inputs);
    const waiting: V1Pod = {
      metadata: { name: podName(ref, id, 0, 0), labels: podLabels(ref, id, 0, 0) },
      status: {
        phase: 'Pending',
        initContainerStatuses: [
          {
            name: 'install-agent',
            ready: false,
            restartCount: 0,
            image: 'localhost/llem-agent:x',
            imageID: '',
            state: {
              waiting: {
                reason,
                message: 'Container image "localhost/llem-agent:x" is not present with pull policy of Never',
              },
            },
          },
        ],
      },
    };
    const next = stepRuns({ ...inputs, previous: started.runs, pods: [waiting] });
    const run = next.runs.find((r) => r.id === id);
    assert.equal(
      run?.phase,
      'Failed',
      `${reason}: failed at once although retries are left (another attempt pulls the same image)`,
    );
    assert.equal(run?.attempt, 0);
    assert.match(
      run?.message ?? '',
      new RegExp(`${reason}: Pod .*install-agent: Container image "localhost/llem-agent:x".*not retried`),
    );
  }
});
