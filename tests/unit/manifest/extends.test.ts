import { describe, it, after, before } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { deepMerge, loadExperimentFile, MAX_EXTENDS_DEPTH } from '../../../lib/manifest/index.ts';
import { issueLines, tree, VALID_DOC, type Tree } from './helpers.ts';

/** How the loader names files: relative to the working directory when inside it, else absolute. */
const rel = (p: string): string => {
  const r = path.relative(process.cwd(), p);
  return r.startsWith('..') ? p : r;
};

void describe('deepMerge', () => {
  void it('merges mappings recursively, replaces lists and scalars, and deletes on null', () => {
    const base = { a: { b: 1, c: [1, 2], d: 'x' }, keep: true, drop: { deep: 1 } };
    const over = { a: { c: [3], d: 'y', e: 5 }, drop: null };
    assert.deepEqual(deepMerge(base, over), { a: { b: 1, c: [3], d: 'y', e: 5 }, keep: true });
  });

  void it('does not modify its inputs', () => {
    const base = { a: { b: 1 } };
    deepMerge(base, { a: { b: 2 } });
    assert.deepEqual(base, { a: { b: 1 } });
  });
});

void describe('extends', () => {
  let t: Tree;
  before(async () => {
    t = await tree();
  });
  after(async () => t.cleanup());

  void it('resolves an A -> B -> C chain, nearest file winning', async () => {
    await t.write(
      'chain/c.yaml',
      VALID_DOC.replace('    cycles: 2', '    cycles: 2\n    seed: 5\n    warmupRequests: 3'),
    );
    await t.write('chain/b.yaml', 'extends: c.yaml\nspec:\n  measurement:\n    cycles: 4\n    seed: 6\n');
    const a = await t.write(
      'chain/a.yaml',
      'extends: b.yaml\nmetadata:\n  name: from-a\nspec:\n  measurement:\n    cycles: 5\n',
    );
    const l = await loadExperimentFile(a);
    assert.equal(l.experiment.metadata.name, 'from-a');
    assert.equal(l.experiment.spec.measurement.cycles, 5);
    assert.equal(l.experiment.spec.measurement.seed, 6);
    assert.equal(l.experiment.spec.measurement.warmupRequests, 3);
    assert.equal(l.matrix.runs.length, 5);
  });

  void it('applies a list of bases left to right, the file itself on top', async () => {
    await t.write('multi/base.yaml', VALID_DOC);
    await t.write('multi/fast.yaml', 'spec:\n  measurement:\n    cycles: 1\n    order: sequential\n');
    await t.write('multi/slow.yaml', 'spec:\n  measurement:\n    cycles: 9\n');
    const f = await t.write(
      'multi/top.yaml',
      'extends: [base.yaml, fast.yaml, slow.yaml]\nspec:\n  measurement:\n    seed: 1\n',
    );
    const m = (await loadExperimentFile(f)).experiment.spec.measurement;
    assert.deepEqual([m.cycles, m.order, m.seed], [9, 'sequential', 1]);
  });

  void it('replaces lists whole and deletes keys set to null', async () => {
    await t.write(
      'lists/base.yaml',
      VALID_DOC.replace('    - type: vllm', '    - type: vllm\n    - type: pytorch').replace(
        '  measurement:',
        '  placement:\n    nodeSelector: { pool: a }\n  measurement:',
      ),
    );
    const f = await t.write(
      'lists/top.yaml',
      'extends: base.yaml\nspec:\n  backends:\n    - type: pytorch\n  placement:\n    nodeSelector: null\n',
    );
    const l = await loadExperimentFile(f);
    assert.deepEqual(
      l.experiment.spec.backends.map((b) => b.type),
      ['pytorch'],
    );
    assert.deepEqual(l.experiment.spec.placement.nodeSelector, {});
  });

  void it('lets one override change the shape of an inherited value', async () => {
    await t.write(
      'shape/base.yaml',
      VALID_DOC.replace('    cycles: 2', '    cycles: 2\n  workload:\n    dataset:\n      synthetic: { seed: 3 }'),
    );
    const f = await t.write(
      'shape/top.yaml',
      'extends: base.yaml\nspec:\n  workload:\n    dataset:\n      synthetic: null\n      prompts: ["hello"]\n',
    );
    const l = await loadExperimentFile(f);
    assert.deepEqual(l.experiment.spec.workload.dataset, { prompts: ['hello'] });
  });

  void it('reports conflicting sources introduced by a merge at the merged field path', async () => {
    await t.write('conflict/base.yaml', VALID_DOC);
    const f = await t.write(
      'conflict/top.yaml',
      'extends: base.yaml\nspec:\n  model:\n    source:\n      pvc: { claimName: models }\n',
    );
    const lines = await issueLines(() => loadExperimentFile(f));
    assert.deepEqual(lines, [
      `${f}: spec.model.source: model.source must set exactly one of huggingFace, pvc, random (got pvc, random)`,
    ]);
  });

  void it('detects a file that extends itself', async () => {
    const f = await t.write('cycle/self.yaml', 'extends: self.yaml\n' + VALID_DOC);
    const lines = await issueLines(() => loadExperimentFile(f));
    assert.match(lines[0] ?? '', /extends: extends cycle: .*self\.yaml -> .*self\.yaml/);
  });

  void it('detects an A -> B -> A cycle and names the chain', async () => {
    await t.write('cycle/b.yaml', 'extends: a.yaml\n');
    const a = await t.write('cycle/a.yaml', 'extends: b.yaml\n' + VALID_DOC);
    const lines = await issueLines(() => loadExperimentFile(a));
    assert.equal(lines.length, 1);
    assert.ok(
      lines[0]?.includes(
        `extends cycle: ${rel(t.file('cycle/a.yaml'))} -> ${rel(t.file('cycle/b.yaml'))} -> ${rel(t.file('cycle/a.yaml'))}`,
      ),
      lines[0],
    );
  });

  void it('accepts a diamond: two bases sharing one grandparent', async () => {
    await t.write('diamond/root.yaml', VALID_DOC);
    await t.write('diamond/left.yaml', 'extends: root.yaml\nspec:\n  measurement:\n    seed: 1\n');
    await t.write('diamond/right.yaml', 'extends: root.yaml\nspec:\n  measurement:\n    cycles: 3\n');
    const f = await t.write('diamond/top.yaml', 'extends: [left.yaml, right.yaml]\n');
    const m = (await loadExperimentFile(f)).experiment.spec.measurement;
    assert.deepEqual([m.seed, m.cycles], [1, 3]);
  });

  void it('refuses chains deeper than the limit', async () => {
    await t.write(`deep/f${MAX_EXTENDS_DEPTH + 1}.yaml`, VALID_DOC);
    for (let i = MAX_EXTENDS_DEPTH; i >= 0; i--) await t.write(`deep/f${i}.yaml`, `extends: f${i + 1}.yaml\n`);
    const lines = await issueLines(() => loadExperimentFile(t.file('deep/f0.yaml')));
    assert.match(lines[0] ?? '', new RegExp(`extends chain is deeper than ${MAX_EXTENDS_DEPTH} files`));
  });

  void it('refuses ../ that leaves the directory of the file named on the command line', async () => {
    await t.write('outside.yaml', VALID_DOC);
    const f = await t.write('jail/top.yaml', 'extends: ../outside.yaml\n');
    const lines = await issueLines(() => loadExperimentFile(f));
    assert.equal(lines.length, 1);
    assert.match(
      lines[0] ?? '',
      /top\.yaml: extends: "\.\.\/outside\.yaml" points outside .*; extends may only use files in that directory tree/,
    );
  });

  void it('allows ../ from a base in a subdirectory as long as it stays inside the tree', async () => {
    await t.write('inner/common.yaml', VALID_DOC);
    await t.write('inner/bases/gpu.yaml', 'extends: ../common.yaml\nspec:\n  placement:\n    gpusPerRun: 1\n');
    const f = await t.write('inner/top.yaml', 'extends: bases/gpu.yaml\n');
    assert.equal((await loadExperimentFile(f)).experiment.metadata.name, 'demo');
  });

  void it('refuses an absolute path', async () => {
    const base = await t.write('abs/base.yaml', VALID_DOC);
    const f = await t.write('abs/top.yaml', `extends: ${base}\n`);
    const lines = await issueLines(() => loadExperimentFile(f));
    assert.match(lines[0] ?? '', /top\.yaml: extends: ".*base\.yaml" is an absolute path; use a path relative to/);
  });

  void it('refuses a symbolic link that escapes the tree', async () => {
    await t.write('secret.yaml', VALID_DOC);
    await t.link('links/base.yaml', t.file('secret.yaml'));
    const f = await t.write('links/top.yaml', 'extends: base.yaml\n');
    const lines = await issueLines(() => loadExperimentFile(f));
    assert.match(lines[0] ?? '', /top\.yaml: extends: "base\.yaml" is a symbolic link to a file outside/);
  });

  void it('refuses a symlinked directory that escapes the tree', async () => {
    await t.write('elsewhere/base.yaml', VALID_DOC);
    await t.link('dirlink/shared', t.file('elsewhere'));
    const f = await t.write('dirlink/top.yaml', 'extends: shared/base.yaml\n');
    const lines = await issueLines(() => loadExperimentFile(f));
    assert.match(lines[0] ?? '', /symbolic link to a file outside/);
  });

  void it('follows a symbolic link that stays inside the tree', async () => {
    await t.write('inlink/real.yaml', VALID_DOC);
    await t.link('inlink/alias.yaml', t.file('inlink/real.yaml'));
    const f = await t.write('inlink/top.yaml', 'extends: alias.yaml\n');
    assert.equal((await loadExperimentFile(f)).experiment.metadata.name, 'demo');
  });

  void it('reports a missing base at the extends field', async () => {
    const f = await t.write('missing/top.yaml', 'extends: [nope.yaml]\n');
    const lines = await issueLines(() => loadExperimentFile(f));
    assert.match(lines[0] ?? '', /top\.yaml: extends\[0\]: "nope\.yaml" does not exist/);
  });

  void it('refuses a base with several documents and reports base syntax errors under the base file', async () => {
    await t.write('bad/multi.yaml', `${VALID_DOC}---\n${VALID_DOC}`);
    const f = await t.write('bad/top.yaml', 'extends: multi.yaml\n');
    assert.match(
      (await issueLines(() => loadExperimentFile(f)))[0] ?? '',
      /multi\.yaml: a file used by extends must hold exactly one YAML document/,
    );
    await t.write('bad/broken.yaml', 'spec: [\n');
    const g = await t.write('bad/top2.yaml', 'extends: broken.yaml\n');
    assert.match((await issueLines(() => loadExperimentFile(g)))[0] ?? '', /broken\.yaml: line \d+, column \d+/);
  });

  void it('refuses an extends value that is not a path', async () => {
    const f = await t.write('type/top.yaml', 'extends: { file: a.yaml }\n' + VALID_DOC);
    assert.match(
      (await issueLines(() => loadExperimentFile(f)))[0] ?? '',
      /top\.yaml: extends: must be a relative file path or a non-empty list of them/,
    );
  });
});
