// What `llem run` prints (issue #19): human lines only by default; structured logs only on stderr,
// only at warn and above unless --log-level or LLEM_LOG_LEVEL asks; --json: one JSON document on
// stdout; no log line carries a key twice.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { REPO, type Finished } from './llem-process.ts';

const SMALL = join(REPO, 'tests/fixtures/local/small.yaml');

/** Runs llem with LLEM_LOG_LEVEL unset (the user's default). */
function llem(args: string[]): Promise<Finished> {
  const env: NodeJS.ProcessEnv = { ...process.env, LLEM_CLI_ENTRY: '1' };
  delete env['LLEM_LOG_LEVEL'];
  const child = spawn(process.execPath, ['--import', 'tsx', join(REPO, 'cli/main.ts'), ...args], {
    cwd: REPO,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
}

/** Keys that occur twice in one object anywhere in a JSON text (JSON.parse keeps only the last). */
export function duplicateKeys(text: string): string[] {
  const dups: string[] = [];
  let i = 0;
  const ws = (): void => {
    while (/\s/.test(text[i] ?? '')) i += 1;
  };
  const str = (): string => {
    const start = i;
    i += 1;
    while (text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    i += 1;
    return JSON.parse(text.slice(start, i)) as string;
  };
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === '{') {
      i += 1;
      const seen = new Set<string>();
      ws();
      while (text[i] !== '}') {
        ws();
        const k = str();
        if (seen.has(k)) dups.push(k);
        seen.add(k);
        ws();
        i += 1; // ':'
        value();
        ws();
        if (text[i] === ',') i += 1;
        ws();
      }
      i += 1;
    } else if (c === '[') {
      i += 1;
      ws();
      while (text[i] !== ']') {
        value();
        ws();
        if (text[i] === ',') i += 1;
        ws();
      }
      i += 1;
    } else if (c === '"') {
      str();
    } else {
      while (i < text.length && !/[,}\]\s]/.test(text[i] ?? '')) i += 1;
    }
  };
  value();
  return dups;
}

const jsonLines = (s: string): string[] => s.split('\n').filter((l) => l.trimStart().startsWith('{'));

describe('llem output', { timeout: 300_000 }, () => {
  it('finds a key written twice in a log line (the checker itself)', () => {
    assert.deepEqual(duplicateKeys('{"a":1,"run":"x","b":{"run":2},"run":"x"}'), ['run']);
    assert.deepEqual(duplicateKeys('{"a":"}{\\"","b":[{"c":1},{"c":2}]}'), []);
  });

  it('prints only human lines by default: no structured log line on stdout or stderr', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'llem-out-')), 'r');
    const r = await llem(['run', SMALL, '--simulate', '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(jsonLines(r.stdout), []);
    assert.deepEqual(jsonLines(r.stderr), [], r.stderr);
    assert.match(r.stderr, /4\/4 runs complete/);
  });

  it('with --json and --log-level debug: stdout is one JSON document, stderr has log lines without duplicate keys', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'llem-out-')), 'r');
    const r = await llem(['run', SMALL, '--simulate', '--out', out, '--json', '--log-level', 'debug']);
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout) as { runsComplete: number; simulated: boolean; exitCode: number };
    assert.equal(doc.runsComplete, 4);
    assert.equal(doc.simulated, true);
    const logs = jsonLines(r.stderr);
    assert.ok(
      logs.some((l) => (JSON.parse(l) as { run?: string }).run !== undefined),
      'debug logs carry the run',
    );
    for (const l of logs) assert.deepEqual(duplicateKeys(l), [], l);
  });

  it('with --json, a bad manifest still gives one JSON document on stdout (exit 2)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'llem-out-'));
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'apiVersion: llem.dev/v1alpha1\nkind: EnergyExperiment\nmetadata: { name: x }\nspec: { }\n');
    const r = await llem(['run', bad, '--simulate', '--out', join(dir, 'r'), '--json']);
    assert.equal(r.code, 2);
    const doc = JSON.parse(r.stdout) as { exitCode: number; error: { code: string; message: string } };
    assert.equal(doc.exitCode, 2);
    assert.match(doc.error.message, /bad\.yaml/);
  });

  it('with --json, a refused --out still gives one JSON document on stdout (exit 2)', async () => {
    const r = await llem(['run', SMALL, '--simulate', '--out', '/proc/llem-results', '--json']);
    assert.equal(r.code, 2);
    const doc = JSON.parse(r.stdout) as { exitCode: number; error: { code: string; message: string } };
    assert.equal(doc.exitCode, 2);
    assert.match(doc.error.message, /--out: \/proc\/llem-results is under \/proc/);
  });

  it('refuses an unknown --log-level with one line and exit 2', async () => {
    const r = await llem(['--log-level', 'loud', 'validate', SMALL]);
    assert.equal(r.code, 2);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /--log-level: "loud"/);
  });
});
