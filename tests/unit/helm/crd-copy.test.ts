// Helm installs CRDs from the chart's crds/ folder; it must ship exactly the generated CRDs.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';

const REPO = resolve(import.meta.dirname, '..', '..', '..');
const GENERATED = join(REPO, 'crds');
const CHART_CRDS = join(REPO, 'helm', 'llem', 'crds');

const yamlFiles = (dir: string): string[] =>
  readdirSync(dir)
    .filter((f) => f.endsWith('.yaml') || f.endsWith('.yml'))
    .sort();

void test('the chart ships the same CRD files as crds/', () => {
  assert.deepEqual(yamlFiles(CHART_CRDS), yamlFiles(GENERATED));
  assert.ok(
    yamlFiles(GENERATED).includes('llem.dev_energyexperiments.yaml'),
    'crds/llem.dev_energyexperiments.yaml exists',
  );
});

void test('each chart CRD is byte-identical to the generated one (copy crds/*.yaml into helm/llem/crds/ after npm run crd:gen)', () => {
  for (const file of new Set([...yamlFiles(GENERATED), 'llem.dev_energyexperiments.yaml'])) {
    const generated = readFileSync(join(GENERATED, file));
    const shipped = readFileSync(join(CHART_CRDS, file));
    assert.ok(
      generated.equals(shipped),
      `helm/llem/crds/${file} differs from crds/${file}: run cp crds/${file} helm/llem/crds/`,
    );
  }
});
