import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { InvalidInputError } from '../../../lib/errors.ts';
import { loadAgentEnvironment, readPromptsFile } from '../../../agent/config.ts';

const minimal = {
  publisher: { namespace: 'ns', experimentUid: 'u', runId: 'r' },
  model: 'm',
  start: { mode: 'immediate' },
};

void test('the config comes from LLEM_AGENT_CONFIG with every default filled in', () => {
  const env = loadAgentEnvironment({ LLEM_AGENT_CONFIG: JSON.stringify(minimal), CUDA_VISIBLE_DEVICES: '1' });
  assert.equal(env.config.workload.mode, 'concurrency');
  assert.equal(env.config.measurement.sampleIntervalMs, 100);
  assert.equal(env.config.publisher.attempt, 0);
  assert.equal(env.nats, null);
  assert.equal(env.visibility.cudaVisibleDevices, '1');
  assert.equal(env.nvmlLibrary, 'libnvidia-ml.so.1');
});

void test('NATS connection settings come from LLEM_NATS_* variables', () => {
  const dir = mkdtempSync(join(tmpdir(), 'llem-nats-files-'));
  const creds = join(dir, 'nats.creds');
  const ca = join(dir, 'ca.pem');
  writeFileSync(creds, '');
  writeFileSync(ca, '');
  const env = loadAgentEnvironment({
    LLEM_AGENT_CONFIG: JSON.stringify({ ...minimal, start: { mode: 'signal' } }),
    LLEM_NATS_URL: 'nats://a:4222, nats://b:4222',
    LLEM_NATS_CREDS_FILE: creds,
    LLEM_NATS_CA_FILE: ca,
  });
  assert.deepEqual(env.nats, { servers: ['nats://a:4222', 'nats://b:4222'], credsFile: creds, tls: { caFile: ca } });
});

void test('waiting for a start signal without a broker is rejected with what to do', () => {
  assert.throws(
    () => loadAgentEnvironment({ LLEM_AGENT_CONFIG: JSON.stringify({ ...minimal, start: { mode: 'signal' } }) }),
    (e: unknown) => e instanceof InvalidInputError && /LLEM_NATS_URL/.test(e.message),
  );
});

void test('a bad field is reported with its source and dotted path', () => {
  const bad = { ...minimal, workload: { mode: 'burst', concurrency: 0 } };
  assert.throws(
    () => loadAgentEnvironment({ LLEM_AGENT_CONFIG: JSON.stringify(bad) }),
    (e: unknown) => {
      assert.ok(e instanceof InvalidInputError);
      const paths = e.issues.map((i) => `${i.file}: ${i.path}`);
      assert.ok(paths.includes('LLEM_AGENT_CONFIG: workload.mode'), paths.join(', '));
      assert.ok(paths.includes('LLEM_AGENT_CONFIG: workload.concurrency'));
      return true;
    },
  );
});

void test('missing config, bad JSON and an unknown key are input errors', () => {
  assert.throws(() => loadAgentEnvironment({}), /LLEM_AGENT_CONFIG: not set/);
  assert.throws(() => loadAgentEnvironment({ LLEM_AGENT_CONFIG: '{' }), /not valid JSON/);
  assert.throws(
    () => loadAgentEnvironment({ LLEM_AGENT_CONFIG: JSON.stringify({ ...minimal, extra: 1 }) }),
    InvalidInputError,
  );
});

void test('--config FILE wins over the environment variable', () => {
  const dir = mkdtempSync(join(tmpdir(), 'llem-agent-'));
  const file = join(dir, 'agent.json');
  writeFileSync(file, JSON.stringify({ ...minimal, model: 'from-file' }));
  const env = loadAgentEnvironment({ LLEM_AGENT_CONFIG: JSON.stringify(minimal) }, file);
  assert.equal(env.config.model, 'from-file');
  assert.throws(() => loadAgentEnvironment({}, join(dir, 'missing.json')), /missing\.json: cannot read/);
});

void test('prompts from a JSON-lines file (a mounted ConfigMap key) replace synthetic ones', () => {
  const dir = mkdtempSync(join(tmpdir(), 'llem-prompts-'));
  const file = join(dir, 'prompts.jsonl');
  writeFileSync(file, '{"prompt": "first one"}\n\n{"prompt": "second", "note": "extra fields are fine"}\n');
  const env = loadAgentEnvironment({
    LLEM_AGENT_CONFIG: JSON.stringify({ ...minimal, workload: { promptsFile: file } }),
  });
  assert.deepEqual(env.config.workload.prompts, ['first one', 'second']);
  assert.deepEqual(readPromptsFile(file), ['first one', 'second']);
});

void test('a bad prompts file is an input error naming the file and the line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'llem-prompts-'));
  const bad = join(dir, 'bad.jsonl');
  writeFileSync(bad, '{"prompt": "ok"}\nnot json\n{"text": "wrong field"}\n');
  assert.throws(
    () => readPromptsFile(bad),
    (e: unknown) => {
      assert.ok(e instanceof InvalidInputError && e.exitCode === 2);
      assert.deepEqual(
        e.issues.map((i) => [i.file, i.path]),
        [
          [bad, 'line 2'],
          [bad, 'line 3'],
        ],
      );
      return true;
    },
  );
  const empty = join(dir, 'empty.jsonl');
  writeFileSync(empty, '\n\n');
  assert.throws(() => readPromptsFile(empty), /holds no prompts/);
  assert.throws(() => readPromptsFile(join(dir, 'missing.jsonl')), /cannot read the prompts file .*configMapRef/);
});
