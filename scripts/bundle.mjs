// Bundles the CLI (and its worker threads, further entry points) into dist/ with esbuild, plus the
// benchmarks that run on the GPU machine (sampler-overhead, bench-agent).
// koffi stays external: it loads a native binary. Use: node scripts/bundle.mjs [OUTDIR]
import { build } from 'esbuild';

const outdir = process.argv[2] ?? 'dist';
const common = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node22',
  external: ['koffi', 'playwright-core'],
  // CommonJS dependencies bundled into ESM need a require().
  banner: { js: "import { createRequire as __llemCreateRequire } from 'node:module'; const require = __llemCreateRequire(import.meta.url);" },
  logLevel: 'warning',
};
await build({ ...common, entryPoints: { llem: 'cli/main.ts' }, outdir, outExtension: { '.js': '.mjs' }, splitting: false });
await build({ ...common, entryPoints: { 'agent-sampler-worker': 'agent/telemetry/worker.ts', 'agent-client-worker': 'agent/load/client-worker.ts' }, outdir, outExtension: { '.js': '.mjs' } });
await build({ ...common, entryPoints: { 'sampler-overhead': 'bench/sampler-overhead.ts', 'bench-agent': 'bench/agent.ts' }, outdir, outExtension: { '.js': '.mjs' } });
console.log(`bundled into ${outdir}/`);
