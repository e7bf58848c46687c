/**
 * Everything the pipeline steps need, built once per process from the config.
 */
import type { CircuitBreaker } from '../analysis/circuit-breaker.js';
import { createProcessAnalyzer } from '../analysis/factory.js';
import type { Analyzer } from '../analysis/types.js';
import { BlobStore } from '../aws/blob-store.js';
import { createAwsClients, type AwsClients } from '../aws/clients.js';
import { DeadLetters } from '../store/dead-letters.js';
import { WebhookDeliveries } from '../store/webhook-deliveries.js';
import { WebhookTargetGuard } from '../webhooks/target-guard.js';
import { FilesTable } from '../aws/files-table.js';
import { StatusTable } from '../aws/status-table.js';
import { TenantStore } from '../store/tenants.js';
import { UsageMeter } from '../store/usage-meter.js';
import type { Config } from '../config.js';
import type { PdfExtractor } from '../pdf/types.js';
import { Queue } from '../stream/queue.js';
import { instrumentAnalyzer, modelCallRecorder } from '../telemetry/instrument.js';
import type { Logger } from '../telemetry/logger.js';
import { CIRCUIT_STATE_VALUE, createMetrics, type Metrics } from '../telemetry/metrics.js';

/** Shared dependencies of the pipeline steps. */
export interface PipelineContext {
  config: Config;
  logger: Logger;
  aws: AwsClients;
  blobs: BlobStore;
  status: StatusTable;
  files: FilesTable;
  /** Tenants, plans and API keys. */
  tenants: TenantStore;
  /** Usage metering and quota admission. */
  usage: UsageMeter;
  deadLetters: DeadLetters;
  /** Webhook deliveries (the persisted delivery schedule). */
  webhooks: WebhookDeliveries;
  /** The server-side request forgery guard of webhook targets (WEBHOOK_ALLOWED_CIDRS). */
  webhookGuard: WebhookTargetGuard;
  /** Producer of the stream's events. */
  queue: Queue;
  extractor: PdfExtractor;
  analyzer: Analyzer;
  /** The model's circuit breaker, when the analyzer has one (Gemini). */
  breaker?: CircuitBreaker;
  /** The process's metrics, recorded by the steps (served at /metrics). */
  metrics: Metrics;
}

/**
 * Builds the context. The caller provides the extractor; the analyzer is the configured one
 * (with its fleet-wide rate limit and breaker) unless given (tests pick their own).
 */
export function createPipelineContext(
  config: Config,
  logger: Logger,
  parts: { extractor: PdfExtractor; analyzer?: Analyzer; aws?: AwsClients; metrics?: Metrics; webhookGuard?: WebhookTargetGuard },
): PipelineContext {
  const aws = parts.aws ?? createAwsClients(config);
  const metrics = parts.metrics ?? createMetrics('docorch');
  const configured = parts.analyzer
    ? { analyzer: parts.analyzer }
    : createProcessAnalyzer(config, logger, aws.doc, { onModelCall: modelCallRecorder(metrics) });
  if (configured.breaker) {
    const breaker = configured.breaker;
    breaker.onStateChange((change) => metrics.circuitState.set(CIRCUIT_STATE_VALUE[change.to]));
    metrics.circuitState.set(CIRCUIT_STATE_VALUE[breaker.state]);
  }
  return {
    ...configured,
    analyzer: instrumentAnalyzer(configured.analyzer, metrics),
    metrics,
    config,
    logger,
    aws,
    blobs: new BlobStore(aws.s3),
    status: new StatusTable(aws.doc, config.STATUS_TABLE, config.TENANTS_TABLE, (status) => metrics.documentsFinished.inc({ status })),
    files: new FilesTable(aws.doc, config.FILES_TABLE),
    tenants: new TenantStore(aws.doc, config.TENANTS_TABLE, {
      authCacheTtlMs: config.AUTH_CACHE_TTL_MS,
      negativeCacheSize: config.AUTH_NEGATIVE_CACHE_SIZE,
      onLookup: () => metrics.authLookups.inc(),
    }),
    usage: new UsageMeter(aws.doc, config.TENANTS_TABLE),
    deadLetters: new DeadLetters(aws.doc, config.DEAD_LETTERS_TABLE),
    webhooks: new WebhookDeliveries(aws.doc, config.WEBHOOKS_TABLE),
    webhookGuard: parts.webhookGuard ?? new WebhookTargetGuard({ allowedCidrs: config.WEBHOOK_ALLOWED_CIDRS }),
    queue: new Queue(aws.kinesis, config.STREAM_NAME),
    extractor: parts.extractor,
  };
}

/** Releases threads and sockets. */
export async function closePipelineContext(ctx: PipelineContext): Promise<void> {
  await Promise.allSettled([ctx.extractor.close(), ctx.analyzer.close()]);
  ctx.aws.destroy();
}
