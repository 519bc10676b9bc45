// The public surface of api/: schemas, types and pure functions. No I/O anywhere in this folder.
export {
  API_GROUP,
  API_VERSION,
  API_VERSION_NAME,
  KIND,
  PLURAL,
  SHORT_NAME,
  BACKEND_TYPES,
  RESERVED_BACKEND_TYPES,
  BACKEND_PARAM_SCHEMAS,
  DTYPES,
  SWEEP_ROOTS,
  WORKLOAD_MODES,
  MEASUREMENT_ORDERS,
  FAILURE_POLICIES,
  MAX_SWEEP_AXES,
  Dns1123LabelSchema,
  ObjectMetaSchema,
  SecretKeyRefSchema,
  RandomArchitectureSchema,
  ModelSourceSchema,
  ModelSchema,
  PytorchParamsSchema,
  SpeculativeSchema,
  VllmParamsSchema,
  TensorrtParamsSchema,
  BackendSchema,
  SweepValueSchema,
  SweepSchema,
  TokenDistributionSchema,
  DatasetSchema,
  SamplingSchema,
  WorkloadSchema,
  MeasurementSchema,
  TolerationSchema,
  PodTemplateOverridesSchema,
  PlacementSchema,
  PolicySchema,
  EnergyExperimentSpecSchema,
  EnergyExperimentSchema,
} from './spec.ts';
export type {
  CelRule,
  BackendType,
  MeasurementOrder,
  SweepValue,
  EnergyExperiment,
  EnergyExperimentInput,
  EnergyExperimentSpec,
  EnergyExperimentSpecInput,
  ModelSpec,
  BackendSpec,
  BackendParams,
  PytorchParams,
  VllmParams,
  TensorrtParams,
  SweepSpec,
  WorkloadSpec,
  TokenDistribution,
  MeasurementSpec,
  PlacementSpec,
  PolicySpec,
} from './spec.ts';

export {
  StatSchema,
  METRIC_NAMES,
  MetricsSchema,
  EXPERIMENT_PHASES,
  RUN_PHASES,
  ProgressSchema,
  MAX_STATUS_RUNS,
  MAX_STATUS_CONFIGURATIONS,
  RunSummarySchema,
  ConfigurationResultSchema,
  BestSchema,
  ArtifactSchema,
  EnergyExperimentStatusSchema,
  progressSummary,
} from './status.ts';
export type {
  Stat,
  MetricName,
  ExperimentPhase,
  RunPhase,
  Progress,
  RunSummary,
  ConfigurationResult,
  Best,
  Artifact,
  EnergyExperimentStatus,
  EnergyExperimentStatusInput,
} from './status.ts';

export {
  CONDITION_TYPES,
  CONDITION_STATUSES,
  REASONS,
  ConditionSchema,
  getCondition,
  isConditionTrue,
  setCondition,
  initialConditions,
  sortConditions,
  conditionsEqual,
} from './conditions.ts';
export type { ConditionType, ConditionStatus, ConditionReason, Condition, ConditionUpdate } from './conditions.ts';

export {
  MAX_CONFIGURATIONS,
  MAX_RUNS,
  expandRunMatrix,
  executionOrder,
  configHash,
  shortHash,
  runId,
} from './matrix.ts';
export type {
  ResolvedBackend,
  SweepPoint,
  Configuration,
  PlannedRun,
  MatrixIssue,
  RejectedCombination,
  RunMatrix,
} from './matrix.ts';

export { configurationRuleViolations, distributionMax, parallelismMessage, RATE_REQUIRED_MESSAGE } from './rules.ts';
export type { RuleViolation, RuleWarning } from './rules.ts';

export { validateEnergyExperiment, issuesFromZod, knownFieldsAt } from './validation.ts';
export { manifestErrorMap } from './messages.ts';
export { energyExperimentCrd, structural, CRD_NAME, PRINTER_COLUMNS } from './crd.ts';
export type { SpecIssue, ValidationResult } from './validation.ts';

export { formatPath, withValueAt, didYouMean, canonicalJson } from './paths.ts';
export type { PathSegment } from './paths.ts';

export { isDns1123Label, sanitizeToken, DNS1123_LABEL_PATTERN } from './names.ts';
export {
  PROTOCOL_VERSION,
  SUBJECT_ROOT,
  MESSAGE_KINDS,
  GpuInfoSchema,
  EnvironmentSchema,
  HelloMessageSchema,
  ReadyMessageSchema,
  SketchMessageSchema,
  MARKS,
  PHASES,
  GpuSampleSchema,
  TelemetryMessageSchema,
  SummaryMessageSchema,
  AbortedMessageSchema,
  WireMessageSchema,
  StartSignalSchema,
  CONTROL_ROOT,
  dataSubject,
  experimentSubjectFilter,
  startSubject,
  messageId,
  encodeMessage,
  decodeMessage,
} from './protocol.ts';
export type {
  MessageKind,
  GpuInfo,
  Environment,
  Mark,
  Phase,
  GpuSample,
  WireMessage,
  HelloMessage,
  SketchMessage,
  TelemetryMessage,
  SummaryMessage,
  AbortedMessage,
  StartSignal,
  PublisherKey,
} from './protocol.ts';
