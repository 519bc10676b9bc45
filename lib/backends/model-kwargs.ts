// backends[].<type>.modelKwargs (ADR 0025) -> each backend's documented options. The schema (api/spec-backends.ts)
// is the allow-list; here each allowed key has exactly one target, and cross-field rules are checked with the
// field path of the offending key.
import type { z } from 'zod';
import type { PytorchModelKwargsSchema, RopeScalingSchema, VllmModelKwargsSchema } from '../../api/spec-backends.ts';
import { InvalidInputError } from '../../lib/errors.ts';

type RopeScaling = z.infer<typeof RopeScalingSchema>;
type PytorchModelKwargs = z.infer<typeof PytorchModelKwargsSchema>;
type VllmModelKwargs = z.infer<typeof VllmModelKwargsSchema>;

/** transformers' own names (config.json rope_scaling). */
export function ropeScalingConfig(r: RopeScaling): Record<string, unknown> {
  const out: Record<string, unknown> = { rope_type: r.ropeType, factor: r.factor };
  if (r.originalMaxPositionEmbeddings !== undefined)
    out['original_max_position_embeddings'] = r.originalMaxPositionEmbeddings;
  if (r.lowFreqFactor !== undefined) out['low_freq_factor'] = r.lowFreqFactor;
  if (r.highFreqFactor !== undefined) out['high_freq_factor'] = r.highFreqFactor;
  return out;
}

function refuse(path: string, message: string): never {
  throw new InvalidInputError([{ file: '', path, message }]);
}

/** codeRevision pins remote code: without trustRemoteCode there is no remote code to pin. */
function checkCodeRevision(
  kw: { trustRemoteCode?: boolean | undefined; codeRevision?: string | undefined },
  at: string,
): void {
  if (kw.codeRevision !== undefined && kw.trustRemoteCode !== true)
    refuse(`${at}.codeRevision`, 'applies only with trustRemoteCode: true (it pins the remote code to run)');
}

/** The PyTorch server's --model-kwargs JSON (snake_case, as from_pretrained takes them); null when none. */
export function pytorchModelKwargs(
  kw: PytorchModelKwargs | undefined,
  quantization: string,
  at = 'spec.backends[pytorch].pytorch.modelKwargs',
): string | null {
  if (kw === undefined) return null;
  checkCodeRevision(kw, at);
  for (const key of ['bnb4bitQuantType', 'bnb4bitUseDoubleQuant'] as const) {
    if (kw[key] !== undefined && quantization !== 'bitsandbytes4bit')
      refuse(`${at}.${key}`, `applies only with quantization: bitsandbytes4bit (it is ${quantization})`);
  }
  const out: Record<string, unknown> = {};
  if (kw.trustRemoteCode !== undefined) out['trust_remote_code'] = kw.trustRemoteCode;
  if (kw.codeRevision !== undefined) out['code_revision'] = kw.codeRevision;
  if (kw.lowCpuMemUsage !== undefined) out['low_cpu_mem_usage'] = kw.lowCpuMemUsage;
  if (kw.useSafetensors !== undefined) out['use_safetensors'] = kw.useSafetensors;
  if (kw.subfolder !== undefined) out['subfolder'] = kw.subfolder;
  if (kw.ropeScaling !== undefined) out['rope_scaling'] = ropeScalingConfig(kw.ropeScaling);
  if (kw.bnb4bitQuantType !== undefined) out['bnb_4bit_quant_type'] = kw.bnb4bitQuantType;
  if (kw.bnb4bitUseDoubleQuant !== undefined) out['bnb_4bit_use_double_quant'] = kw.bnb4bitUseDoubleQuant;
  return Object.keys(out).length === 0 ? null : JSON.stringify(out);
}

/** vLLM CLI flags; rope_scaling goes into the --hf-overrides JSON the caller builds. */
export function vllmModelKwargsArgs(
  kw: VllmModelKwargs | undefined,
  at = 'spec.backends[vllm].vllm.modelKwargs',
): string[] {
  if (kw === undefined) return [];
  checkCodeRevision(kw, at);
  const args: string[] = [];
  if (kw.trustRemoteCode === true) args.push('--trust-remote-code');
  if (kw.codeRevision !== undefined) args.push('--code-revision', kw.codeRevision);
  if (kw.tokenizerRevision !== undefined) args.push('--tokenizer-revision', kw.tokenizerRevision);
  return args;
}
