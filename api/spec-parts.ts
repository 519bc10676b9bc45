// Building blocks shared by the EnergyExperiment schema files (api/spec*.ts): number kinds,
// DNS-1123 names, and the CEL rules that mirror zod refinements in the generated CRD.
import { z } from 'zod';
import { DNS1123_LABEL_PATTERN } from './names.ts';

export const DNS1123_MESSAGE =
  'must be a DNS-1123 label: at most 63 characters of a-z, 0-9 and "-", starting and ending with a letter or digit';

export const Dns1123LabelSchema = z
  .string()
  .max(63, { message: DNS1123_MESSAGE })
  .regex(new RegExp(DNS1123_LABEL_PATTERN), { message: DNS1123_MESSAGE });

/** A CEL rule for the CRD (x-kubernetes-validations), next to the zod rule it mirrors. */
export interface CelRule {
  rule: string;
  message: string;
  fieldPath?: string;
}
export function cel(...rules: CelRule[]): { 'x-kubernetes-validations': CelRule[] } {
  return { 'x-kubernetes-validations': rules };
}
export const exactlyOne = (keys: readonly string[], what: string): CelRule => ({
  rule: `[${keys.map((k) => `has(self.${k})`).join(', ')}].filter(x, x).size() == 1`,
  message: `${what} must set exactly one of ${keys.join(', ')}`,
});

export const posInt = z.number().int().min(1);
export const nonNegInt = z.number().int().min(0);
export const nonNegNumber = z.number().min(0);
export const stringMap = z.record(z.string(), z.string());
/** Free-form Kubernetes object (affinity, pod spec fragments): kept as given, validated by the API server. */
export const freeObject = z.record(z.string(), z.unknown());

export function oneOf<T extends Record<string, unknown>>(keys: readonly (keyof T & string)[], what: string) {
  return (value: T, ctx: z.core.$RefinementCtx<T>): void => {
    const present = keys.filter((k) => value[k] !== undefined);
    if (present.length !== 1) {
      const got = present.length === 0 ? 'none' : present.join(', ');
      ctx.addIssue({ code: 'custom', message: `${what} must set exactly one of ${keys.join(', ')} (got ${got})` });
    }
  };
}
