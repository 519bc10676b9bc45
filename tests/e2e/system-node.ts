// The machine's own `node` (what a new user's shell runs), as opposed to the Node 24 that
// scripts/node-env.sh puts first on PATH for the test run. LLEM_SYSTEM_NODE overrides.
import { execFileSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';

export interface SystemNode {
  /** The node binary. */
  node: string;
  /** PATH without node-env.sh's cached Node, with this node's folder first. */
  path: string;
  version: string;
}

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** PATH without the folders scripts/node-env.sh adds (any ".../llem/node24/bin"). */
export function pathWithoutCachedNode(path = process.env['PATH'] ?? ''): string[] {
  const cache = join(process.env['LLEM_CACHE'] ?? join(homedir(), '.cache', 'llem'), 'node24', 'bin');
  return path.split(delimiter).filter((d) => d !== '' && d !== cache && !/\/llem\/node\d+\/bin\/?$/.test(d));
}

export function findSystemNode(): SystemNode | null {
  const dirs = pathWithoutCachedNode();
  const override = process.env['LLEM_SYSTEM_NODE'];
  const candidates =
    override !== undefined && override !== ''
      ? [override]
      : [...dirs.map((d) => join(d, 'node')), '/usr/bin/node', '/usr/local/bin/node'];
  const node = candidates.find(executable);
  if (node === undefined) return null;
  const version = execFileSync(node, ['--version'], { encoding: 'utf8' }).trim();
  return { node, version, path: [dirname(node), ...dirs].join(delimiter) };
}
