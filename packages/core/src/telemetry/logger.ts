/**
 * Structured logging (pino). Every log line about a document carries `tenantId`, `documentId`
 * and, for chunk work, `chunkIndex`: bind them with `logger.child({...})`.
 * Secrets never reach a log: the redact list below covers the places they could appear.
 */
import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

/** Paths pino replaces with "[redacted]" wherever they occur. */
export const REDACT_PATHS = [
  'apiKey',
  '*.apiKey',
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'headers.authorization',
  'GEMINI_API_KEY',
  '*.GEMINI_API_KEY',
  'config.GEMINI_API_KEY',
  'config.DEV_API_KEY',
];

/** Options of {@link createLogger}. */
export interface CreateLoggerOptions {
  /** Service name, logged as `service`. */
  service: string;
  /** pino level. @defaultValue 'info' */
  level?: LoggerOptions['level'];
  /** Extra bindings on every line. */
  base?: Record<string, unknown>;
}

/** Creates the process logger: JSON lines on stdout, secrets redacted. */
export function createLogger(options: CreateLoggerOptions): Logger {
  return pino({
    level: options.level ?? 'info',
    base: { service: options.service, pid: process.pid, ...options.base },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
}
