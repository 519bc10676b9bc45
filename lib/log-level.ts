// Which structured-log level applies, without loading pino (the CLI checks it before any command).
// Structured logs are for operators: interactive commands keep stderr to human lines and log only
// warn and above unless --log-level or LLEM_LOG_LEVEL asks for more (issue #19).

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const DEFAULT_LOG_LEVEL: LogLevel = 'warn';

export function isLogLevel(v: string): v is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(v);
}

/** The problem with `value` as a log level (named by `source`), or null when it is one. */
export function logLevelProblem(value: string | undefined, source: string): string | null {
  if (value === undefined || isLogLevel(value)) return null;
  return `${source}: "${value}" is not one of ${LOG_LEVELS.join(', ')}`;
}

/** The level from LLEM_LOG_LEVEL, the default when unset or invalid (the CLI refuses invalid first). */
export function requestedLogLevel(env: NodeJS.ProcessEnv = process.env): LogLevel {
  const v = env['LLEM_LOG_LEVEL'];
  return v !== undefined && isLogLevel(v) ? v : DEFAULT_LOG_LEVEL;
}
