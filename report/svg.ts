// Dependency-free SVG charts for the results report and the validation docs. Pure functions:
// data in, a standalone <svg> string out (deterministic, so committed plots diff cleanly).

export interface BarWithInterval {
  label: string;
  value: number | null;
  low: number | null;
  high: number | null;
}

export interface XYSeries {
  label: string;
  points: ReadonlyArray<readonly [number, number]>;
}

export interface Band {
  start: number;
  end: number;
  label: string;
}

export interface ChartText {
  title: string;
  xLabel: string;
  yLabel: string;
}

const W = 720;
const H = 360;
const M = { left: 70, right: 20, top: 36, bottom: 70 };
const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

export function colour(i: number): string {
  return PALETTE[i % PALETTE.length] ?? '#333';
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function fmt(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-3) return v.toExponential(1);
  return Number(v.toPrecision(3)).toString();
}

/** "Nice" axis ticks covering [lo, hi]. */
export function ticks(lo: number, hi: number, count = 5): number[] {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [0, 1];
  if (hi <= lo) hi = lo + (lo === 0 ? 1 : Math.abs(lo) * 0.1);
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  const first = Math.floor(lo / step) * step;
  const last = Math.ceil(hi / step - 1e-9) * step;
  for (let t = first; t <= last + step * 1e-9; t += step) out.push(Number(t.toPrecision(12)));
  return out;
}

interface Frame {
  x: (v: number) => number;
  y: (v: number) => number;
  body: string[];
}

function frame(text: ChartText, xs: number[], ys: number[], xCategorical: boolean): Frame {
  const xt = xCategorical ? [] : ticks(Math.min(...xs), Math.max(...xs));
  const yt = ticks(Math.min(0, ...ys), Math.max(...ys));
  const x0 = xCategorical ? 0 : (xt[0] ?? 0);
  const x1 = xCategorical ? Math.max(1, xs.length) : (xt[xt.length - 1] ?? 1);
  const y0 = yt[0] ?? 0;
  const y1 = yt[yt.length - 1] ?? 1;
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const x = (v: number): number => M.left + ((v - x0) / (x1 - x0 || 1)) * pw;
  const y = (v: number): number => M.top + ph - ((v - y0) / (y1 - y0 || 1)) * ph;
  const body: string[] = [
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="15" font-weight="bold">${esc(text.title)}</text>`,
    `<line x1="${M.left}" y1="${M.top + ph}" x2="${M.left + pw}" y2="${M.top + ph}" stroke="#333"/>`,
    `<line x1="${M.left}" y1="${M.top}" x2="${M.left}" y2="${M.top + ph}" stroke="#333"/>`,
    `<text x="${M.left + pw / 2}" y="${H - 8}" text-anchor="middle" font-size="12">${esc(text.xLabel)}</text>`,
    `<text transform="translate(16 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle" font-size="12">${esc(text.yLabel)}</text>`,
  ];
  for (const t of yt) {
    body.push(`<line x1="${M.left}" y1="${y(t)}" x2="${M.left + pw}" y2="${y(t)}" stroke="#eee"/>`);
    body.push(`<text x="${M.left - 6}" y="${y(t) + 4}" text-anchor="end" font-size="11">${fmt(t)}</text>`);
  }
  for (const t of xt) body.push(`<text x="${x(t)}" y="${M.top + ph + 16}" text-anchor="middle" font-size="11">${fmt(t)}</text>`);
  return { x, y, body };
}

function wrap(body: string[], kind: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" class="llem-chart" data-chart="${kind}" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" font-family="sans-serif">${body.join('')}</svg>`;
}

function emptyChart(text: ChartText, kind: string, why: string): string {
  return wrap([
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="15" font-weight="bold">${esc(text.title)}</text>`,
    `<text x="${W / 2}" y="${H / 2}" text-anchor="middle" font-size="13" fill="#777">${esc(why)}</text>`,
  ], kind);
}

/** Bars (e.g. mean J/token per configuration) with interval whiskers (95% CI). */
export function barChart(items: readonly BarWithInterval[], text: ChartText): string {
  const ys = items.flatMap((b) => [b.value, b.high].filter((v): v is number => v !== null && Number.isFinite(v)));
  if (ys.length === 0) return emptyChart(text, 'bar', 'no data');
  const f = frame(text, items.map((_, i) => i), ys, true);
  const slot = (W - M.left - M.right) / items.length;
  items.forEach((b, i) => {
    const cx = M.left + slot * (i + 0.5);
    const label = `<text transform="translate(${cx} ${H - M.bottom + 14}) rotate(20)" font-size="10">${esc(b.label.slice(0, 40))}</text>`;
    f.body.push(label);
    if (b.value === null) return;
    const top = f.y(b.value);
    const bw = Math.min(60, slot * 0.6);
    f.body.push(`<rect x="${cx - bw / 2}" y="${top}" width="${bw}" height="${f.y(0) - top}" fill="${colour(i)}"><title>${esc(b.label)}: ${fmt(b.value)}</title></rect>`);
    if (b.low !== null && b.high !== null) {
      f.body.push(`<path d="M${cx} ${f.y(b.low)}V${f.y(b.high)}M${cx - 8} ${f.y(b.low)}h16M${cx - 8} ${f.y(b.high)}h16" stroke="#000" fill="none"/>`);
    }
  });
  return wrap(f.body, 'bar');
}

/** Lines (CDFs, power over time) with optional shaded bands (measurement windows). */
export function lineChart(series: readonly XYSeries[], text: ChartText, bands: readonly Band[] = []): string {
  const pts = series.flatMap((s) => s.points);
  if (pts.length === 0) return emptyChart(text, 'line', 'no data');
  const xs = pts.map((p) => p[0]).concat(bands.flatMap((b) => [b.start, b.end]));
  const f = frame(text, xs, pts.map((p) => p[1]), false);
  for (const b of bands) {
    const x0 = f.x(b.start);
    f.body.push(`<rect x="${x0}" y="${M.top}" width="${Math.max(1, f.x(b.end) - x0)}" height="${H - M.top - M.bottom}" fill="#2ca02c" opacity="0.12"><title>${esc(b.label)}</title></rect>`);
  }
  series.forEach((s, i) => {
    if (s.points.length === 0) return;
    const d = s.points.map((p, j) => `${j === 0 ? 'M' : 'L'}${f.x(p[0]).toFixed(1)} ${f.y(p[1]).toFixed(1)}`).join('');
    f.body.push(`<path d="${d}" stroke="${colour(i)}" stroke-width="1.5" fill="none"><title>${esc(s.label)}</title></path>`);
    f.body.push(`<text x="${W - M.right - 4}" y="${M.top + 14 + i * 14}" text-anchor="end" font-size="11" fill="${colour(i)}">${esc(s.label.slice(0, 50))}</text>`);
  });
  return wrap(f.body, 'line');
}
