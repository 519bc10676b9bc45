import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import { crdYaml } from '../../../cli/commands/crd.ts';
import { energyExperimentCrd, PRINTER_COLUMNS } from '../../../api/crd.ts';

const COMMITTED = new URL('../../../crds/llem.dev_energyexperiments.yaml', import.meta.url);

type Node = Record<string, unknown>;

function walk(node: unknown, path: string, visit: (n: Node, path: string) => void): void {
  if (typeof node !== 'object' || node === null) return;
  const n = node as Node;
  visit(n, path);
  const props = n['properties'] as Record<string, unknown> | undefined;
  for (const [k, v] of Object.entries(props ?? {})) walk(v, `${path}.${k}`, visit);
  if (typeof n['items'] === 'object') walk(n['items'], `${path}[]`, visit);
  if (typeof n['additionalProperties'] === 'object') walk(n['additionalProperties'], `${path}{}`, visit);
}

function versionOf(crd: Node): Node {
  const spec = crd['spec'] as { versions: Node[] };
  const v = spec.versions[0];
  assert.ok(v !== undefined);
  return v;
}

void describe('the CRD', () => {
  void it('matches the committed YAML (run `npm run crd:gen` when this fails)', async () => {
    const committed = await readFile(COMMITTED, 'utf8');
    assert.equal(committed, crdYaml(), 'crds/llem.dev_energyexperiments.yaml is stale: run `npm run crd:gen`');
  });

  void it('parses back to the generated object', async () => {
    assert.deepEqual(parse(await readFile(COMMITTED, 'utf8')), JSON.parse(JSON.stringify(energyExperimentCrd())));
  });

  void it('is structural: every node has a type or preserves unknown fields, and nothing forbids extra fields', () => {
    const schema = (versionOf(energyExperimentCrd())['schema'] as Node)['openAPIV3Schema'];
    let nodes = 0;
    walk(schema, '', (n, path) => {
      nodes += 1;
      assert.ok(
        typeof n['type'] === 'string' || n['x-kubernetes-preserve-unknown-fields'] === true,
        `no type at ${path}`,
      );
      assert.notEqual(n['additionalProperties'], false, `additionalProperties: false at ${path}`);
      for (const k of ['anyOf', 'oneOf', 'allOf', '$ref', 'const', 'propertyNames'])
        assert.equal(n[k], undefined, `${k} at ${path}`);
      if (n['type'] === 'object')
        assert.ok(!(n['properties'] !== undefined && n['additionalProperties'] !== undefined), `both at ${path}`);
    });
    assert.ok(nodes > 100);
  });

  void it('has the status subresource, the short name ee and the printer columns', () => {
    const crd = energyExperimentCrd();
    const v = versionOf(crd);
    assert.deepEqual(v['subresources'], { status: {} });
    const names = (crd['spec'] as { names: { shortNames: string[] } }).names;
    assert.deepEqual(names.shortNames, ['ee']);
    const columns = (v['additionalPrinterColumns'] as { name: string }[]).map((c) => c.name);
    for (const c of ['Status', 'Progress', 'Best J/token', 'Age']) assert.ok(columns.includes(c), c);
    assert.equal(PRINTER_COLUMNS.length, columns.length);
  });

  void it('carries CEL rules for the cross-field checks', () => {
    const text = crdYaml();
    for (const fragment of [
      'tensorParallelSize * b.vllm.pipelineParallelSize <=',
      "self.workload.mode != 'rate'",
      'has(self.huggingFace), has(self.pvc), has(self.random)',
      'self.exists_one(c,',
      "!has(self.vllm) || self.type == 'vllm'",
    ]) {
      assert.ok(text.includes(fragment), fragment);
    }
  });

  void it('documents defaults', () => {
    const text = crdYaml();
    assert.match(text, /cycles:\n(\s+description: .*\n)?\s+default: 3/);
    assert.match(text, /failurePolicy:\n\s+default: strict/);
  });
});
