/**
 * Picks the analyzer from the config: Gemini when selected (ANALYZER=gemini or a GEMINI_API_KEY),
 * else the local offline analyzer.
 */
import type { Config } from '../config.js';
import { ConfigError } from '../config.js';
import type { RateLimiter } from '../ratelimit/types.js';
import type { Logger } from '../telemetry/logger.js';
import { createGeminiAnalyzer, type CircuitBreakerHook, type ModelCallEvent } from './gemini/gemini-analyzer.js';
import { createLocalAnalyzer } from './local/local-analyzer.js';
import type { Analyzer } from './types.js';

/** The config keys {@link createAnalyzer} reads. */
export type AnalyzerConfig = Pick<
  Config,
  | 'analyzer'
  | 'ANALYSIS_THREADS'
  | 'ANALYSIS_TIMEOUT_MS'
  | 'ANALYSIS_MAX_HEAP_MB'
  | 'GEMINI_API_KEY'
  | 'GEMINI_MODEL'
  | 'GEMINI_BASE_URL'
  | 'GEMINI_TEMPERATURE'
  | 'GEMINI_TIMEOUT_MS'
  | 'GEMINI_MAX_RETRIES'
  | 'GEMINI_RETRY_BASE_MS'
  | 'GEMINI_RETRY_CAP_MS'
  | 'GEMINI_MAX_INVALID_OUTPUT_RETRIES'
>;

/** Process-wide collaborators of the Gemini analyzer (the local analyzer ignores them). */
export interface AnalyzerDependencies {
  /** The fleet-wide limiter, e.g. `DynamoDbRateLimiter.fromConfig(aws.doc, config)`. @defaultValue none */
  rateLimiter?: RateLimiter;
  /** The process's breaker, e.g. `CircuitBreaker.fromConfig(config)`. @defaultValue none */
  circuitBreaker?: CircuitBreakerHook;
  /** Metrics hook called after every model HTTP call. @defaultValue none */
  onModelCall?: (event: ModelCallEvent) => void;
}

/**
 * Creates the configured analyzer.
 * @throws ConfigError when Gemini is selected without GEMINI_API_KEY and without a GEMINI_BASE_URL
 *   override (a fake server needs no real key).
 */
export function createAnalyzer(config: AnalyzerConfig, logger: Logger, deps: AnalyzerDependencies = {}): Analyzer {
  if (config.analyzer === 'gemini') {
    if (!config.GEMINI_API_KEY && !config.GEMINI_BASE_URL) {
      throw new ConfigError(['ANALYZER=gemini: set GEMINI_API_KEY (or GEMINI_BASE_URL for a fake server)']);
    }
    return createGeminiAnalyzer({
      // A fake server at GEMINI_BASE_URL ignores the key; the SDK still wants one.
      apiKey: config.GEMINI_API_KEY ?? 'unused-fake-server-key',
      model: config.GEMINI_MODEL,
      ...(config.GEMINI_BASE_URL ? { baseUrl: config.GEMINI_BASE_URL } : {}),
      temperature: config.GEMINI_TEMPERATURE,
      timeoutMs: config.GEMINI_TIMEOUT_MS,
      retry: { maxAttempts: config.GEMINI_MAX_RETRIES + 1, baseMs: config.GEMINI_RETRY_BASE_MS, capMs: config.GEMINI_RETRY_CAP_MS },
      maxInvalidOutputRetries: config.GEMINI_MAX_INVALID_OUTPUT_RETRIES,
      ...(deps.rateLimiter ? { rateLimiter: deps.rateLimiter } : {}),
      ...(deps.circuitBreaker ? { circuitBreaker: deps.circuitBreaker } : {}),
      ...(deps.onModelCall ? { onModelCall: deps.onModelCall } : {}),
      logger: logger.child({ component: 'gemini-analyzer' }),
    });
  }
  return createLocalAnalyzer({
    threads: config.ANALYSIS_THREADS,
    timeoutMs: config.ANALYSIS_TIMEOUT_MS,
    maxHeapMb: config.ANALYSIS_MAX_HEAP_MB,
    logger: logger.child({ component: 'local-analyzer' }),
  });
}
