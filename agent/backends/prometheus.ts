// Prometheus text exposition format (0.0.4), parsed just enough to read a backend's /metrics.

export interface PrometheusSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parseValue(text: string): number {
  if (text === '+Inf' || text === 'Inf') return Number.POSITIVE_INFINITY;
  if (text === '-Inf') return Number.NEGATIVE_INFINITY;
  if (text === 'NaN') return Number.NaN;
  const v = Number(text);
  return text.trim() === '' ? Number.NaN : v;
}

/** Reads `{a="x",b="y\"z"}` starting at `start` (the `{`); returns labels and the index after `}`. */
function parseLabels(line: string, start: number): { labels: Record<string, string>; end: number } | null {
  const labels: Record<string, string> = {};
  let i = start + 1;
  while (i < line.length) {
    while (line[i] === ' ' || line[i] === ',') i++;
    if (line[i] === '}') return { labels, end: i + 1 };
    const eq = line.indexOf('=', i);
    if (eq < 0 || line[eq + 1] !== '"') return null;
    const key = line.slice(i, eq).trim();
    let value = '';
    let j = eq + 2;
    for (; j < line.length && line[j] !== '"'; j++) {
      if (line[j] === '\\' && j + 1 < line.length) {
        j++;
        value += line[j] === 'n' ? '\n' : line[j];
      } else {
        value += line[j];
      }
    }
    if (j >= line.length) return null;
    labels[key] = value;
    i = j + 1;
  }
  return null;
}

function parseLine(raw: string): PrometheusSample | null {
  const line = raw.trim();
  if (line === '' || line.startsWith('#')) return null;
  const brace = line.indexOf('{');
  const space = line.search(/\s/);
  if (brace >= 0 && (space < 0 || brace < space)) {
    const parsed = parseLabels(line, brace);
    if (parsed === null) return null;
    const value = parseValue(line.slice(parsed.end).trim().split(/\s+/)[0] ?? '');
    return { name: line.slice(0, brace), labels: parsed.labels, value };
  }
  if (space < 0) return null;
  return { name: line.slice(0, space), labels: {}, value: parseValue(line.slice(space).trim().split(/\s+/)[0] ?? '') };
}

/** Every sample in a text exposition; malformed lines are skipped (one bad line must not hide the rest). */
export function parsePrometheusText(text: string): PrometheusSample[] {
  const out: PrometheusSample[] = [];
  for (const raw of text.split('\n')) {
    const s = parseLine(raw);
    if (s !== null && !Number.isNaN(s.value)) out.push(s);
  }
  return out;
}

/** Sum of a metric over all label sets (several engines or models), or null when not exported. */
export function metricSum(samples: readonly PrometheusSample[], names: readonly string[]): number | null {
  for (const name of names) {
    const hits = samples.filter((s) => s.name === name);
    if (hits.length > 0) return hits.reduce((acc, s) => acc + s.value, 0);
  }
  return null;
}
