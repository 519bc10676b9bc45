// The bus: agents publish wire messages, the aggregator consumes them. NATS JetStream or in-process.
export type {
  Bus,
  CheckpointRecord,
  ConsumeOptions,
  Consumption,
  ControlSubscription,
  DeleteExperimentOptions,
  DeliveredMessage,
  Disposition,
  PublishAck,
} from './types.ts';
export { NatsBus, openNatsBus, DEAD_LETTER_HEADERS } from './nats.ts';
export { parseNatsBusOptions, NatsBusOptionsSchema } from './nats-options.ts';
export type { NatsBusOptions, NatsBusOptionsInput } from './nats-options.ts';
export { natsOptionsFromEnv, natsUrlProblem } from './nats-env.ts';
export { AGENT_CREDS_KEY, BusIssuer, CONTROLLER_INBOX, agentPermissions, formatCreds } from './identity.ts';
export type { AgentScope } from './identity.ts';
export type { NatsEnv } from './nats-env.ts';
export { InProcessBus } from './inprocess.ts';
export type { InProcessBusOptions } from './inprocess.ts';
export {
  DEAD_LETTER_ROOT,
  deadLetterSubject,
  experimentCheckpointKey,
  experimentDeadLetterFilter,
  subjectMatches,
} from './subjects.ts';
