// The one place where anything used in a file path or a NATS subject token is made safe.

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** The same rule as a pattern string, for schemas (zod regex, CRD openAPIV3Schema). */
export const DNS1123_LABEL_PATTERN = DNS1123_LABEL.source;

export function isDns1123Label(value: string): boolean {
  return value.length <= 63 && DNS1123_LABEL.test(value);
}

/**
 * A NATS subject token / path segment: NATS forbids `.`, `*`, `>` and whitespace inside a token;
 * file systems dislike `/` and `\0`. Anything outside [A-Za-z0-9_-] becomes `_`, empty becomes `_`.
 */
export function sanitizeToken(value: string): string {
  const cleaned = value.replace(/[^A-Za-z0-9_-]/g, '_');
  return cleaned === '' ? '_' : cleaned;
}
