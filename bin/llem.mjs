#!/usr/bin/env node
// Entry point (ADR 0015): runs the compiled bundle dist/llem.mjs on Node.js >= 20. In a checkout, a
// bundle older than any of its sources is rebuilt first (esbuild, a second or two), so no start pays
// for transpiling TypeScript. LLEM_FROM_SOURCE=1 runs cli/main.ts through tsx instead (Node >= 22).
// Written for old Node too: an unsupported version gets one line and exit 2, never a stack trace.
const MIN_NODE_MAJOR = 20;
const major = Number(process.versions.node.split('.')[0]);
if (!(major >= MIN_NODE_MAJOR)) {
  process.stderr.write(
    `llem: needs Node.js >= ${MIN_NODE_MAJOR}, this is ${process.version}; ` +
      'install a current Node.js ' +
      '(https://nodejs.org) or, in a llem checkout, run `source scripts/node-env.sh` first\n',
  );
  process.exit(2);
}

// V8's on-disk code cache (Node >= 22.1): later starts skip parsing and compiling the bundle again.
const nodeModule = await import('node:module');
if (typeof nodeModule.enableCompileCache === 'function' && process.env.LLEM_NO_COMPILE_CACHE !== '1') {
  try {
    nodeModule.enableCompileCache();
  } catch {
    // no cache: slower starts, nothing else
  }
}
const { existsSync, readFileSync, statSync } = await import('node:fs');
const { fileURLToPath, pathToFileURL } = await import('node:url');

const root = fileURLToPath(new URL('..', import.meta.url));
const bundled = `${root}dist/llem.mjs`;
const inCheckout = existsSync(`${root}cli/main.ts`);

/** True when the bundle exists and, in a checkout, no source it was built from changed since. */
function bundleIsFresh() {
  if (!existsSync(bundled)) return false;
  if (!inCheckout) return true;
  let info;
  try {
    info = JSON.parse(readFileSync(`${root}dist/build-info.json`, 'utf8'));
  } catch {
    return false;
  }
  for (const file of info.inputs) {
    try {
      if (statSync(`${root}${file}`).mtimeMs > info.builtAtMs) return false;
    } catch {
      return false; // a source was removed or renamed
    }
  }
  return true;
}

function fail(message) {
  process.stderr.write(`llem: ${message}\n`);
  process.exit(2);
}

async function fromSource() {
  if (major < 22) {
    fail(`running from the TypeScript sources needs Node.js >= 22, this is ${process.version}; unset LLEM_FROM_SOURCE`);
  }
  const { register } = await import('tsx/esm/api');
  register();
  await import('../cli/main.ts');
}

if (process.env.LLEM_FROM_SOURCE === '1') {
  await fromSource();
} else {
  if (!bundleIsFresh()) {
    if (!inCheckout) fail(`${bundled} is missing; reinstall the llenergymeasure package`);
    let bundle;
    try {
      ({ bundle } = await import('../scripts/bundle.mjs'));
    } catch (err) {
      fail(`dist/ is missing or older than the sources and cannot be rebuilt (${err.code ?? err.message}); run npm ci`);
    }
    try {
      await bundle();
    } catch (err) {
      const first = String(err.message).split('\n')[0];
      fail(`building dist/ from the sources failed: ${first}; fix the error or run npm run build`);
    }
  }
  await import(pathToFileURL(bundled).href);
}
