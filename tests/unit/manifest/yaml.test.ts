import { describe, it, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { loadExperimentFile, loadManifestFile, MAX_NESTING_DEPTH } from '../../../lib/manifest/index.ts';
import { issueLines, tree, VALID_DOC, type Tree } from './helpers.ts';

void describe('hardened YAML loading', () => {
  let t: Tree;
  before(async () => {
    t = await tree();
  });
  after(async () => t.cleanup());

  void it('loads a valid file with defaults filled in', async () => {
    const f = await t.write('ok.yaml', VALID_DOC);
    const [l] = await loadManifestFile(f);
    assert.equal(l?.experiment.spec.measurement.order, 'interleave');
    assert.equal(l?.experiment.spec.policy.failurePolicy, 'strict');
    assert.equal(l?.matrix.runs.length, 2);
  });

  void it('refuses a file above the size limit before parsing it', async () => {
    const f = await t.write('big.yaml', VALID_DOC + `# ${'x'.repeat(2000)}\n`);
    const lines = await issueLines(() => loadManifestFile(f, { limits: { maxBytes: 1000 } }));
    assert.match(lines[0] ?? '', /big\.yaml: file is \d+ bytes; the limit is 1000/);
  });

  void it('refuses a billion-laughs alias bomb', async () => {
    const levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
    for (let i = 1; i < 9; i++) {
      const prev = String.fromCharCode(96 + i);
      const cur = String.fromCharCode(97 + i);
      levels.push(`${cur}: &${cur} [${Array(9).fill(`*${prev}`).join(',')}]`);
    }
    const f = await t.write('laughs.yaml', levels.join('\n') + '\n');
    const lines = await issueLines(() => loadManifestFile(f));
    assert.match(lines[0] ?? '', /laughs\.yaml: YAML aliases expand too much/);
  });

  void it('refuses nesting deeper than the limit', async () => {
    let text = 'a:\n';
    for (let i = 1; i <= MAX_NESTING_DEPTH + 2; i++) text += `${'  '.repeat(i)}b:\n`;
    const f = await t.write('deep.yaml', text);
    const lines = await issueLines(() => loadManifestFile(f));
    assert.equal(lines.length, 1);
    assert.match(
      lines[0] ?? '',
      new RegExp(`deep\\.yaml: a(\\.b){${MAX_NESTING_DEPTH}}: nested deeper than ${MAX_NESTING_DEPTH} levels`),
    );
  });

  void it('reports a duplicate key at its field path', async () => {
    const f = await t.write(
      'dup.yaml',
      VALID_DOC.replace('  measurement:\n    cycles: 2\n', '  measurement:\n    cycles: 2\n    cycles: 3\n'),
    );
    const lines = await issueLines(() => loadManifestFile(f));
    assert.deepEqual(lines, [`${f}: spec.measurement.cycles: duplicate key "cycles"; each key may appear once`]);
  });

  void it('reports an unknown field with a did-you-mean hint', async () => {
    const f = await t.write('typo.yaml', VALID_DOC.replace('    cycles: 2', '    cycels: 2'));
    const lines = await issueLines(() => loadManifestFile(f));
    assert.deepEqual(lines, [`${f}: spec.measurement.cycels: unknown field "cycels"; did you mean "cycles"?`]);
  });

  void it('refuses __proto__ keys', async () => {
    const f = await t.write(
      'proto.yaml',
      VALID_DOC.replace('  name: demo', '  name: demo\n  __proto__: { polluted: true }'),
    );
    const lines = await issueLines(() => loadManifestFile(f));
    assert.ok(
      lines.some((l) => l.startsWith(`${f}: metadata.__proto__: key "__proto__" is not allowed`)),
      lines.join('\n'),
    );
    assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
  });

  void it('reports a syntax error with its line and column', async () => {
    const f = await t.write('syntax.yaml', 'apiVersion: llem.dev/v1alpha1\nkind: [unclosed\n');
    const lines = await issueLines(() => loadManifestFile(f));
    assert.match(lines[0] ?? '', /syntax\.yaml: line \d+, column \d+: /);
  });

  void it('refuses custom tags', async () => {
    const f = await t.write('tag.yaml', VALID_DOC.replace('name: demo', 'name: !shell demo'));
    const lines = await issueLines(() => loadManifestFile(f));
    assert.match(lines.join('\n'), /custom tags are not allowed/);
  });

  void it('loads every document of a multi-document file and labels issues by document', async () => {
    const second = VALID_DOC.replace('name: demo', 'name: demo-two');
    const ok = await t.write('multi.yaml', `${VALID_DOC}---\n${second}---\n`);
    const loaded = await loadManifestFile(ok);
    assert.deepEqual(
      loaded.map((l) => l.experiment.metadata.name),
      ['demo', 'demo-two'],
    );
    assert.deepEqual(
      loaded.map((l) => l.file),
      [`${ok}#1`, `${ok}#2`],
    );
    const bad = await t.write('multi-bad.yaml', `${VALID_DOC}---\n${second.replace('cycles: 2', 'cycles: 0')}`);
    const lines = await issueLines(() => loadManifestFile(bad));
    assert.equal(lines.length, 1);
    assert.match(lines[0] ?? '', new RegExp(`^${bad.replace(/[.]/g, '\\.')}#2: spec\\.measurement\\.cycles: `));
  });

  void it('refuses two documents with the same name', async () => {
    const f = await t.write('same.yaml', `${VALID_DOC}---\n${VALID_DOC}`);
    const lines = await issueLines(() => loadManifestFile(f));
    assert.deepEqual(lines, [`${f}#2: metadata.name: "demo" is also the name of ${f}#1`]);
  });

  void it('refuses a file without documents, and plan-style loading of several', async () => {
    const empty = await t.write('empty.yaml', '# nothing\n');
    assert.match((await issueLines(() => loadManifestFile(empty)))[0] ?? '', /holds no YAML document/);
    const two = await t.write('two.yaml', `${VALID_DOC}---\n${VALID_DOC.replace('name: demo', 'name: other')}`);
    assert.match(
      (await issueLines(() => loadExperimentFile(two)))[0] ?? '',
      /expected exactly one EnergyExperiment, found 2/,
    );
  });

  void it('reports a missing file as invalid input', async () => {
    const lines = await issueLines(() => loadManifestFile(t.file('absent.yaml')));
    assert.match(lines[0] ?? '', /absent\.yaml: cannot read: ENOENT/);
  });

  void it('reports a document that is not a mapping', async () => {
    const f = await t.write('list.yaml', '- a\n- b\n');
    assert.match((await issueLines(() => loadManifestFile(f)))[0] ?? '', /expected a mapping/);
  });
});
