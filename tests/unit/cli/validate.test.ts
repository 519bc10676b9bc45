import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { llem, REPO } from './run-cli.ts';
import { loadManifestFile } from '../../../lib/manifest/index.ts';

void describe('llem validate', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'llem-cli-'));
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  void it('exits 0 for every example and says how many runs each has', () => {
    const r = llem([
      'validate',
      'examples/quickstart.yaml',
      'examples/three-backends.yaml',
      'examples/pytorch-cuda-graphs.yaml',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      /examples\/pytorch-cuda-graphs\.yaml: valid \(pytorch-cuda-graphs: 6 configurations, 30 runs\)/,
    );
    assert.match(r.stdout, /examples\/quickstart\.yaml: valid \(quickstart: 2 configurations, 4 runs\)/);
    assert.match(r.stdout, /examples\/three-backends\.yaml: valid/);
  });

  void it('exits 2 with one `file: field.path: message` line per problem and no stack trace', async () => {
    const bad = path.join(dir, 'bad.yaml');
    const text = (await import('node:fs/promises')).readFile(path.join(REPO, 'examples/quickstart.yaml'), 'utf8');
    await writeFile(bad, (await text).replace('cycles: 2', 'cycles: 0').replace(/requests: (\d+)/, 'requets: $1'));
    const r = llem(['validate', bad]);
    assert.equal(r.code, 2);
    const lines = r.stderr.trim().split('\n');
    assert.deepEqual(lines.sort(), [
      `${bad}: spec.measurement.cycles: must be >= 1 (got 0)`,
      `${bad}: spec.workload.requets: unknown field "requets"; did you mean "requests"?`,
    ]);
    assert.doesNotMatch(r.stderr, /\bat .*\.ts:\d+/);
  });

  void it('checks every file and fails when any one is invalid', async () => {
    const bad = path.join(dir, 'missing-spec.yaml');
    await writeFile(bad, 'apiVersion: llem.dev/v1alpha1\nkind: EnergyExperiment\nmetadata: { name: x }\n');
    const r = llem(['validate', 'examples/three-backends.yaml', bad]);
    assert.equal(r.code, 2);
    assert.match(r.stdout, /three-backends\.yaml: valid/);
    assert.equal(r.stderr.trim(), `${bad}: spec: required (expected a mapping)`);
  });

  void it('exits 2 for a file that does not exist, without a stack trace', () => {
    const r = llem(['validate', path.join(dir, 'nope.yaml')]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /nope\.yaml: cannot read: ENOENT/);
  });

  void it('exits 2 with usage when no file is given', () => {
    const r = llem(['validate']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /usage: llem validate/);
  });

  void it('prints warnings without failing', () => {
    const r = llem(['validate', 'examples/quickstart.yaml']);
    assert.equal(r.code, 0);
    assert.match(r.stderr, /quickstart\.yaml: spec\.measurement\.minWindowSeconds: warning: /);
  });
});

void describe('examples', () => {
  void it('all validate, in-process, and the quickstart stays small enough for a 30 s simulated run', async () => {
    const files = (await readdir(path.join(REPO, 'examples'))).filter((f) => f.endsWith('.yaml'));
    assert.ok(files.length >= 4, files.join());
    for (const f of files) {
      const loaded = await loadManifestFile(path.join(REPO, 'examples', f));
      assert.ok(loaded.length > 0, f);
    }
    const [q] = await loadManifestFile(path.join(REPO, 'examples/quickstart.yaml'));
    assert.ok(q !== undefined);
    const m = q.experiment.spec.measurement;
    const fixedSeconds = q.matrix.runs.length * (m.baselineSeconds + m.minWindowSeconds + m.cooldownSeconds);
    assert.ok(fixedSeconds < 15, `quickstart fixed phases take ${fixedSeconds} s`);
    assert.ok(q.matrix.configurations.length >= 2 && typeof m.cycles === 'number' && m.cycles >= 2);
  });
});
