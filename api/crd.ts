// The EnergyExperiment CustomResourceDefinition, derived from the zod schemas (no I/O here; the
// `llem crd` command writes it). zod's JSON Schema is turned into a Kubernetes structural schema:
// no `additionalProperties: false` (unknown fields are pruned by the API server instead), no
// unions (they become `x-kubernetes-preserve-unknown-fields` and are checked by the controller's
// zod validation), record key patterns are dropped (zod checks them; CEL `matches` over keys of
// unknown length can exceed the API server's cost budget). Cross-field CEL rules come from `.meta()`
// next to the zod rules they mirror in api/spec.ts.
import { z } from 'zod';
import { API_GROUP, API_VERSION_NAME, EnergyExperimentSpecSchema, KIND, PLURAL, SHORT_NAME } from './spec.ts';
import { EnergyExperimentStatusSchema } from './status.ts';

type JsonSchema = Record<string, unknown>;

const MAX_SAFE = Number.MAX_SAFE_INTEGER;

function isObject(v: unknown): v is JsonSchema {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function structuralObject(node: JsonSchema, out: JsonSchema): void {
  if (isObject(node['properties'])) {
    out['properties'] = Object.fromEntries(Object.entries(node['properties']).map(([k, v]) => [k, structural(v)]));
  }
  const extra = node['additionalProperties'];
  if (isObject(extra)) {
    if (Object.keys(extra).length === 0) out['x-kubernetes-preserve-unknown-fields'] = true;
    else out['additionalProperties'] = structural(extra);
  }
}

const HANDLED = new Set(['properties', 'additionalProperties', 'propertyNames', 'items', 'const']);

function copyScalars(node: JsonSchema, out: JsonSchema): void {
  for (const [k, v] of Object.entries(node)) {
    const noiseBound = (k === 'maximum' && v === MAX_SAFE) || (k === 'minimum' && v === -MAX_SAFE);
    if (!HANDLED.has(k) && !noiseBound) out[k] = v;
  }
}

/** One zod JSON Schema node -> one structural schema node. */
export function structural(input: unknown): JsonSchema {
  if (!isObject(input)) return { 'x-kubernetes-preserve-unknown-fields': true };
  const node = input;
  const out: JsonSchema = {};
  if (node['anyOf'] !== undefined || node['oneOf'] !== undefined || node['type'] === undefined) {
    for (const k of ['description', 'default'] as const) if (node[k] !== undefined) out[k] = node[k];
    out['x-kubernetes-preserve-unknown-fields'] = true;
    return out;
  }
  copyScalars(node, out);
  if (node['const'] !== undefined) out['enum'] = [node['const']];
  if (node['type'] === 'object') structuralObject(node, out);
  if (node['type'] === 'array') out['items'] = structural(node['items']);
  return out;
}

function toJsonSchema(schema: z.ZodType): JsonSchema {
  return z.toJSONSchema(schema, {
    io: 'input',
    target: 'openapi-3.0',
    unrepresentable: 'any',
    reused: 'inline',
    cycles: 'throw',
  }) as JsonSchema;
}

export const CRD_NAME = `${PLURAL}.${API_GROUP}`;

export const PRINTER_COLUMNS = [
  {
    name: 'Status',
    type: 'string',
    jsonPath: '.status.phase',
    description: 'Pending, Running, Succeeded, Failed, Suspended or Invalid.',
  },
  {
    name: 'Progress',
    type: 'string',
    jsonPath: '.status.progress.summary',
    description: 'Succeeded runs / total runs.',
  },
  {
    name: 'Best J/token',
    type: 'number',
    jsonPath: '.status.best.joulesPerToken',
    description: 'Mean joules per output token of the best configuration.',
  },
  { name: 'Best', type: 'string', jsonPath: '.status.best.configurationId', priority: 1 },
  { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
] as const;

/** The CRD as a plain object, ready to serialise as YAML or JSON. */
export function energyExperimentCrd(): JsonSchema {
  const spec = structural(toJsonSchema(EnergyExperimentSpecSchema));
  const status = structural(toJsonSchema(EnergyExperimentStatusSchema));
  const openAPIV3Schema = {
    type: 'object',
    description: 'An LLM-inference energy experiment: backends x sweep points x cycles, measured on GPUs.',
    required: ['spec'],
    properties: {
      apiVersion: { type: 'string' },
      kind: { type: 'string' },
      metadata: { type: 'object' },
      spec,
      status,
    },
    'x-kubernetes-validations': [
      {
        // The character set is checked by the API server (DNS-1123 subdomain) and by zod (label).
        rule: 'self.metadata.name.size() <= 63',
        message: 'metadata.name must be at most 63 characters (a DNS-1123 label: run ids and pod names derive from it)',
      },
    ],
  };
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: CRD_NAME, labels: { 'app.kubernetes.io/part-of': 'llem' } },
    spec: {
      group: API_GROUP,
      names: {
        kind: KIND,
        listKind: `${KIND}List`,
        plural: PLURAL,
        singular: KIND.toLowerCase(),
        shortNames: [SHORT_NAME],
        categories: ['llem'],
      },
      scope: 'Namespaced',
      versions: [
        {
          name: API_VERSION_NAME,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: PRINTER_COLUMNS,
          schema: { openAPIV3Schema },
        },
      ],
    },
  };
}
