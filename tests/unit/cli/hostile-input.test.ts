// Hostile or broken input to the CLI (issue #17 item 7): every case ends promptly with exit 2 and a
// `file: field.path: message` line, never a stack overflow, a spin or a half-written directory.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { llem, REPO } from './run-cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'llem-hostile-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const HEAD = 'apiVersion: llem.dev/v1alpha1\nkind: EnergyExperiment\nmetadata: {name: x}\n';
const VALID_SPEC = 'spec:\n  model: {name: m, source: {random: {}}}\n  backends: [{type: pytorch}]\n';

function file(name: string, content: string | Buffer): string {
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
}

void describe('manifest nesting depth', () => {
  const cases: [string, string][] = [
    ['flow sequences', `${HEAD}spec: ${'['.repeat(5000)}${']'.repeat(5000)}\n`],
    ['flow mappings', `${HEAD}spec: ${'{a: '.repeat(5000)}1${'}'.repeat(5000)}\n`],
    ['block sequences on one line', `${HEAD}spec:\n  a:\n    ${'- '.repeat(5000)}x\n`],
    [
      'indented block mappings',
      `${HEAD}spec:\n${Array.from({ length: 1300 }, (_, i) => `${' '.repeat(i + 1)}a:\n`).join('')}${' '.repeat(1301)}b: 1\n`,
    ],
  ];
  for (const [what, text] of cases) {
    void it(`refuses deeply nested ${what} with a nesting limit message, not a stack overflow`, () => {
      const p = file(`deep-${what.replaceAll(' ', '-')}.yaml`, text);
      const r = llem(['validate', p]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(
        r.stderr,
        new RegExp(
          `^${p.replaceAll('/', '\\/')}: (line \\d+(, column \\d+)?: |[a-z.]+: )?nested deeper than 64 levels`,
          'm',
        ),
      );
      assert.doesNotMatch(r.stderr, /call stack/i);
    });
  }

  void it('still accepts every example manifest', () => {
    const r = llem([
      'validate',
      join(REPO, 'examples', 'quickstart.yaml'),
      join(REPO, 'examples', 'three-backends.yaml'),
    ]);
    assert.equal(r.code, 0, r.stderr);
  });
});

void describe('string fields with NUL or invalid UTF-8', () => {
  const cases: [string, string | Buffer, string, RegExp][] = [
    [
      'an escaped NUL',
      `${HEAD}spec:\n  model: {name: "a\\0b", source: {random: {}}}\n  backends: [{type: pytorch}]\n`,
      'spec.model.name',
      /NUL/,
    ],
    [
      'a raw NUL byte',
      Buffer.from(`${HEAD}spec:\n  model: {name: "a\u0000b", source: {random: {}}}\n  backends: [{type: pytorch}]\n`),
      'spec.model.name',
      /NUL/,
    ],
    [
      'bytes that are not UTF-8',
      Buffer.concat([
        Buffer.from(`${HEAD}spec:\n  model: {name: "a`),
        Buffer.from([0xff, 0xfe]),
        Buffer.from(`b", source: {random: {}}}\n  backends: [{type: pytorch}]\n`),
      ]),
      'spec.model.name',
      /not valid UTF-8/,
    ],
    [
      'a lone surrogate escape',
      `${HEAD}spec:\n  model: {name: "a\\ud800b", source: {random: {}}}\n  backends: [{type: pytorch}]\n`,
      'spec.model.name',
      /not valid UTF-8/,
    ],
    [
      'a NUL in a list item',
      `${HEAD}${VALID_SPEC.replace('backends: [{type: pytorch}]', 'backends: [{type: pytorch, extraArgs: ["--x", "y\\0"]}]')}`,
      'spec.backends[0].extraArgs[1]',
      /NUL/,
    ],
    [
      'a NUL in a key',
      `${HEAD.replace('{name: x}', '{name: x, labels: {"a\\0": b}}')}${VALID_SPEC}`,
      'metadata.labels[a?]',
      /key contains a NUL/,
    ],
  ];
  for (const [what, content, field, message] of cases) {
    void it(`refuses ${what}, naming the field`, () => {
      const p = file(`text-${what.replaceAll(' ', '-')}.yaml`, content);
      const r = llem(['validate', p]);
      assert.equal(r.code, 2, r.stderr);
      const line = r.stderr.split('\n').find((l) => l.startsWith(`${p}: ${field}: `));
      assert.ok(line !== undefined, `expected "${p}: ${field}: ..." in:\n${r.stderr}`);
      assert.match(line, message);
    });
  }
});

void describe('llem run --out on a kernel pseudo-filesystem', () => {
  const link = join(dir, 'proc-link');
  symlinkSync('/proc', link);
  for (const out of ['/proc/llem-x', '/sys/llem-x', '/dev/llem-x', '/dev/shm/llem-x', join(link, 'llem-x')]) {
    void it(`refuses ${out.replace(dir, '<tmp>')} up front with exit 2 and writes nothing`, () => {
      const t0 = Date.now();
      const r = llem(['run', join(REPO, 'examples', 'quickstart.yaml'), '--simulate', '--out', out]);
      assert.equal(r.code, 2, `${r.stderr} (signal or timeout when code is null)`);
      assert.match(r.stderr, /^llem run: --out: .* (is under \/(proc|sys|dev)|filesystem)/m);
      assert.ok(Date.now() - t0 < 30_000);
      assert.equal(existsSync(out), false);
    });
  }
});

void describe('llem results on a file that never ends', () => {
  void it('refuses an experiment.json that is a FIFO or a device instead of blocking in a read no signal interrupts', () => {
    const fifoDir = join(dir, 'fifo-results');
    const devDir = join(dir, 'dev-results');
    execFileSync('mkdir', ['-p', fifoDir, devDir]);
    execFileSync('mkfifo', [join(fifoDir, 'experiment.json')]);
    symlinkSync('/dev/zero', join(devDir, 'experiment.json'));
    for (const d of [fifoDir, devDir]) {
      const r = llem(['results', 'show', d]);
      assert.equal(r.code, 2, `${d}: ${r.stderr} (null: it blocked until the timeout)`);
      assert.match(r.stderr, /experiment\.json: is not a regular file/);
    }
  });
});
