// User-facing wording for zod's built-in checks: what was expected and what was given, in the
// terms a manifest author uses. Messages set on a schema (`.max(63, { message })`) take precedence.
import type { z } from 'zod';
import { didYouMean } from './paths.ts';

function enumHint(input: unknown, values: readonly unknown[]): string {
  if (typeof input !== 'string') return '';
  const hint = didYouMean(
    input,
    values.filter((v): v is string => typeof v === 'string'),
  );
  return hint === undefined ? '' : `; did you mean "${hint}"?`;
}

function shown(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
  return String(value);
}

const TYPE_WORDS: Record<string, string> = {
  object: 'a mapping',
  array: 'a list',
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
};

function bound(
  kind: 'small' | 'big',
  iss: { origin: string; inclusive?: boolean },
  limit: number | bigint,
  input: unknown,
): string {
  const n = Number(limit);
  if (iss.origin === 'array')
    return kind === 'small' ? `must have at least ${n} item${n === 1 ? '' : 's'}` : `must have at most ${n} items`;
  if (iss.origin === 'string') {
    if (kind === 'small' && n === 1) return 'must not be empty';
    return `must be ${kind === 'small' ? 'at least' : 'at most'} ${n} characters`;
  }
  const op = kind === 'small' ? (iss.inclusive === false ? '>' : '>=') : iss.inclusive === false ? '<' : '<=';
  return `must be ${op} ${n} (got ${shown(input)})`;
}

/** Pass as `schema.safeParse(value, { error: manifestErrorMap })`. */
export const manifestErrorMap: z.core.$ZodErrorMap = (iss) => {
  switch (iss.code) {
    case 'invalid_type':
      if (iss.input === undefined) return `required (expected ${TYPE_WORDS[iss.expected] ?? iss.expected})`;
      if (iss.expected === 'int') return `must be an integer (got ${shown(iss.input)})`;
      return `expected ${TYPE_WORDS[iss.expected] ?? iss.expected}, got ${shown(iss.input)}`;
    case 'too_small':
      return bound('small', iss, iss.minimum, iss.input);
    case 'too_big':
      return bound('big', iss, iss.maximum, iss.input);
    case 'invalid_value':
      if (iss.values.length === 1) return `must be ${JSON.stringify(iss.values[0])} (got ${shown(iss.input)})`;
      return `must be one of ${iss.values.map((v) => String(v)).join(', ')} (got ${shown(iss.input)})${enumHint(iss.input, iss.values)}`;
    case 'invalid_union':
      return `unexpected value ${shown(iss.input)}`;
    default:
      return undefined;
  }
};
