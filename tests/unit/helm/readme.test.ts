// The chart README's values table and values.schema.json keep up with values.yaml.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';

const CHART = resolve(import.meta.dirname, '..', '..', '..', 'helm', 'llem');
const values = parse(readFileSync(join(CHART, 'values.yaml'), 'utf8')) as Record<string, unknown>;

function leafPaths(v: unknown, prefix = ''): string[] {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || Object.keys(v).length === 0) return [prefix];
  return Object.entries(v as Record<string, unknown>).flatMap(([k, x]) =>
    leafPaths(x, prefix === '' ? k : `${prefix}.${k}`),
  );
}

interface SchemaNode {
  properties?: Record<string, SchemaNode>;
  additionalProperties?: unknown;
}

void test('every key in values.yaml has a row (or a parent row) in the README values table', () => {
  const readme = readFileSync(join(CHART, 'README.md'), 'utf8');
  const rows = new Set([...readme.matchAll(/^\| `([A-Za-z0-9_.]+)` \|/gm)].map((m) => m[1]));
  const missing = leafPaths(values).filter((p) => {
    const parts = p.split('.');
    return !parts.some((_, i) => rows.has(parts.slice(0, i + 1).join('.')));
  });
  assert.deepEqual(missing, []);
});

void test('every key in values.yaml is declared in values.schema.json', () => {
  const schema = JSON.parse(readFileSync(join(CHART, 'values.schema.json'), 'utf8')) as SchemaNode;
  const undeclared = leafPaths(values).filter((p) => {
    let node: SchemaNode | undefined = schema;
    for (const part of p.split('.')) {
      if (node?.properties === undefined) return node?.additionalProperties === false;
      node = node.properties[part];
      if (node === undefined) return true;
    }
    return false;
  });
  assert.deepEqual(undeclared, []);
});
