// The bus bench's baseline consumer: the decoder and Aggregator of an earlier commit, taken from git into a
// temporary folder, so one run measures both on the same publishers and server.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Aggregator } from '../../aggregator/aggregator.ts';
import type { ConsumerImpl } from './measure.ts';

/** The baseline commit's consumer, from `git archive` into a temporary folder (null: no git here). */
export async function baselineImpl(commit: string): Promise<{ impl: ConsumerImpl; cleanup: () => void } | null> {
  const repo = resolve(import.meta.dirname, '../..');
  const dir = mkdtempSync(join(tmpdir(), 'llem-bench-baseline-'));
  try {
    const tar = execFileSync('git', ['-C', repo, 'archive', commit, 'api', 'lib', 'aggregator', 'package.json']);
    mkdirSync(dir, { recursive: true });
    execFileSync('tar', ['-x', '-C', dir], { input: tar });
    symlinkSync(join(repo, 'node_modules'), join(dir, 'node_modules'));
    const protocol = (await import(join(dir, 'api/protocol.ts'))) as { decodeMessages: ConsumerImpl['decodeMessages'] };
    const agg = (await import(join(dir, 'aggregator/aggregator.ts'))) as { Aggregator: typeof Aggregator };
    const impl: ConsumerImpl = {
      name: `baseline ${commit}`,
      decodeMessages: protocol.decodeMessages,
      aggregator: (plan) => new agg.Aggregator(plan),
    };
    return { impl, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    console.log(`baseline ${commit} not measured: ${(err as Error).message.split('\n')[0]}`);
    return null;
  }
}
