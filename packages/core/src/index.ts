// Public API of @docorch/core: explicit named re-exports, grouped by concept.

// config, errors, telemetry
export { loadConfig, configReference, describeConfig, configSchema, ConfigError, type Config } from './config.js';
export {
  DocorchError,
  ERROR_CODES,
  isDocorchError,
  toDocorchError,
  type ErrorCode,
  type RetryClass,
  type DocorchErrorOptions,
} from './errors.js';
export { createLogger, REDACT_PATHS, type Logger, type CreateLoggerOptions } from './telemetry/logger.js';
export { createMetrics, CIRCUIT_STATE_VALUE, type Metrics } from './telemetry/metrics.js';
export { EmfPublisher, type EmfOptions } from './telemetry/emf.js';
export {
  activeTraceIds,
  contextFrom,
  currentTraceparent,
  initTracing,
  SpanKind,
  withSpan,
  type Span,
  type SpanOptions,
  type Tracing,
  type TracingOptions,
  type TracesExporter,
} from './telemetry/tracing.js';
export { instrumentAnalyzer, modelCallRecorder } from './telemetry/instrument.js';
export { startProcess, type ProcessBasics } from './app/process.js';
export { resolveSecrets } from './app/secrets.js';
export { threadScript, type ThreadScript } from './threads/thread-script.js';

// analysis
export {
  ANALYSIS_KINDS,
  ENTITY_TYPES,
  ZERO_USAGE,
  addUsage,
  sentimentLabel,
  type AnalysisKind,
  type AnalyzeOptions,
  type Analyzer,
  type ChunkAnalysis,
  type ChunkInput,
  type Entity,
  type EntityType,
  type FailedPage,
  type PageImage,
  type PageText,
  type Sentiment,
  type SummaryReduceInput,
  type SummaryReduceOutput,
  type Usage,
} from './analysis/types.js';
export { createAnalyzer, createProcessAnalyzer, type AnalyzerConfig, type AnalyzerDependencies, type ProcessAnalyzer } from './analysis/factory.js';
export { createLocalAnalyzer, type LocalAnalyzerOptions } from './analysis/local/local-analyzer.js';

// jobs
export {
  JOB_STATUSES,
  TERMINAL_STATUSES,
  CHUNK_STATUSES,
  assertTransition,
  canTransition,
  progressOf,
  statusesLeadingTo,
  type ChunkPlan,
  type ChunkStatus,
  type Job,
  type JobMode,
  type JobStatus,
  type Progress,
  type RecordedError,
} from './jobs/model.js';
export { planChunks, planExtractedPages, planChunksByTokens, planFromStarts, chunkStarts, estimatePageTokens, tokenPlanOptions, TokenChunker, IMAGE_TILE_TOKENS, type TokenPlanOptions, type ChunkSettings } from './jobs/planner.js';
export {
  RESULT_SCHEMA_VERSION,
  chunkResultFrom,
  failedChunkResult,
  type ChunkResult,
  type DocumentResult,
} from './jobs/result.js';
export {
  assembleOptionsFrom,
  assembleResult,
  mergeEntities,
  mergeSentiment,
  reduceSummaries,
  type AssembleInput,
  type AssembleOptions,
} from './jobs/assemble.js';

// pdf
export { parsePageRange, isPageRangeSyntax } from './pdf/page-range.js';
export { unavailableExtractor } from './pdf/unavailable.js';
export { FileGapError } from './pdf/types.js';
export type { ExtractedPage, ExtractOptions, ExtractionResult, FileGap, InspectOptions, PdfExtractor, PdfInfo } from './pdf/types.js';
export {
  ProcessPdfExtractor,
  createPdfExtractor,
  planSlices,
  type CreatePdfExtractorOptions,
  type PdfExtractorConfig,
  type PdfExtractorStats,
} from './pdf/extractor.js';
export { normalizePageText } from './pdf/text.js';

// aws
export { createAwsClients, unsignedBulkPayloads, type AwsClients } from './aws/clients.js';
export { BlobStore, type UploadOptions } from './aws/blob-store.js';
export { chunkInputKey, chunkResultKey, documentPrefix, resultKey, sourceKey } from './aws/object-keys.js';
export { StatusTable, BY_TENANT_INDEX, isTransientTransactionError, documentPk, type JobPage, type JobPatch } from './aws/status-table.js';
export { FilesTable, type FileRecord, type IdempotencyRecord } from './aws/files-table.js';
export {
  generateApiKey,
  hashApiKey,
  keyIdOf,
  parseDuration,
  PLAN_FIELDS,
  resolvePlan,
  TENANT_ID_PATTERN,
  TenantStore,
  type ApiKeyInfo,
  type AuthFailure,
  type Plan,
  type Principal,
  type Tenant,
  type TenantStatus,
  type TenantStoreOptions,
} from './store/tenants.js';
export { TenantSlots } from './pipeline/tenant-slots.js';
export { idempotencyRequestHash, runIdempotent, type IdempotentOutcome } from './pipeline/idempotency.js';
export { RateLimitCounters, type WindowHits } from './store/rate-limits.js';
export { msUntilNextMonth, UsageMeter, usageMonth, type Admission, type QuotaLimits, type UsageReport } from './store/usage-meter.js';
export {
  BUCKET_NAME_KEYS,
  DEFAULT_SHARD_COUNT,
  FILES_TABLE_KEYS,
  LEASES_TABLE_KEYS,
  STATUS_TABLE_KEYS,
  TABLE_SCHEMAS,
  TENANTS_TABLE_KEYS,
  deleteResources,
  ensureResources,
  type EnsureResourcesOptions,
  type EnsureResourcesReport,
  type ResourceClients,
  type ResourceNames,
  type TableNameKey,
  type TableSchema,
} from './aws/resources.js';

// pipeline
export { createPipelineContext, closePipelineContext, type PipelineContext } from './pipeline/context.js';
export { analyzeChunk, chunkPagesOf, toPageText, type ChunkContext } from './pipeline/analyze-chunks.js';
export { discardStaged, newDocumentId, stageSource, type StagedSource, type Submission } from './pipeline/submission.js';
export { DEFAULT_TAIL_BYTES, inspectSubmission, PartialCopyWriter, wholeLocalCopy, type PartialCopyOptions } from './pipeline/local-copy.js';
export { runSync, extractSubmission, type RunSyncOptions, type SyncOutcome } from './pipeline/sync.js';


// stream: KCL lease protocol (docs/lease-lifecycle.md)
export {
  InvalidCheckpointError,
  LEASE_DEFAULTS,
  LeaseAttribute,
  LeaseCoordinator,
  LeaseLostError,
  LeaseRefresher,
  LeaseRenewer,
  LeaseTaker,
  SentinelCheckpoint,
  SequenceTracker,
  ShardCheckpointer,
  assertCheckpointMayFollow,
  compareExtendedSequenceNumbers,
  compareSequenceNumbers,
  isSequenceNumber,
  isShardEnd,
  isValidCheckpoint,
  leaseCheckpoint,
  leaseFromItem,
  newLease,
  renewIntervalFor,
  systemClock,
  systemScheduler,
  takeIntervalFor,
  toLease,
  type CheckpointWriter,
  type Clock,
  type ExtendedSequenceNumber,
  type HeldLease,
  type InvalidCheckpointReason,
  type Lease,
  type LeaseCoordinatorEvents,
  type LeaseCoordinatorOptions,
  type LeaseCoordinatorState,
  type LeaseLostReason,
  type LeaseRefresherOptions,
  type LeaseRenewerOptions,
  type LeaseTakerOptions,
  type LeaseTimingOptions,
  type LostLease,
  type NewLease,
  type RenewalResult,
  type Scheduler,
  type TakePlan,
  type TimerHandle,
} from './stream/leases/index.js';

// stream: events, producer, consumer
export {
  EVENT_PAYLOADS,
  createEvent,
  decodeEvent,
  encodeEvent,
  type EventPayload,
  type EventType,
  type StreamEvent,
} from './stream/events.js';
export { Queue, type QueueItem, type QueueOptions } from './stream/queue.js';
export {
  Worker,
  type DeadRecord,
  type FleetBalance,
  type Handlers,
  type RecordInfo,
  type WorkerEvents,
  type WorkerOptions,
  type WorkerState,
} from './stream/worker.js';
export { ShardConsumer, type ShardConsumerDeps } from './stream/shard-consumer.js';

// retry
export {
  backoffPolicy,
  fullJitterDelay,
  sleep,
  withRetry,
  type BackoffPolicy,
  type WithRetryOptions,
} from './retry/backoff.js';

// async pipeline
export { DeadLetters, deadLetterId, deadLetterKey, type DeadLetter, type DeadLetterDisposition } from './store/dead-letters.js';
export { deadLetterRecord, finishHeld, purgeDeadLetter, replayDeadLetter, type DeadRecordInput, type ReplayOutcome } from './pipeline/dead-letter.js';
export { Reconciler, reconcileJob, reconcileOnce, type ReconcileAction, type ReconcileOptions, type ReconcileReport, type ReconcilerOptions, type ReconcilerState } from './pipeline/reconcile.js';
export { TaskLease, type TaskLeaseOptions } from './claims/task-lease.js';
export { type ChunkRow, type ClaimOutcome, chunkSk } from './aws/status-table.js';
export { submitAsync } from './pipeline/submit.js';
export { splitDocument, resumeSplit, chunkPartitionKey, type ChunkInputObject } from './pipeline/split.js';
export { analysisCost, publishIfPredecessorFinished, releasedPending, releaseSuccessor, tenantWeight } from './pipeline/fair-share.js';
export { FairQueue, type FairLimit, type FairShare } from './resilience/fair-queue.js';
export { processChunk, type ChunkOutcome, type ChunkProcessorOptions } from './pipeline/process-chunk.js';
export { acquireChunkClaim, holdChunkClaim, type AcquireChunkClaimOptions, type ChunkClaimRef, type ChunkClaimStore, type HeldClaim, type HoldChunkClaimOptions } from './claims/chunk-claim.js';
export { assemblyClaimFree, holdAssembly, takeAssemblyClaim, type HeldAssembly } from './claims/assembly-claim.js';
export {
  assembleJob,
  assemblyOwnerFor,
  isReadyToAssemble,
  type AssembleJobOptions,
  type AssembleOutcome,
} from './pipeline/assemble-job.js';
export { deleteDocument, purgeDocument, type DeleteOutcome } from './pipeline/cancel.js';

// gemini, rate limits, circuit breaker
export {
  createGeminiAnalyzer,
  IMAGE_TOKEN_ESTIMATE,
  type CircuitBreakerHook,
  type GeminiAnalyzer,
  type GeminiAnalyzerOptions,
  type ModelCallEvent,
} from './analysis/gemini/gemini-analyzer.js';
export { PROMPT_VERSION } from './analysis/gemini/prompts.js';
export {
  CircuitBreaker,
  type CircuitBreakerConfig,
  type CircuitBreakerOptions,
  type CircuitPermit,
  type CircuitSnapshot,
  type CircuitState,
  type CircuitStateChange,
} from './analysis/circuit-breaker.js';
export type { RateLimiter } from './ratelimit/types.js';
export { DynamoDbRateLimiter, type DynamoDbRateLimiterOptions, type RateLimiterStats } from './ratelimit/dynamodb-rate-limiter.js';
export { MemoryRateLimiter, type MemoryRateLimiterOptions } from './ratelimit/memory-rate-limiter.js';
export { warmUp } from './pipeline/warm-up.js';
export { createDocument, type NewDocument } from './pipeline/submission.js';

// webhooks
export { WEBHOOK_EVENTS, webhookEventOf, type WebhookEvent } from './webhooks/events.js';

// document events (the API's Server-Sent Events)
export {
  decodeCursor,
  emptyCursor,
  encodeCursor,
  eventsSince,
  formatServerSentEvent,
  type DocumentEvent,
  type FeedCursor,
} from './events/document-feed.js';
export { SIGNATURE_HEADER, DEFAULT_TOLERANCE_SECONDS, newWebhookSecret, signWebhook, verifyWebhookSignature } from './webhooks/signature.js';
export { WebhookTargetGuard, systemResolver, type Resolver, type TargetGuardOptions, type VettedTarget } from './webhooks/target-guard.js';
export { createHttpSender, httpSender, type HttpSenderOptions, type WebhookSender, type WebhookResponse, type SendOptions } from './webhooks/transport.js';
export { WebhookDeliveries, DELIVERY_LOG_RETENTION_S, type WebhookDelivery, type DeliveryAttempt } from './store/webhook-deliveries.js';
export {
  deliveryView,
  isTerminalTransition,
  scheduleWebhooks,
  WebhookDispatcher,
  webhookBackoffMs,
  webhookEventId,
  webhookPayload,
  type WebhookDispatcherOptions,
} from './pipeline/webhooks.js';
