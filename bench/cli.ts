// CLI start-up and the quickstart, as a user runs them (issue #19). Measures, in one run and on one
// node binary: `node -e 0` (the floor: Node's own start), `llem validate examples/quickstart.yaml`
// through bin/llem.mjs (the compiled bundle, ADR 0015) and the same through the TypeScript sources
// (LLEM_FROM_SOURCE=1: tsx, what every start cost before), 20 starts each, interleaved so that load
// from the machine's neighbours hits all three alike; then one `llem run examples/quickstart.yaml
// --simulate` wall time. The machine is shared: compare the figures of one run with each other.
// Run: node --import tsx bench/cli.ts [--starts N] [--no-quickstart]
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(REPO, 'bin', 'llem.mjs');
const MANIFEST = join(REPO, 'examples', 'quickstart.yaml');
const argAfter = (flag: string): string | undefined => process.argv[process.argv.indexOf(flag) + 1];
const STARTS = process.argv.includes('--starts') ? Number(argAfter('--starts')) : 20;

function wallMs(args: string[], env: NodeJS.ProcessEnv = {}): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, args, {
    cwd: REPO,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${args.join(' ')} exited ${String(r.status)}: ${r.stderr.toString()}`);
  return ms;
}

function p50(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

// The first start in a checkout may rebuild dist/ (a source changed): not a start-up figure.
execFileSync(process.execPath, [BIN, 'validate', '--quiet', MANIFEST], { cwd: REPO, stdio: 'ignore' });
const node: number[] = [];
const bundle: number[] = [];
const source: number[] = [];
for (let i = 0; i < STARTS; i += 1) {
  node.push(wallMs(['-e', '0']));
  bundle.push(wallMs([BIN, 'validate', '--quiet', MANIFEST]));
  source.push(wallMs([BIN, 'validate', '--quiet', MANIFEST], { LLEM_FROM_SOURCE: '1' }));
}
const r = (v: number): string => v.toFixed(0);
const load = loadavg()[0]?.toFixed(1) ?? '?';
console.log(`node ${process.version}, load average ${load}, ${STARTS} starts each (p50 wall ms):`);
console.log(`  node -e 0                         ${r(p50(node))}`);
const above = r(p50(bundle) - p50(node));
console.log(`  llem validate (bundle)            ${r(p50(bundle))}  (${above} above node's own start)`);
console.log(`  llem validate (sources via tsx)   ${r(p50(source))}`);

let quickstartS = 'skipped';
if (!process.argv.includes('--no-quickstart')) {
  const out = join(mkdtempSync(join(tmpdir(), 'llem-bench-cli-')), 'quickstart');
  try {
    quickstartS = (wallMs([BIN, 'run', MANIFEST, '--simulate', '--out', out]) / 1000).toFixed(1);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
  console.log(`  llem run examples/quickstart.yaml --simulate: ${quickstartS} s`);
}
console.log(
  `RESULT validate_ms=${r(p50(bundle))} quickstart_s=${quickstartS} node_start_ms=${r(p50(node))} ` +
    `validate_from_source_ms=${r(p50(source))} speedup=${(p50(source) / p50(bundle)).toFixed(1)}x`,
);
