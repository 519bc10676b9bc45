// Rules across several fields of one resolved configuration (after the sweep point is applied).
// `field` is the dotted path the message is about (`vllm.tensorParallelSize`); `alsoFields` are the
// other fields involved, so a violation caused by a swept value can be told from a plain spec error.
import type { ModelSpec, TokenDistribution, WorkloadSpec } from './spec.ts';
import type { ResolvedBackend } from './matrix.ts';

export interface RuleViolation {
  field: string;
  message: string;
  alsoFields: string[];
}

export interface RuleWarning {
  field: string;
  message: string;
}

interface ConfigurationContent {
  backend: ResolvedBackend;
  model: ModelSpec;
  workload: WorkloadSpec;
  gpusPerRun: number;
}

/** Longest possible value of a token-length distribution, or undefined when unbounded. */
export function distributionMax(d: TokenDistribution): number | undefined {
  if (d.distribution === 'fixed') return d.mean;
  return d.max;
}

export function parallelismMessage(tp: number, pp: number, gpusPerRun: number): string {
  return `tensorParallelSize (${tp}) x pipelineParallelSize (${pp}) needs ${tp * pp} GPUs but placement.gpusPerRun is ${gpusPerRun}; raise gpusPerRun or lower the parallel sizes`;
}

export const RATE_REQUIRED_MESSAGE = 'required when workload.mode is "rate"';

/** The PyTorch server shards each layer's heads and MLP over its ranks and uses exactly its GPUs. */
function pytorchParallelism(c: ConfigurationContent, out: RuleViolation[]): void {
  if (c.backend.type !== 'pytorch') return;
  const p = c.backend.params;
  const tp = p.tensorParallelSize;
  if (tp > c.gpusPerRun) {
    out.push({
      field: 'pytorch.tensorParallelSize',
      alsoFields: ['placement.gpusPerRun'],
      message: `tensorParallelSize (${tp}) needs ${tp} GPUs but placement.gpusPerRun is ${c.gpusPerRun}; raise gpusPerRun or lower tensorParallelSize`,
    });
  }
  if (tp === 1) return;
  const random = c.model.source.random;
  const sizes: Array<[string, number | undefined]> = [
    ['numHeads', random?.numHeads],
    ['numKvHeads', random?.numKvHeads],
    ['intermediateSize', random?.intermediateSize],
  ];
  for (const [name, size] of sizes) {
    if (size !== undefined && size % tp !== 0)
      out.push({
        field: 'pytorch.tensorParallelSize',
        alsoFields: [`model.source.random.${name}`],
        message: `tensorParallelSize (${tp}) must divide the model's ${name} (${size}): each rank holds an equal share`,
      });
  }
  const eagerOnly: Array<[string, boolean]> = [
    ['pytorch.cudaGraphs', p.cudaGraphs],
    ['pytorch.compile', p.compile],
    ['pytorch.quantization', p.quantization !== 'none'],
  ];
  for (const [field, on] of eagerOnly) {
    if (on)
      out.push({
        field,
        alsoFields: ['pytorch.tensorParallelSize'],
        message: `tensorParallelSize ${tp} runs the model eager and unquantised; turn ${field.slice(8)} off or set tensorParallelSize: 1`,
      });
  }
}

function parallelism(c: ConfigurationContent, out: RuleViolation[], warnings: RuleWarning[]): void {
  const { backend } = c;
  if (backend.type === 'pytorch') return pytorchParallelism(c, out);
  const t = backend.type;
  const { tensorParallelSize: tp, pipelineParallelSize: pp } = backend.params;
  if (tp * pp > c.gpusPerRun) {
    out.push({
      field: `${t}.tensorParallelSize`,
      alsoFields: [`${t}.pipelineParallelSize`, 'placement.gpusPerRun'],
      message: parallelismMessage(tp, pp, c.gpusPerRun),
    });
  } else if (tp * pp < c.gpusPerRun) {
    warnings.push({
      field: `${t}.tensorParallelSize`,
      message: `tensorParallelSize x pipelineParallelSize = ${tp * pp} uses fewer GPUs than placement.gpusPerRun (${c.gpusPerRun}); the others idle but still draw power`,
    });
  }
  const random = c.model.source.random;
  if (random !== undefined && random.numHeads % tp !== 0) {
    out.push({
      field: `${t}.tensorParallelSize`,
      alsoFields: ['model.source.random.numHeads'],
      message: `tensorParallelSize (${tp}) must divide the model's numHeads (${random.numHeads})`,
    });
  }
}

function randomArchitecture(c: ConfigurationContent, out: RuleViolation[]): void {
  const random = c.model.source.random;
  if (random === undefined) return;
  if (random.hiddenSize % random.numHeads !== 0) {
    out.push({
      field: 'model.source.random.hiddenSize',
      alsoFields: ['model.source.random.numHeads'],
      message: `hiddenSize (${random.hiddenSize}) must be a multiple of numHeads (${random.numHeads})`,
    });
  }
  if (random.numHeads % random.numKvHeads !== 0) {
    out.push({
      field: 'model.source.random.numKvHeads',
      alsoFields: ['model.source.random.numHeads'],
      message: `numKvHeads (${random.numKvHeads}) must divide numHeads (${random.numHeads})`,
    });
  }
}

/** A context length set on the backend must hold the longest synthetic request. */
function contextLength(
  c: ConfigurationContent,
  field: string,
  maxModelLen: number | undefined,
  out: RuleViolation[],
): void {
  const synthetic = c.workload.dataset.synthetic;
  if (maxModelLen === undefined || synthetic === undefined) return;
  const inMax = distributionMax(synthetic.inputTokens);
  const outMax = c.workload.sampling.maxTokens ?? distributionMax(synthetic.outputTokens);
  if (inMax !== undefined && outMax !== undefined && inMax + outMax > maxModelLen) {
    out.push({
      field,
      alsoFields: [
        'workload.dataset.synthetic.inputTokens',
        'workload.dataset.synthetic.outputTokens',
        'workload.sampling.maxTokens',
      ],
      message: `maxModelLen (${maxModelLen}) is shorter than the longest request (${inMax} input + ${outMax} output tokens)`,
    });
  }
}

function vllmRules(c: ConfigurationContent, out: RuleViolation[], warnings: RuleWarning[]): void {
  if (c.backend.type !== 'vllm') return;
  const p = c.backend.params;
  const spec = p.speculative;
  if (spec !== undefined && spec.model === undefined && ['draftModel', 'eagle', 'eagle3'].includes(spec.method)) {
    out.push({
      field: 'vllm.speculative.model',
      alsoFields: ['vllm.speculative.method'],
      message: `required when speculative.method is "${spec.method}"`,
    });
  }
  contextLength(c, 'vllm.maxModelLen', p.maxModelLen, out);
  if (c.workload.mode === 'concurrency' && c.workload.concurrency > p.maxNumSeqs) {
    warnings.push({
      field: 'workload.concurrency',
      message: `concurrency (${c.workload.concurrency}) is above vllm.maxNumSeqs (${p.maxNumSeqs}); the excess queues in the server`,
    });
  }
}

function pytorchRules(c: ConfigurationContent, out: RuleViolation[]): void {
  if (c.backend.type !== 'pytorch') return;
  const p = c.backend.params;
  contextLength(c, 'pytorch.maxModelLen', p.maxModelLen, out);
  if (!p.cudaGraphs) return;
  if (p.compile) {
    out.push({
      field: 'pytorch.cudaGraphs',
      alsoFields: ['pytorch.compile'],
      message: 'cudaGraphs and compile are alternatives; set one of them',
    });
  }
  if (p.quantization !== 'none') {
    out.push({
      field: 'pytorch.cudaGraphs',
      alsoFields: ['pytorch.quantization'],
      message: `cudaGraphs needs an unquantised model (quantization is "${p.quantization}"); set quantization: none or cudaGraphs: false`,
    });
  }
}

/** What of spec.measurement the rules need (absent: the defaults, no window extension). */
export interface RuleMeasurement {
  extendToMinWindow: boolean;
  minWindowSeconds: number;
}

function workloadRules(
  c: ConfigurationContent,
  m: RuleMeasurement | undefined,
  out: RuleViolation[],
  warnings: RuleWarning[],
): void {
  const w = c.workload;
  // With extendToMinWindow the agent keeps issuing requests until the window is long enough, so the
  // closed loop does fill even when requests < concurrency.
  const extends_ = m !== undefined && m.extendToMinWindow && m.minWindowSeconds > 0;
  if (w.mode === 'rate' && w.ratePerSecond === undefined) {
    out.push({ field: 'workload.ratePerSecond', alsoFields: ['workload.mode'], message: RATE_REQUIRED_MESSAGE });
  }
  if (w.mode === 'concurrency' && w.concurrency > w.requests && !extends_) {
    warnings.push({
      field: 'workload.concurrency',
      message: `concurrency (${w.concurrency}) is above requests (${w.requests}); the closed loop never fills`,
    });
  }
}

export const PYTORCH_GPUS_MESSAGE =
  'the pytorch backend serves from exactly pytorch.tensorParallelSize GPUs (default 1); set placement.gpusPerRun to it, or raise pytorch.tensorParallelSize';
export const TENSORRT_RANDOM_MESSAGE =
  'trtllm-serve cannot load random weights; use model.source.huggingFace or pvc, or the pytorch/vllm backend for random models';
export const TENSORRT_REVISION_MESSAGE =
  'trtllm-serve has no revision option; put that revision on a PVC and use model.source.pvc, or leave model.revision at "main"';

/**
 * What the backend renderers (lib/backends) refuse, stated as rules so `llem validate`, the CRD's CEL
 * rules and the controller refuse it too, before any pod is built (issue #16: what validates renders).
 */
function renderRefusals(c: ConfigurationContent, out: RuleViolation[]): void {
  if (c.backend.type === 'pytorch' && c.gpusPerRun > c.backend.params.tensorParallelSize) {
    out.push({
      field: 'placement.gpusPerRun',
      alsoFields: ['pytorch.tensorParallelSize'],
      message: `${PYTORCH_GPUS_MESSAGE} (gpusPerRun ${c.gpusPerRun}, tensorParallelSize ${c.backend.params.tensorParallelSize}): the other GPUs would idle inside the measurement`,
    });
  }
  if (c.backend.type !== 'tensorrt') return;
  if (c.model.source.random !== undefined)
    out.push({ field: 'model.source.random', alsoFields: [], message: TENSORRT_RANDOM_MESSAGE });
  if (c.model.source.huggingFace !== undefined && c.model.revision !== 'main') {
    out.push({
      field: 'model.revision',
      alsoFields: [],
      message: `${TENSORRT_REVISION_MESSAGE} (got "${c.model.revision}")`,
    });
  }
}

export function configurationRuleViolations(
  c: ConfigurationContent,
  measurement?: RuleMeasurement,
): {
  violations: RuleViolation[];
  warnings: RuleWarning[];
} {
  const violations: RuleViolation[] = [];
  const warnings: RuleWarning[] = [];
  renderRefusals(c, violations);
  parallelism(c, violations, warnings);
  randomArchitecture(c, violations);
  vllmRules(c, violations, warnings);
  pytorchRules(c, violations);
  workloadRules(c, measurement, violations, warnings);
  return { violations, warnings };
}
