// The pod/image path contract (lib/backends/server-command.ts) against both sides: the Dockerfiles
// under images/ (statically) and the pods controller/pods.ts renders. The real node
// (tests/e2e-node) checks the built images' filesystems against the same constants.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Pod } from '@kubernetes/client-node';
import { validateEnergyExperiment } from '../../../api/validation.ts';
import { buildPod } from '../../../controller/pods.ts';
import {
  AGENT_DIR,
  AGENT_ENTRY,
  AGENT_INSTALL_COMMAND,
  AGENT_LLEM_ARGV,
  AGENT_NODE,
  AGENT_PAYLOAD_DIR,
  PYTORCH_SERVER_ROOT,
} from '../../../lib/backends/server-command.ts';
import { agentPodContractProblems } from '../../support/pod-contract.ts';
import { parseDockerfile, parseKeyValues, type Instruction } from './dockerfile-lint.ts';

const root = join(import.meta.dirname, '..', '..', '..');
const read = (name: string): string => readFileSync(join(root, 'images', name, 'Dockerfile'), 'utf8');
const finalStage = (name: string): Instruction[] => parseDockerfile(read(name)).stages.at(-1)?.instructions ?? [];
const under = (path: string, dir: string): boolean => path === dir || path.startsWith(`${dir}/`);

function pod(backend: Record<string, unknown>, simulate: boolean): V1Pod {
  const spec = { model: { name: 'org/model', source: { huggingFace: {} } }, backends: [backend] };
  const v = validateEnergyExperiment({
    apiVersion: 'llem.dev/v1alpha1',
    kind: 'EnergyExperiment',
    metadata: { name: 'exp' },
    spec,
  });
  assert.ok(v.ok, JSON.stringify(v));
  const [configuration, run] = [v.matrix.configurations[0], v.matrix.runs[0]];
  assert.ok(configuration !== undefined && run !== undefined);
  const opts = { agentImage: 'agent:1', backendImages: {}, agentEnv: [], simulate };
  return buildPod(
    {
      experiment: { name: 'exp', namespace: 'ns', uid: 'uid-12345' },
      spec: v.experiment.spec,
      configuration,
      run,
      attempt: 0,
      replica: 0,
    },
    opts,
  );
}

void test("the agent image's ENTRYPOINT is the init container's command, copying from where its final stage keeps the payload", () => {
  const ins = finalStage('agent');
  assert.equal(
    ins.find((i) => i.keyword === 'ENTRYPOINT')?.args,
    JSON.stringify(AGENT_INSTALL_COMMAND).replaceAll(',', ', '),
  );
  assert.ok(
    ins.some((i) => i.keyword === 'COPY' && i.args === `--from=build /out/ ${AGENT_PAYLOAD_DIR}/`),
    'payload copied to AGENT_PAYLOAD_DIR',
  );
});

void test('the agent payload holds the node binary and CLI entry the backend container runs from the volume', () => {
  const build =
    parseDockerfile(read('agent'))
      .stages[0]?.instructions.filter((i) => i.keyword === 'RUN')
      .map((i) => i.args)
      .join('\n') ?? '';
  for (const path of [AGENT_NODE, AGENT_ENTRY]) {
    const inPayload = `/out/${path.slice(AGENT_DIR.length + 1)}`;
    assert.ok(
      build.includes(` ${inPayload} `) || build.includes(` ${inPayload}\n`) || build.endsWith(` ${inPayload}`),
      `the build stage writes ${inPayload}`,
    );
  }
});

void test('no backend image keeps files under the agent volume mount, where the mount would hide them', () => {
  for (const name of ['pytorch', 'vllm', 'tensorrt-llm']) {
    for (const i of finalStage(name)) {
      const paths =
        i.keyword === 'COPY'
          ? [i.args.split(/\s+/).at(-1) ?? '']
          : i.keyword === 'WORKDIR'
            ? [i.args]
            : i.keyword === 'ENV'
              ? Object.values(parseKeyValues(i.args)).flatMap((v) => v.split(':'))
              : [];
      for (const p of paths.filter((x) => x.startsWith('/')))
        assert.ok(!under(p.replace(/\/$/, ''), AGENT_DIR), `${name}: ${i.keyword} ${p} lies under ${AGENT_DIR}`);
    }
  }
});

void test('the PyTorch image keeps its server package at the root the launcher puts on PYTHONPATH', () => {
  const ins = finalStage('pytorch');
  const env = Object.assign({}, ...ins.filter((i) => i.keyword === 'ENV').map((i) => parseKeyValues(i.args))) as Record<
    string,
    string
  >;
  assert.equal(env['PYTHONPATH'], PYTORCH_SERVER_ROOT);
  assert.ok(
    ins.some((i) => i.keyword === 'COPY' && i.args === `images/pytorch/server/ ${PYTORCH_SERVER_ROOT}/server/`),
  );
});

void test("every backend type's rendered pod installs the agent where its backend container runs it from", () => {
  for (const backend of [{ type: 'pytorch' }, { type: 'vllm' }, { type: 'tensorrt' }]) {
    for (const simulate of [false, true]) {
      const p = pod(backend, simulate);
      assert.deepEqual(agentPodContractProblems(p), [], `${backend.type} simulate=${simulate}`);
      const c = p.spec?.containers[0];
      assert.deepEqual(c?.command?.slice(0, 2), [...AGENT_LLEM_ARGV]);
      if (simulate)
        assert.deepEqual(
          c?.args?.slice(0, 3),
          [AGENT_NODE, AGENT_ENTRY, 'mock-server'],
          'the mock server runs from the volume too',
        );
    }
  }
});

void test('the contract check names each way the old pod layout broke the agent (mount over /opt/llem, a missing bin/llem, a hidden PYTHONPATH)', () => {
  const p = pod({ type: 'pytorch' }, false);
  const spec = p.spec;
  assert.ok(spec?.initContainers?.[0] !== undefined && spec.containers[0] !== undefined);
  spec.initContainers[0] = {
    ...spec.initContainers[0],
    command: ['cp', '-a', '/llem/.', '/opt/llem/'],
    volumeMounts: [{ name: 'llem-agent', mountPath: '/opt/llem' }],
  };
  const c = spec.containers[0];
  c.command = ['/opt/llem/bin/llem', 'agent', '--'];
  c.volumeMounts = (c.volumeMounts ?? []).map((m) => (m.name === 'llem-agent' ? { ...m, mountPath: '/opt/llem' } : m));
  const problems = agentPodContractProblems(p).join('\n');
  assert.match(problems, /install-agent does not mount a volume at \/llem/);
  assert.match(problems, /install-agent runs \["cp","-a","\/llem\/\.","\/opt\/llem\/"\]/);
  assert.match(problems, /runs \["\/opt\/llem\/bin\/llem","agent","--"\]/);
  assert.match(problems, /PYTHONPATH=\/opt\/llem\/pytorch lies under the volume mount \/opt\/llem/);
});

const asRoot = process.getuid?.() === 0 && spawnSync('setpriv', ['--version']).status === 0;

void test(
  "the install command copies the payload as the agent image's non-root user into a root-owned volume, exit 0, node still executable",
  { skip: asRoot ? false : 'needs root and setpriv (util-linux)' },
  () => {
    const dir = mkdtempSync(join(tmpdir(), 'llem-install-'));
    try {
      const payload = join(dir, 'payload');
      const volume = join(dir, 'volume');
      mkdirSync(join(payload, 'bin'), { recursive: true });
      writeFileSync(join(payload, 'bin', 'node'), '#!/bin/sh\n', { mode: 0o755 });
      writeFileSync(join(payload, 'bin', 'llem.mjs'), '', { mode: 0o644 });
      chmodSync(payload, 0o755);
      chmodSync(dir, 0o755);
      mkdirSync(volume, { mode: 0o777 });
      chmodSync(volume, 0o777); // an emptyDir: root-owned, world-writable
      const [cp = '', ...args] = AGENT_INSTALL_COMMAND.map((a) =>
        a.replace(`${AGENT_PAYLOAD_DIR}/`, `${payload}/`).replace(`${AGENT_DIR}/`, `${volume}/`),
      );
      const user =
        finalStage('agent')
          .filter((i) => i.keyword === 'USER')
          .at(-1)?.args ?? '';
      const [uid = '', gid = ''] = user.split(':');
      const r = spawnSync('setpriv', [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', cp, ...args], {
        encoding: 'utf8',
      });
      assert.equal(r.status, 0, r.stderr);
      assert.ok((statSync(join(volume, 'bin', 'node')).mode & 0o111) !== 0, 'bin/node stays executable');
      // The old command: cp -a exits 1 (it cannot set the volume's own times and mode).
      rmSync(volume, { recursive: true });
      mkdirSync(volume, { mode: 0o777 });
      chmodSync(volume, 0o777);
      const old = spawnSync(
        'setpriv',
        [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '/bin/cp', '-a', `${payload}/.`, `${volume}/`],
        { encoding: 'utf8' },
      );
      assert.equal(old.status, 1, 'cp -a fails here, which is why the command is cp -R');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
