// bench/chunk-scan: what the client spends on one streamed chunk after the first token, the byte scanner
// (agent/load/chunk-scan.ts) against the JSON.parse path it replaces (decode + JSON.parse + facts), on
// the chunks the mock server sends (completions and chat), in the same run: ns per chunk and young-
// generation GCs per million chunks. Usage: node --import tsx bench/chunk-scan.ts
import { loadavg } from 'node:os';
import { PerformanceObserver } from 'node:perf_hooks';
import { scanChunk } from '../agent/load/chunk-scan.ts';
import { chunkFacts } from '../agent/load/client.ts';

const N = 500_000;
const head = (chat: boolean): string =>
  `{"id":"cmpl-0123456789abcdef","object":"${chat ? 'chat.completion.chunk' : 'text_completion'}",` +
  `"created":1765000000,"model":"mock-llm","system_fingerprint":"llem-mock-simulated","choices":[{"index":0,`;
const chunks = [
  Buffer.from(`data: ${head(false)}"text":" word","logprobs":null,"finish_reason":null}]}`),
  Buffer.from(`data: ${head(true)}"delta":{"content":" word"},"logprobs":null,"finish_reason":null}]}`),
];

let gcs = 0;
new PerformanceObserver((l) => (gcs += l.getEntries().length)).observe({ entryTypes: ['gc'] });

async function run(fn: (b: Buffer, chat: boolean) => number): Promise<{ nsPerChunk: number; gcsPerMillion: number }> {
  let sink = 0;
  for (let k = 0; k < 50_000; k++) sink += fn(chunks[k & 1] as Buffer, (k & 1) === 1); // warm-up
  const gc0 = gcs;
  const t0 = process.hrtime.bigint();
  for (let k = 0; k < N; k++) sink += fn(chunks[k & 1] as Buffer, (k & 1) === 1);
  const ns = Number(process.hrtime.bigint() - t0);
  if (sink !== 50_000 + N) throw new Error(`every chunk carries text: got ${sink}`);
  await new Promise((res) => setTimeout(res, 10)); // let the GC observer deliver
  return { nsPerChunk: ns / N, gcsPerMillion: ((gcs - gc0) * 1e6) / N };
}

const scan = (b: Buffer, chat: boolean): number => scanChunk(b, 6, b.length, chat);
const parse = (b: Buffer, chat: boolean): number =>
  chunkFacts(chat ? 'chat' : 'completions', JSON.parse(b.toString('utf8', 6)) as Parameters<typeof chunkFacts>[1]);

const rounds: Array<{ scan: number; parse: number; scanGc: number; parseGc: number }> = [];
for (let r = 0; r < 3; r++) {
  const a = await run(parse);
  const b = await run(scan);
  rounds.push({ parse: a.nsPerChunk, scan: b.nsPerChunk, parseGc: a.gcsPerMillion, scanGc: b.gcsPerMillion });
}
const best = (k: 'scan' | 'parse' | 'scanGc' | 'parseGc'): number => Math.min(...rounds.map((x) => x[k]));
console.log(JSON.stringify(rounds));
console.log(
  `RESULT scan_ns_per_chunk=${best('scan').toFixed(0)} json_parse_ns_per_chunk=${best('parse').toFixed(0)} ` +
    `speedup=${(best('parse') / best('scan')).toFixed(2)} scan_gcs_per_million=${best('scanGc').toFixed(1)} ` +
    `json_parse_gcs_per_million=${best('parseGc').toFixed(1)} loadavg_1m=${(loadavg()[0] ?? NaN).toFixed(2)}`,
);
