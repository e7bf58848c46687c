/**
 * Picks the analyzer from the config: Gemini when selected (ANALYZER=gemini or a GEMINI_API_KEY),
 * else the local offline analyzer.
 */
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Config } from '../config.js';
import { DynamoDbRateLimiter } from '../ratelimit/dynamodb-rate-limiter.js';
import { CircuitBreaker, type CircuitBreakerConfig } from './circuit-breaker.js';
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
  | 'GEMINI_MAX_CHUNK_CHARS'
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
      maxChunkChars: config.GEMINI_MAX_CHUNK_CHARS,
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

/** The analyzer of a process with its fleet-wide collaborators. */
export interface ProcessAnalyzer {
  analyzer: Analyzer;
  /** The model's circuit breaker (Gemini only): workers stop taking chunks while it is open. */
  breaker?: CircuitBreaker;
}

/**
 * Creates the configured analyzer for a service process: with Gemini, one fleet-wide rate limit
 * (GEMINI_RPM, GEMINI_TPM) kept in DynamoDB, shared by every process, and a circuit breaker.
 */
export function createProcessAnalyzer(
  config: AnalyzerConfig & Pick<Config, 'RATE_LIMIT_TABLE' | 'GEMINI_RPM' | 'GEMINI_TPM'> & CircuitBreakerConfig,
  logger: Logger,
  doc: DynamoDBDocumentClient,
  deps: Pick<AnalyzerDependencies, 'onModelCall'> = {},
): ProcessAnalyzer {
  if (config.analyzer !== 'gemini') return { analyzer: createAnalyzer(config, logger) };
  const breaker = CircuitBreaker.fromConfig(config);
  breaker.onStateChange((change) => logger.warn({ circuit: change }, 'model circuit breaker changed state'));
  const analyzer = createAnalyzer(config, logger, {
    // GEMINI_RPM=0: no fleet-wide limit (e.g. provisioned throughput); the model's 429s still apply.
    ...(config.GEMINI_RPM > 0 ? { rateLimiter: DynamoDbRateLimiter.fromConfig(doc, config) } : {}),
    circuitBreaker: breaker,
    ...deps,
  });
  return { analyzer, breaker };
}
