/**
 * Structured logging (pino). Every log line about a document carries `tenantId`, `documentId`
 * and, for chunk work, `chunkIndex`: bind them with `logger.child({...})`.
 * Lines written inside a span carry its `traceId` and `spanId` (tracing.ts).
 * Secrets never reach a log: the redact list below covers the places they could appear.
 */
import { pino, type Logger, type LoggerOptions } from 'pino';
import { activeTraceIds } from './tracing.js';

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
  'config.OTEL_EXPORTER_OTLP_HEADERS',
  'OTEL_EXPORTER_OTLP_HEADERS',
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
    // The active span's trace id on every line: a document's lines in every process share it.
    mixin: activeTraceIds,
  });
}
