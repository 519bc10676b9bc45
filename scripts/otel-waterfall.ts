// Draws one trace's spans (JSON written by tests/integration/otel with LLEM_OTEL_SPANS_OUT, i.e.
// spans that went through a real OpenTelemetry Collector) as an SVG waterfall: one row per span,
// indented by depth, bars on the trace's time axis.
// Usage: node --import tsx scripts/otel-waterfall.ts SPANS.json OUT.svg
import { readFileSync, writeFileSync } from 'node:fs';

interface RawSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  startNs: string;
  endNs: string;
  attributes: Record<string, unknown>;
}

const [input, output] = process.argv.slice(2);
if (input === undefined || output === undefined) {
  process.stderr.write('usage: otel-waterfall SPANS.json OUT.svg\n');
  process.exit(2);
}
const spans = JSON.parse(readFileSync(input, 'utf8')) as RawSpan[];
const byParent = new Map<string, RawSpan[]>();
for (const s of spans) byParent.set(s.parentSpanId, [...(byParent.get(s.parentSpanId) ?? []), s]);
const ids = new Set(spans.map((s) => s.spanId));
const rows: { span: RawSpan; depth: number }[] = [];
function walk(s: RawSpan, depth: number): void {
  rows.push({ span: s, depth });
  for (const c of (byParent.get(s.spanId) ?? []).sort((a, b) => (BigInt(a.startNs) < BigInt(b.startNs) ? -1 : 1)))
    walk(c, depth + 1);
}
for (const root of spans.filter((s) => !ids.has(s.parentSpanId))) walk(root, 0);

const t0 = rows.reduce(
  (m, r) => (BigInt(r.span.startNs) < m ? BigInt(r.span.startNs) : m),
  BigInt(rows[0]?.span.startNs ?? 0),
);
const t1 = rows.reduce((m, r) => (BigInt(r.span.endNs) > m ? BigInt(r.span.endNs) : m), t0 + 1n);
const totalMs = Number(t1 - t0) / 1e6;
const LABEL_W = 330;
const BAR_W = 640;
const ROW_H = 20;
const x = (ns: string): number => LABEL_W + (Number(BigInt(ns) - t0) / 1e6 / totalMs) * BAR_W;
const colour = (name: string): string =>
  name.startsWith('llem.agent.') && name !== 'llem.agent.run'
    ? '#4c9f70'
    : name === 'llem.agent.run'
      ? '#3b7dd8'
      : '#8a5cc2';
const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

const body = rows
  .map(({ span, depth }, i) => {
    const y = 30 + i * ROW_H;
    const x0 = x(span.startNs);
    const w = Math.max(1, x(span.endNs) - x0);
    const ms = Number(BigInt(span.endNs) - BigInt(span.startNs)) / 1e6;
    const e = span.attributes['llem.window.energy_joules'];
    const extra =
      typeof e === 'number'
        ? `, ${e.toFixed(0)} J, ${(span.attributes['llem.window.joules_per_token'] as number).toFixed(2)} J/token`
        : '';
    const run =
      typeof span.attributes['llem.run.id'] === 'string' && span.name !== 'llem.agent.run'
        ? ` ${String(span.attributes['llem.run.id']).slice(0, 18)}`
        : '';
    return (
      `<text x="${6 + depth * 14}" y="${y + 14}" font-size="12">${esc(span.name + run)}</text>` +
      `<rect x="${x0.toFixed(1)}" y="${y + 3}" width="${w.toFixed(1)}" height="${ROW_H - 6}" fill="${colour(span.name)}"/>` +
      `<text x="${(x0 + w + 4).toFixed(1)}" y="${y + 14}" font-size="11" fill="#444">${ms.toFixed(1)} ms${esc(extra)}</text>`
    );
  })
  .join('\n');
const height = 40 + rows.length * ROW_H;
const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${LABEL_W + BAR_W + 230}" height="${height}" font-family="sans-serif">
<rect width="100%" height="100%" fill="#fff"/>
<text x="6" y="18" font-size="13" font-weight="bold">trace ${esc(rows[0]?.span.traceId ?? '')}: ${rows.length} spans, ${totalMs.toFixed(0)} ms (simulated GPU, through otelcol)</text>
${body}
</svg>
`;
writeFileSync(output, svg);
process.stdout.write(`wrote ${output}: ${rows.length} spans\n`);
