/**
 * Picks the analyzer from the config: Gemini when selected (ANALYZER=gemini or a GEMINI_API_KEY),
 * else the local offline analyzer.
 */
import type { Config } from '../config.js';
import { ConfigError } from '../config.js';
import type { Logger } from '../telemetry/logger.js';
import { createLocalAnalyzer } from './local/local-analyzer.js';
import type { Analyzer } from './types.js';

/** Creates the configured analyzer. */
export function createAnalyzer(
  config: Pick<Config, 'analyzer' | 'ANALYSIS_THREADS' | 'ANALYSIS_TIMEOUT_MS'>,
  logger: Logger,
): Analyzer {
  if (config.analyzer === 'gemini') {
    // The Gemini analyzer arrives with issue 4; refuse clearly rather than fall back silently.
    throw new ConfigError(['ANALYZER=gemini: the Gemini analyzer is not available in this build; unset ANALYZER and GEMINI_API_KEY']);
  }
  return createLocalAnalyzer({
    threads: config.ANALYSIS_THREADS,
    timeoutMs: config.ANALYSIS_TIMEOUT_MS,
    logger: logger.child({ component: 'local-analyzer' }),
  });
}
