/**
 * What every docorch process sets up first, in the same order: the validated config, the logger,
 * tracing (spans always made, exported per OTEL_TRACES_EXPORTER) and the metrics registry.
 * Shared by the API, the worker, the local aggregator and the Lambda.
 */
import { loadConfig, type Config } from '../config.js';
import { createLogger, type Logger } from '../telemetry/logger.js';
import { createMetrics, type Metrics } from '../telemetry/metrics.js';
import { initTracing, type Tracing } from '../telemetry/tracing.js';

/** A process's observability and config. */
export interface ProcessBasics {
  config: Config;
  logger: Logger;
  tracing: Tracing;
  metrics: Metrics;
}

/**
 * Loads the config from the environment and sets up logging, tracing and metrics for `service`.
 * @throws ConfigError naming every malformed variable.
 */
export function startProcess(service: string, env: NodeJS.ProcessEnv = process.env): ProcessBasics {
  const config = loadConfig(env);
  const logger = createLogger({ service, level: config.LOG_LEVEL });
  const tracing = initTracing({ service, exporters: config.OTEL_TRACES_EXPORTER });
  const metrics = createMetrics(service);
  return { config, logger, tracing, metrics };
}
