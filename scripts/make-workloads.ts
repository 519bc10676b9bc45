// Writes the small synthetic request trace shipped in examples/workloads/ (seeded: the same file every
// time; no downloads). Lognormal lengths and bursty arrivals (a Poisson rate that switches between 2/s and
// 8/s every 5 s), in llem's trace format (agent/load/trace.ts).
//   node --import tsx scripts/make-workloads.ts [examples/workloads]
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { seededRandom } from '../api/random.ts';
import { drawLength } from '../agent/load/prompts.ts';

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
mkdirSync(dir, { recursive: true });
writeFileSync(join(dir, 'bursty-trace.jsonl'), lines.join('\n') + '\n');
