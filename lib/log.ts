// The one root logger. Children carry { experiment, run, reconcileID }; secrets are redacted.
import { pino, type Logger } from 'pino';

export type { Logger };

const level = process.env['LLEM_LOG_LEVEL'] ?? 'info';

export const rootLogger: Logger = pino({
  level,
  base: { app: 'llem' },
  redact: {
    paths: ['token', 'password', '*.token', '*.password', 'headers.authorization', 'env.HF_TOKEN', '*.HF_TOKEN'],
    censor: '[redacted]',
  },
}, pino.destination({ fd: 2, sync: false }));

export function childLogger(bindings: Record<string, string | number>): Logger {
  return rootLogger.child(bindings);
}
