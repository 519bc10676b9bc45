// Static checks of every Dockerfile under images/: pinned bases, existing COPY sources, non-root
// users, OCI and schema-version labels, exec-form entrypoints, versions in one place.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { API_VERSION } from '../../../api/spec.ts';
import { PROTOCOL_VERSION } from '../../../api/protocol.ts';
import { lintDockerfile, parseDockerfile, parseKeyValues, type LintOptions } from './dockerfile-lint.ts';

const root = join(import.meta.dirname, '..', '..', '..');
const versions = Object.fromEntries(
  readFileSync(join(root, 'images', 'versions.env'), 'utf8')
    .split('\n')
    .filter((l) => /^\w+=/.test(l))
    .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
) as Record<string, string>;

const IMAGES: Record<string, { nonRoot: boolean; multiStage: boolean }> = {
  controller: { nonRoot: true, multiStage: true },
  agent: { nonRoot: true, multiStage: true },
  pytorch: { nonRoot: true, multiStage: true },
  vllm: { nonRoot: true, multiStage: false },
  'tensorrt-llm': { nonRoot: false, multiStage: false },
  nats: { nonRoot: true, multiStage: false },
};

const options = (nonRoot: boolean): LintOptions => ({
  repoRoot: root,
  requireNonRoot: nonRoot,
  requiredLabels: {
    'org.opencontainers.image.title': null,
    'org.opencontainers.image.description': null,
    'org.opencontainers.image.source': null,
    'org.opencontainers.image.version': null,
    'org.opencontainers.image.licenses': null,
    'dev.llem.api-version': API_VERSION,
    'dev.llem.protocol-version': String(PROTOCOL_VERSION),
  },
  pinnedArgs: {
    NODE_IMAGE: versions['NODE_IMAGE'] ?? '',
    DEBIAN_IMAGE: versions['DEBIAN_IMAGE'] ?? '',
    PYTHON_IMAGE: versions['PYTHON_IMAGE'] ?? '',
    VLLM_IMAGE: versions['VLLM_IMAGE'] ?? '',
    TENSORRT_LLM_IMAGE: versions['TENSORRT_LLM_IMAGE'] ?? '',
    TORCH_VERSION: versions['TORCH_VERSION'] ?? '',
  },
});

const read = (name: string): string => readFileSync(join(root, 'images', name, 'Dockerfile'), 'utf8');

for (const [name, rule] of Object.entries(IMAGES)) {
  void test(`the ${name} Dockerfile passes the static lint`, () => {
    assert.deepEqual(lintDockerfile(read(name), options(rule.nonRoot)), []);
  });
  void test(`the ${name} Dockerfile is ${rule.multiStage ? 'multi-stage' : 'a pinned official base with our labels'}`, () => {
    const stages = parseDockerfile(read(name)).stages;
    assert.ok(rule.multiStage ? stages.length >= 2 : stages.length >= 1);
  });
}

void test('the api and protocol versions in versions.env match the code', () => {
  assert.equal(versions['LLEM_API_VERSION'], API_VERSION);
  assert.equal(versions['LLEM_PROTOCOL_VERSION'], String(PROTOCOL_VERSION));
});

void test('the PyTorch image runs the server package the launcher starts', () => {
  const final = parseDockerfile(read('pytorch')).stages.at(-1);
  const ins = final?.instructions ?? [];
  const env = Object.assign({}, ...ins.filter((i) => i.keyword === 'ENV').map((i) => parseKeyValues(i.args))) as Record<
    string,
    string
  >;
  assert.equal(env['PYTHONPATH'], '/opt/llem/pytorch', 'PYTORCH_SERVER_ROOT (tests/unit/images/contract.test.ts)');
  assert.ok(ins.some((i) => i.keyword === 'COPY' && i.args === 'images/pytorch/server/ /opt/llem/pytorch/server/'));
  assert.equal(ins.find((i) => i.keyword === 'ENTRYPOINT')?.args, '["python3", "-m", "server"]');
});

void test('the agent image copies its payload into the shared volume as a non-root user', () => {
  const final = parseDockerfile(read('agent')).stages.at(-1);
  assert.equal(
    final?.instructions.find((i) => i.keyword === 'ENTRYPOINT')?.args,
    '["/bin/cp", "-R", "/opt/llem/.", "/llem/"]',
  );
  assert.equal(final?.instructions.filter((i) => i.keyword === 'USER').at(-1)?.args, '65532:65532');
});

const strict = options(true);

void test('the lint rejects latest and untagged bases', () => {
  assert.match(lintDockerfile('FROM ubuntu:latest\nUSER 1\n', strict).join('\n'), /FROM ubuntu:latest/);
  assert.match(lintDockerfile('FROM ubuntu\nUSER 1\n', strict).join('\n'), /FROM ubuntu: base image must carry/);
  assert.match(lintDockerfile('ARG B=registry:5000/img\nFROM ${B}\n', strict).join('\n'), /FROM registry:5000\/img/);
  assert.ok(!lintDockerfile('FROM ubuntu@sha256:abc\n', strict).some((p) => p.startsWith('FROM')));
});

void test('the lint rejects a root or missing USER, missing COPY sources and shell-form entrypoints', () => {
  const problems = lintDockerfile('FROM debian:12.12-slim\nCOPY no/such/dir/ /x/\nENTRYPOINT node x.js\n', strict).join(
    '\n',
  );
  assert.match(problems, /no USER/);
  assert.match(problems, /COPY source no\/such\/dir\/ does not exist/);
  assert.match(problems, /exec \(JSON\) form/);
  assert.match(lintDockerfile('FROM debian:12.12-slim\nUSER root\n', strict).join('\n'), /USER root is root/);
  assert.match(
    lintDockerfile('FROM debian:12.12-slim AS a\nFROM debian:12.12-slim\nCOPY --from=b /x /y\nUSER 1\n', strict).join(
      '\n',
    ),
    /--from=b names no earlier stage/,
  );
});

void test('the lint rejects wrong schema-version labels and versions that drift from versions.env', () => {
  const text =
    'ARG NODE_IMAGE=node:20.0.0-slim\nFROM ${NODE_IMAGE}\nLABEL dev.llem.api-version="llem.dev/v0"\nUSER 1\n';
  const problems = lintDockerfile(text, strict).join('\n');
  assert.match(problems, /dev.llem.api-version is "llem.dev\/v0"/);
  assert.match(problems, /label org.opencontainers.image.source is missing/);
  assert.match(problems, /ARG NODE_IMAGE=node:20.0.0-slim differs/);
  assert.match(
    lintDockerfile('FROM python:3.12.1-slim\nRUN pip install torch\nUSER 1\n', strict).join('\n'),
    /--no-cache-dir/,
  );
});

/** Top-level folders that hold TypeScript the bundle may import (plus the build's own inputs). */
const SOURCE_DIRS = ['api', 'lib', 'agent', 'controller', 'cli', 'local', 'aggregator', 'bench', 'scripts', 'bin'];

void test('the controller and agent builds copy every source folder the bundle can import', () => {
  const present = SOURCE_DIRS.filter((d) => existsSync(join(root, d)));
  for (const name of ['controller', 'agent']) {
    const build = parseDockerfile(read(name)).stages[0];
    const copied = new Set(
      (build?.instructions ?? [])
        .filter((i) => i.keyword === 'COPY')
        .flatMap((i) => i.args.split(/\s+/).slice(0, -1))
        .map((s) => s.replace(/\/$/, '')),
    );
    const missing = present.filter((d) => !copied.has(d));
    assert.deepEqual(missing, [], `${name}: add COPY lines for ${missing.join(', ')}`);
  }
});
