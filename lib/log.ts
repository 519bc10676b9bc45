// The one root logger: JSON lines on stderr (never stdout, which carries human or --json output).
// Children carry { experiment, run, reconcileID }; secrets are redacted. The level comes from
// LLEM_LOG_LEVEL (default warn; `llem controller` and `llem agent` default to info, see cli/main.ts).
import { pino, type Logger } from 'pino';
import { logLevelProblem, requestedLogLevel } from './log-level.ts';
import { activeTraceIds } from './telemetry/index.ts';

export type { Logger };

/** A bad LLEM_LOG_LEVEL, for the CLI to refuse (exit 2); logging falls back to the default meanwhile. */
export const LOG_LEVEL_PROBLEM: string | null = logLevelProblem(process.env['LLEM_LOG_LEVEL'], 'LLEM_LOG_LEVEL');

export const rootLogger: Logger = pino(
  {
    level: requestedLogLevel(),
    base: { app: 'llem' },
    // trace_id/span_id of the active OpenTelemetry span: log lines join their trace (nothing when untraced).
    mixin: activeTraceIds,
    redact: {
      paths: ['token', 'password', '*.token', '*.password', 'headers.authorization', 'env.HF_TOKEN', '*.HF_TOKEN'],
      censor: '[redacted]',
    },
  },
  pino.destination({ fd: 2, sync: false }),
);

/**
 * A child of `parent` with only the bindings it does not already carry: pino writes every binding
 * of every ancestor, so binding `run` twice would put the key twice on each line.
 */
export function childOf(parent: Logger, bindings: Record<string, string | number>): Logger {
  const existing = parent.bindings();
  const fresh = Object.fromEntries(Object.entries(bindings).filter(([k]) => !(k in existing)));
  return Object.keys(fresh).length === 0 ? parent : parent.child(fresh);
}

export function childLogger(bindings: Record<string, string | number>): Logger {
  return childOf(rootLogger, bindings);
}
