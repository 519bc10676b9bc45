// A small valid manifest, rebuilt fresh for every test so mutations never leak between cases.
export type Json = Record<string, unknown>;

export function validManifest(): Json {
  return {
    apiVersion: 'llem.dev/v1alpha1',
    kind: 'EnergyExperiment',
    metadata: { name: 'base' },
    spec: {
      model: {
        name: 'Qwen/Qwen2.5-0.5B-Instruct',
        source: { random: { numHeads: 4, numKvHeads: 2, hiddenSize: 256 } },
      },
      backends: [{ type: 'vllm' }],
      workload: { requests: 16, concurrency: 4 },
      measurement: { cycles: 2, baselineSeconds: 1, minWindowSeconds: 5 },
    },
  };
}

/** Reads a nested plain object for mutation in tests (throws when absent, which fails the test). */
export function at(obj: Json, ...path: (string | number)[]): Json {
  let cur: unknown = obj;
  for (const p of path) cur = (cur as Record<string | number, unknown>)[p];
  if (typeof cur !== 'object' || cur === null) throw new Error(`no object at ${path.join('.')}`);
  return cur as Json;
}
