#!/usr/bin/env node
// Entry point: the bundled CLI when built (dist/llem.mjs), else the TypeScript sources through tsx.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

const bundled = fileURLToPath(new URL('../dist/llem.mjs', import.meta.url));
if (existsSync(bundled) && process.env.LLEM_FROM_SOURCE !== '1') {
  await import(pathToFileURL(bundled).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../cli/main.ts');
}
