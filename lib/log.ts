// The one root logger. Children carry { experiment, run, reconcileID }; secrets are redacted.
import { pino, type Logger } from 'pino';
import { activeTraceIds } from './telemetry/index.ts';

export type { Logger };

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];
const requested = process.env['LLEM_LOG_LEVEL'] ?? 'info';
/** A bad LLEM_LOG_LEVEL, for the CLI to refuse (exit 2); logging falls back to info meanwhile. */
export const LOG_LEVEL_PROBLEM: string | null = LEVELS.includes(requested) ? null : `LLEM_LOG_LEVEL: "${requested}" is not one of ${LEVELS.join(', ')}`;
const level = LOG_LEVEL_PROBLEM === null ? requested : 'info';

export const rootLogger: Logger = pino({
  level,
  base: { app: 'llem' },
  // trace_id/span_id of the active OpenTelemetry span: log lines join their trace (nothing when untraced).
  mixin: activeTraceIds,
  redact: {
    paths: ['token', 'password', '*.token', '*.password', 'headers.authorization', 'env.HF_TOKEN', '*.HF_TOKEN'],
    censor: '[redacted]',
  },
}, pino.destination({ fd: 2, sync: false }));

export function childLogger(bindings: Record<string, string | number>): Logger {
  return rootLogger.child(bindings);
}
