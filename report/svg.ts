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
/** Plot area height; the SVG grows below it for tick labels, the axis label and the legend. */
const PLOT_H = 254;
const TOP = 36;
const RIGHT = 20;
const PALETTE = [
  '#1f77b4',
  '#ff7f0e',
  '#2ca02c',
  '#d62728',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#7f7f7f',
  '#bcbd22',
  '#17becf',
];
/** Width of one character at font size 11 (sans-serif), generous so that estimates never undershoot. */
const CHAR_W = 6.6;
const LINE_H = 13;

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

/** Category labels under the bars: wrapped into up to 3 lines per slot, or vertical when slots are narrow. */
interface CategoryLayout {
  vertical: boolean;
  lines: string[][];
  height: number;
}

function wrapLabel(label: string, maxChars: number, maxLines: number): string[] {
  const words = label.split(/\s+/).filter((w) => w !== '');
  const lines: string[] = [];
  let cur = '';
  for (const w of words) {
    const next = cur === '' ? w : `${cur} ${w}`;
    if (next.length <= maxChars) cur = next;
    else {
      if (cur !== '') lines.push(cur);
      cur = w;
    }
  }
  if (cur !== '') lines.push(cur);
  const cut = lines.map((l) => (l.length > maxChars ? `${l.slice(0, Math.max(1, maxChars - 1))}…` : l));
  if (cut.length <= maxLines) return cut;
  const kept = cut.slice(0, maxLines);
  const last = kept[maxLines - 1] ?? '';
  kept[maxLines - 1] = `${last.slice(0, Math.max(1, maxChars - 1))}…`;
  return kept;
}

function layoutCategories(labels: readonly string[], slot: number): CategoryLayout {
  const maxChars = Math.floor((slot - 6) / CHAR_W);
  if (maxChars >= 8) {
    const lines = labels.map((l) => wrapLabel(l, maxChars, 3));
    return { vertical: false, lines, height: Math.max(1, ...lines.map((l) => l.length)) * LINE_H + 6 };
  }
  // Too narrow to read horizontally: one vertical line each, at most 36 characters.
  const lines = labels.map((l) => [l.length > 36 ? `${l.slice(0, 35)}…` : l]);
  return { vertical: true, lines, height: Math.max(...lines.map((l) => (l[0] ?? '').length)) * CHAR_W + 10 };
}

interface Frame {
  x: (v: number) => number;
  y: (v: number) => number;
  left: number;
  plotW: number;
  /** y of the plot's bottom edge. */
  bottom: number;
  body: string[];
  /** Rows under the plot: tick labels, axis label, legend; returns the total height. */
  finish: (legend: readonly string[]) => number;
}

/**
 * Axes, grid, tick labels and axis labels, laid out from the labels' sizes: the left margin fits the
 * widest y tick label beside the y axis label, and the x axis label sits below the tallest x tick
 * label, so the axis labels never overlap the tick labels.
 */
function frame(text: ChartText, xs: number[], ys: number[], categories: readonly string[] | null): Frame {
  const xt = categories !== null ? [] : ticks(Math.min(...xs), Math.max(...xs));
  const yt = ticks(Math.min(0, ...ys), Math.max(...ys));
  const yLabelsW = Math.max(...yt.map((t) => fmt(t).length)) * CHAR_W;
  const left = Math.max(60, Math.ceil(30 + yLabelsW + 8));
  const plotW = W - left - RIGHT;
  const x0 = categories !== null ? 0 : (xt[0] ?? 0);
  const x1 = categories !== null ? Math.max(1, categories.length) : (xt[xt.length - 1] ?? 1);
  const y0 = yt[0] ?? 0;
  const y1 = yt[yt.length - 1] ?? 1;
  const bottom = TOP + PLOT_H;
  const x = (v: number): number => left + ((v - x0) / (x1 - x0 || 1)) * plotW;
  const y = (v: number): number => TOP + PLOT_H - ((v - y0) / (y1 - y0 || 1)) * PLOT_H;
  const body: string[] = [
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="15" font-weight="bold">${esc(text.title)}</text>`,
    `<line x1="${left}" y1="${bottom}" x2="${left + plotW}" y2="${bottom}" stroke="#333"/>`,
    `<line x1="${left}" y1="${TOP}" x2="${left}" y2="${bottom}" stroke="#333"/>`,
    `<text class="axis-label" transform="translate(16 ${TOP + PLOT_H / 2}) rotate(-90)" text-anchor="middle" font-size="12">${esc(text.yLabel)}</text>`,
  ];
  for (const t of yt) {
    body.push(`<line x1="${left}" y1="${y(t)}" x2="${left + plotW}" y2="${y(t)}" stroke="#eee"/>`);
    body.push(`<text class="tick" x="${left - 6}" y="${y(t) + 4}" text-anchor="end" font-size="11">${fmt(t)}</text>`);
  }
  let tickBlock = 20;
  if (categories !== null) {
    const slot = plotW / Math.max(1, categories.length);
    const lay = layoutCategories(categories, slot);
    tickBlock = lay.height + 6;
    lay.lines.forEach((lines, i) => {
      const cx = left + slot * (i + 0.5);
      if (lay.vertical) {
        body.push(
          `<text class="tick" transform="translate(${cx + 4} ${bottom + 6}) rotate(90)" font-size="11">${esc(lines[0] ?? '')}</text>`,
        );
      } else {
        const spans = lines.map((l, k) => `<tspan x="${cx}" dy="${k === 0 ? 0 : LINE_H}">${esc(l)}</tspan>`).join('');
        body.push(
          `<text class="tick" x="${cx}" y="${bottom + 15}" text-anchor="middle" font-size="11"><title>${esc(categories[i] ?? '')}</title>${spans}</text>`,
        );
      }
    });
  } else {
    for (const t of xt)
      body.push(
        `<text class="tick" x="${x(t)}" y="${bottom + 16}" text-anchor="middle" font-size="11">${fmt(t)}</text>`,
      );
  }
  const finish = (legend: readonly string[]): number => {
    const axisY = bottom + tickBlock + 14;
    body.push(
      `<text class="axis-label" x="${left + plotW / 2}" y="${axisY}" text-anchor="middle" font-size="12">${esc(text.xLabel)}</text>`,
    );
    // Legend under the axis label, never over the data: two columns of swatch + label.
    const colW = (W - left - RIGHT) / 2;
    legend.forEach((label, i) => {
      const lx = left + (i % 2) * colW;
      const ly = axisY + 12 + Math.floor(i / 2) * 16;
      const maxChars = Math.floor((colW - 24) / CHAR_W);
      const shown = label.length > maxChars ? `${label.slice(0, maxChars - 1)}…` : label;
      body.push(
        `<rect x="${lx}" y="${ly}" width="12" height="10" fill="${colour(i)}"/>` +
          `<text class="legend" x="${lx + 16}" y="${ly + 9}" font-size="11"><title>${esc(label)}</title>${esc(shown)}</text>`,
      );
    });
    return axisY + 10 + (legend.length === 0 ? 0 : Math.ceil(legend.length / 2) * 16 + 6);
  };
  return { x, y, left, plotW, bottom, body, finish };
}

function wrap(body: string[], kind: string, height = 360): string {
  const h = Math.ceil(height);
  return `<svg xmlns="http://www.w3.org/2000/svg" class="llem-chart" data-chart="${kind}" viewBox="0 0 ${W} ${h}" width="${W}" height="${h}" font-family="sans-serif">${body.join('')}</svg>`;
}

function emptyChart(text: ChartText, kind: string, why: string): string {
  return wrap(
    [
      `<text x="${W / 2}" y="20" text-anchor="middle" font-size="15" font-weight="bold">${esc(text.title)}</text>`,
      `<text x="${W / 2}" y="180" text-anchor="middle" font-size="13" fill="#777">${esc(why)}</text>`,
    ],
    kind,
  );
}

/** Bars (e.g. mean J/token per configuration) with interval whiskers (95% CI). */
export function barChart(items: readonly BarWithInterval[], text: ChartText): string {
  const ys = items.flatMap((b) => [b.value, b.high].filter((v): v is number => v !== null && Number.isFinite(v)));
  if (ys.length === 0) return emptyChart(text, 'bar', 'no data');
  const f = frame(
    text,
    items.map((_, i) => i),
    ys,
    items.map((b) => b.label),
  );
  const slot = f.plotW / items.length;
  items.forEach((b, i) => {
    const cx = f.left + slot * (i + 0.5);
    if (b.value === null) return;
    const top = f.y(b.value);
    const bw = Math.min(60, slot * 0.6);
    f.body.push(
      `<rect x="${cx - bw / 2}" y="${top}" width="${bw}" height="${f.y(0) - top}" fill="${colour(i)}"><title>${esc(b.label)}: ${fmt(b.value)}</title></rect>`,
    );
    if (b.low !== null && b.high !== null) {
      f.body.push(
        `<path d="M${cx} ${f.y(b.low)}V${f.y(b.high)}M${cx - 8} ${f.y(b.low)}h16M${cx - 8} ${f.y(b.high)}h16" stroke="#000" fill="none"/>`,
      );
    }
  });
  return wrap(f.body, 'bar', f.finish([]));
}

/** Lines (CDFs, power over time) with optional shaded bands (measurement windows); legend below. */
export function lineChart(allSeries: readonly XYSeries[], text: ChartText, allBands: readonly Band[] = []): string {
  // A sample without a finite time or value (a missing reading) is left out, never drawn as NaN.
  const series = allSeries.map((s) => ({
    ...s,
    points: s.points.filter((p) => Number.isFinite(p[0]) && Number.isFinite(p[1])),
  }));
  const bands = allBands.filter((b) => Number.isFinite(b.start) && Number.isFinite(b.end));
  const pts = series.flatMap((s) => s.points);
  if (pts.length === 0) return emptyChart(text, 'line', 'no data');
  const xs = pts.map((p) => p[0]).concat(bands.flatMap((b) => [b.start, b.end]));
  const f = frame(
    text,
    xs,
    pts.map((p) => p[1]),
    null,
  );
  for (const b of bands) {
    const x0 = f.x(b.start);
    f.body.push(
      `<rect x="${x0}" y="${TOP}" width="${Math.max(1, f.x(b.end) - x0)}" height="${PLOT_H}" fill="#2ca02c" opacity="0.12"><title>${esc(b.label)}</title></rect>`,
    );
  }
  series.forEach((s, i) => {
    if (s.points.length === 0) return;
    const d = s.points.map((p, j) => `${j === 0 ? 'M' : 'L'}${f.x(p[0]).toFixed(1)} ${f.y(p[1]).toFixed(1)}`).join('');
    f.body.push(
      `<path d="${d}" stroke="${colour(i)}" stroke-width="1.5" fill="none"><title>${esc(s.label)}</title></path>`,
    );
  });
  return wrap(f.body, 'line', f.finish(series.map((s) => s.label)));
}

export interface IntervalPoint {
  x: number;
  y: number;
  /** 95% CI bounds; null: none drawn. */
  xLow?: number | null;
  xHigh?: number | null;
  yLow?: number | null;
  yHigh?: number | null;
  /** Hover text. */
  label: string;
  /** hollow: drawn as an open circle (e.g. not distinguishable from the frontier). */
  hollow?: boolean;
}

export interface IntervalSeries {
  label: string;
  points: readonly IntervalPoint[];
  /** Join the points with a line, in the given order. */
  line?: boolean;
}

/** Points with 95% CI whiskers on x and/or y (ladder curves, the Pareto frontier); optional vertical marks. */
export function intervalChart(
  allSeries: readonly IntervalSeries[],
  text: ChartText,
  marks: readonly { x: number; label: string }[] = [],
): string {
  const finite = (v: number | null | undefined): v is number => v !== null && v !== undefined && Number.isFinite(v);
  const series = allSeries.map((s) => ({ ...s, points: s.points.filter((p) => finite(p.x) && finite(p.y)) }));
  const pts = series.flatMap((s) => s.points);
  if (pts.length === 0) return emptyChart(text, 'interval', 'no data');
  const xs = pts.flatMap((p) => [p.x, p.xLow, p.xHigh].filter(finite)).concat(marks.map((m) => m.x).filter(finite));
  const f = frame(
    text,
    xs,
    pts.flatMap((p) => [p.y, p.yLow, p.yHigh].filter(finite)),
    null,
  );
  for (const m of marks.filter((k) => finite(k.x))) {
    const x = f.x(m.x).toFixed(1);
    f.body.push(
      `<path d="M${x} ${TOP}V${TOP + PLOT_H}" stroke="#555" stroke-dasharray="4 3"><title>${esc(m.label)}</title></path>` +
        `<text x="${x}" y="${TOP - 4}" text-anchor="middle" font-size="11">${esc(m.label)}</text>`,
    );
  }
  series.forEach((s, i) => {
    const c = colour(i);
    if (s.line === true && s.points.length > 1) {
      const d = s.points.map((p, j) => `${j === 0 ? 'M' : 'L'}${f.x(p.x).toFixed(1)} ${f.y(p.y).toFixed(1)}`).join('');
      f.body.push(`<path d="${d}" stroke="${c}" stroke-width="1.5" fill="none"/>`);
    }
    for (const p of s.points) {
      const cx = f.x(p.x);
      const cy = f.y(p.y);
      if (finite(p.yLow) && finite(p.yHigh))
        f.body.push(`<path d="M${cx} ${f.y(p.yLow)}V${f.y(p.yHigh)}" stroke="${c}" fill="none"/>`);
      if (finite(p.xLow) && finite(p.xHigh))
        f.body.push(`<path d="M${f.x(p.xLow)} ${cy}H${f.x(p.xHigh)}" stroke="${c}" fill="none"/>`);
      const fill = p.hollow === true ? 'white' : c;
      f.body.push(
        `<circle cx="${cx.toFixed(1)}" cy="${cy.toFixed(1)}" r="4" fill="${fill}" stroke="${c}" stroke-width="1.5"><title>${esc(p.label)}</title></circle>`,
      );
    }
  });
  return wrap(f.body, 'interval', f.finish(series.map((s) => s.label)));
}
