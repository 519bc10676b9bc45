// The consumer's share of the bus path, without NATS: what the consumer's thread does per bus message
// (decodeMessages, then Aggregator.applyBatch), on the same sketch slices bench/bus.ts publishes, in
// batches as the Publisher encodes them: JSON arrays (ADR 0021) against the binary envelope (ADR 0033),
// whose sketches reach the Aggregator as bytes (ADR 0036); and the Publisher's encoding of the same batches
// in each form (from the agent's bodies, sketches in base64). CPU microseconds per slice, the two forms
// alternated in one run (the first round is a warm-up and not reported). On a shared machine this is
// steadier than bench/bus.ts's end-to-end figure, which shares its cores with nats-server and the
// publishers.
// Run: node --import tsx bench/bus-consumer.ts [--slices N] [--batch N]
import { loadavg } from 'node:os';
import { decodeMessages, encodeBatch, encodeMessage, type WireMessage } from '../api/protocol.ts';
import { encodeBinaryBatch, encodeBinaryMember } from '../api/protocol-binary.ts';
import { Aggregator } from '../aggregator/aggregator.ts';
import { benchRuns, slicePool } from './bus/slices.ts';

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const SLICES = arg('slices', 40_000);
const BATCH = arg('batch', 8);
const PUBLISHERS = 10;
const ROUNDS = 4;

type Format = 'json' | 'binary';

function aggregatorFor(uid: string): Aggregator {
  const runs = benchRuns(PUBLISHERS);
  return new Aggregator({ experimentUid: uid, runs });
}

/** The members of one round as the Publisher holds them before encoding, publishers interleaved. */
function members(uid: string): WireMessage[][] {
  const pool = slicePool();
  const perPublisher = SLICES / PUBLISHERS;
  const out: WireMessage[][] = [];
  for (let first = 1; first <= perPublisher; first += BATCH) {
    for (let p = 0; p < PUBLISHERS; p++) {
      const batch: WireMessage[] = [];
      for (let seq = first; seq < first + BATCH && seq <= perPublisher; seq++) {
        const body = pool[(seq + p) % pool.length] as (typeof pool)[number];
        const key = { namespace: 'bench', experimentUid: uid, runId: `run-${p}`, attempt: 0, replica: 0 };
        batch.push({ v: 1, ...key, seq, sentAtMs: Date.now(), simulated: true, kind: 'sketch', ...body });
      }
      out.push(batch);
    }
  }
  return out;
}

/** A batch's bus message as the Publisher encodes it: each member at publish, then the batch. */
function encode(format: Format, batch: WireMessage[]): Uint8Array {
  return format === 'json'
    ? encodeBatch(batch.map(encodeMessage))
    : encodeBinaryBatch(batch[0] as WireMessage, batch.map(encodeBinaryMember));
}

/** The bus messages of one round: each publisher's slices in batches of BATCH, publishers interleaved. */
function busMessages(uid: string, format: Format): Uint8Array[] {
  return members(uid).map((b) => encode(format, b));
}

/**
 * CPU microseconds per slice to encode one round's bus messages as the Publisher does (each member at
 * publish, then the batch), from the agent's slice bodies (sketches in base64, as agent/slices.ts gives).
 */
function encodeCost(format: Format, round: number): number {
  const batches = members(`enc-${format}${round}`);
  let bytes = 0;
  const t0 = process.threadCpuUsage();
  for (const b of batches) bytes += encode(format, b).length;
  const t = process.threadCpuUsage(t0);
  if (bytes === 0) throw new Error('nothing encoded');
  return (t.user + t.system) / SLICES;
}

/** CPU microseconds per slice to decode and apply one round's bus messages; throws unless all applied. */
function consume(format: Format, round: number): number {
  const uid = `${format}${round}`;
  const messages = busMessages(uid, format);
  const agg = aggregatorFor(uid);
  let applied = 0;
  const t0 = process.threadCpuUsage();
  for (const [i, data] of messages.entries()) {
    const d = decodeMessages(data);
    if (!d.ok) throw new Error(d.error);
    for (const o of agg.applyBatch(d.messages, i + 1)) if (o.outcome === 'applied') applied++;
  }
  const t = process.threadCpuUsage(t0);
  if (applied !== SLICES) throw new Error(`${format}: ${applied} of ${SLICES} slices applied`);
  return (t.user + t.system) / SLICES;
}

const per: Record<Format, number[]> = { json: [], binary: [] };
const enc: Record<Format, number[]> = { json: [], binary: [] };
for (let round = 0; round < ROUNDS; round++) {
  for (const format of ['json', 'binary'] as const) {
    const us = consume(format, round);
    const encUs = encodeCost(format, round);
    if (round > 0) per[format].push(us);
    if (round > 0) enc[format].push(encUs);
  }
}
const best = (xs: number[]): number => Math.min(...xs);
const json = best(per.json);
const binary = best(per.binary);
const jsonEnc = best(enc.json);
const binaryEnc = best(enc.binary);
console.log(`publisher's encoding: JSON ${jsonEnc.toFixed(1)} us/slice, binary ${binaryEnc.toFixed(1)} us/slice`);
console.log(
  `decode + apply, ${SLICES} slices in batches of ${BATCH} (best of ${ROUNDS - 1} rounds): ` +
    `JSON ${json.toFixed(1)} us/slice, binary ${binary.toFixed(1)} us/slice`,
);
console.log(
  `RESULT slices=${SLICES} batch=${BATCH} json_consumer_cpu_us_per_slice=${json.toFixed(1)} ` +
    `binary_consumer_cpu_us_per_slice=${binary.toFixed(1)} binary_vs_json_cpu=${(binary / json).toFixed(2)} ` +
    `json_encode_cpu_us_per_slice=${jsonEnc.toFixed(1)} binary_encode_cpu_us_per_slice=${binaryEnc.toFixed(1)} ` +
    `loadavg1=${loadavg()[0]?.toFixed(2)}`,
);
