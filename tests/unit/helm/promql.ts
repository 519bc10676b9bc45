// Metric names referenced by PromQL expressions: enough of the grammar for dashboard queries.
const KEYWORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'and',
  'or',
  'unless',
  'offset',
  'inf',
  'nan',
]);

export function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const m of stripped.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const word = m[0];
    const rest = stripped.slice((m.index ?? 0) + word.length);
    if (/^\s*\(/.test(rest) || KEYWORDS.has(word.toLowerCase()) || word.startsWith('$')) continue;
    const before = stripped.slice(0, m.index ?? 0);
    if (/[$\d.]$/.test(before)) continue;
    names.add(word);
  }
  return [...names].sort();
}

/** Histograms and summaries are exported under their base name; queries use the series suffixes. */
export function baseMetricName(name: string, exported: ReadonlySet<string>): string {
  if (exported.has(name)) return name;
  const base = name.replace(/_(bucket|sum|count)$/, '');
  return exported.has(base) ? base : name;
}
