// Writes the small synthetic workload files shipped in examples/workloads/ (seeded: the same files every
// time; no downloads):
//   bursty-trace.jsonl    120 requests, lognormal lengths, bursty arrivals (a Poisson rate switching between
//                         2/s and 8/s every 5 s), in llem's trace format (agent/load/trace.ts);
//   conversations.jsonl   24 conversations of 2-5 turns, think times 0.2-2 s (agent/load/conversation.ts).
//   node --import tsx scripts/make-workloads.ts [examples/workloads]
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { seededRandom } from '../api/random.ts';
import { drawLength, syntheticPrompt } from '../agent/load/prompts.ts';

const dir = process.argv[2] ?? 'examples/workloads';
const rng = seededRandom(22);
const lines: string[] = [];
let t = 0;
for (let i = 0; i < 120; i++) {
  const rate = Math.floor(t / 5000) % 2 === 0 ? 2 : 8;
  t += (-Math.log(1 - rng()) / rate) * 1000;
  const inputTokens = drawLength({ distribution: 'lognormal', mean: 200, stddev: 150, max: 1024 }, rng);
  const outputTokens = drawLength({ distribution: 'lognormal', mean: 60, stddev: 40, max: 256 }, rng);
  lines.push(JSON.stringify({ timestampMs: Math.round(t), inputTokens, outputTokens }));
}
const conversations: string[] = [];
for (let c = 0; c < 24; c++) {
  const turns = Array.from({ length: 2 + Math.floor(rng() * 4) }, () => ({
    user: syntheticPrompt(drawLength({ distribution: 'lognormal', mean: 40, stddev: 25, max: 200 }, rng), rng),
    outputTokens: drawLength({ distribution: 'lognormal', mean: 48, stddev: 30, max: 200 }, rng),
    thinkTimeMs: Math.round(200 + rng() * 1800),
  }));
  conversations.push(JSON.stringify({ turns }));
}
mkdirSync(dir, { recursive: true });
writeFileSync(join(dir, 'bursty-trace.jsonl'), lines.join('\n') + '\n');
writeFileSync(join(dir, 'conversations.jsonl'), conversations.join('\n') + '\n');
