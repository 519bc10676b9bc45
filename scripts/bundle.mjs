// Bundles the CLI (and its worker threads, further entry points) into dist/ with esbuild, plus the
// benchmarks that run on the GPU machine (sampler-overhead, bench-agent). Plain JavaScript, runs on
// Node >= 20 (ADR 0015). Use: node scripts/bundle.mjs [OUTDIR] [--clean]; bin/llem.mjs imports bundle() to
// rebuild a stale dist/ in a checkout.
//
// Code splitting keeps start-up fast: `llem validate` loads its own few chunks, not the Kubernetes
// client or the NATS client (one 9 MB file took ~0.8 s to parse). Chunk names carry a content hash,
// so a build is written to a scratch folder and its files renamed into place one by one: two
// processes rebuilding at once cannot leave an entry file that points at a missing chunk.
// koffi stays external: it loads a native binary.
import { mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const BUILD_INFO = 'build-info.json';

/**
 * Builds every entry point into `outdir`; returns the build's duration in ms. `clean` (npm pack)
 * removes every chunk this build did not write; otherwise older chunks stay a day for running processes.
 */
export async function bundle(outdir = join(REPO, 'dist'), { clean = false } = {}) {
  const { build } = await import('esbuild');
  const startedMs = Date.now();
  const scratch = `${outdir}.build-${process.pid}`;
  rmSync(scratch, { recursive: true, force: true });
  const result = await build({
    absWorkingDir: REPO,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    splitting: true,
    chunkNames: 'chunk-[hash]',
    external: ['koffi', 'playwright-core'],
    // CommonJS dependencies bundled into ESM need a require().
    banner: {
      js:
        "import { createRequire as __llemCreateRequire } from 'node:module'; " +
        'const require = __llemCreateRequire(import.meta.url);',
    },
    logLevel: 'warning',
    metafile: true,
    outdir: scratch,
    outExtension: { '.js': '.mjs' },
    entryPoints: {
      llem: 'cli/main.ts',
      'agent-sampler-worker': 'agent/telemetry/worker.ts',
      'agent-client-worker': 'agent/load/client-worker.ts',
      'sampler-overhead': 'bench/sampler-overhead.ts',
      'bench-agent': 'bench/agent.ts',
    },
  });
  // What bin/llem.mjs compares against: a source newer than the build makes the bundle stale.
  const inputs = Object.keys(result.metafile.inputs)
    .filter((f) => !f.includes('node_modules/'))
    .sort();
  writeFileSync(join(scratch, BUILD_INFO), JSON.stringify({ builtAtMs: startedMs, inputs }, null, 1) + '\n');
  mkdirSync(outdir, { recursive: true });
  const names = readdirSync(scratch).sort((a, b) => rank(a) - rank(b));
  for (const name of names) renameSync(join(scratch, name), join(outdir, name));
  rmSync(scratch, { recursive: true, force: true });
  pruneOldChunks(outdir, clean ? Infinity : startedMs, new Set(names));
  return Date.now() - startedMs;
}

/** Chunks first, entry files next, build-info last: each is in place before anything names it. */
function rank(name) {
  if (name === BUILD_INFO) return 2;
  return name.startsWith('chunk-') ? 0 : 1;
}

/** Chunks of earlier builds, once no process started from them recently can still import them. */
function pruneOldChunks(outdir, nowMs, current) {
  for (const name of readdirSync(outdir)) {
    if (!name.startsWith('chunk-') || current.has(name)) continue;
    const file = join(outdir, name);
    if (nowMs - statSync(file).mtimeMs > 24 * 3600_000) rmSync(file, { force: true });
  }
}

if (process.argv[1] !== undefined && pathToFileURL(resolve(process.argv[1])).href === import.meta.url) {
  const args = process.argv.slice(2);
  const outdir = resolve(args.find((a) => !a.startsWith('--')) ?? join(REPO, 'dist'));
  const ms = await bundle(outdir, { clean: args.includes('--clean') });
  console.log(`bundled into ${relative(process.cwd(), outdir) || '.'}/ in ${ms} ms`);
}
