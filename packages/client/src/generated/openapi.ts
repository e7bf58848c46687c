// Generated from the API's OpenAPI document (components.schemas) by `pnpm openapi` (scripts/openapi.ts). Do not edit.

/**
 * Where the document is in its life.
 */
export type JobStatus =
  "queued" | "splitting" | "processing" | "assembling" | "completed" | "completed_with_errors" | "failed" | "cancelled";

export interface DocorchApiSchemas {
  UploadForm?: UploadForm;
  DocumentResult?: DocumentResult;
  Entity?: Entity;
  Sentiment?: Sentiment;
  ChunkResult?: ChunkResult;
  FailedPage?: FailedPage;
  ModelUsage?: ModelUsage;
  DocumentError?: DocumentError;
  Accepted?: Accepted;
  JobStatus?: JobStatus;
  DocumentLinks?: DocumentLinks;
  DocumentList?: DocumentList;
  Document?: Document;
  Progress?: Progress;
  DeliveryList?: DeliveryList;
  Delivery?: Delivery;
  DeliveryAttempt?: DeliveryAttempt;
  UsageReport?: UsageReport;
  Health?: Health;
  Readiness?: Readiness;
  Problem?: Problem;
}
export interface UploadForm {
  /**
   * auto: answer in the request when the file is small, else 202. sync: always try in the request (202 when its time budget runs out). async: always 202.
   */
  mode?: "auto" | "sync" | "async";
  /**
   * The pages to analyse, 1-based, e.g. `1-3,7`. Default: all.
   */
  pages?: string;
  /**
   * Pages analysed per model call. Default: chunks sized by tokens, pages packed into one call up to CHUNK_TARGET_TOKENS of text (scanned pages at their image cost), at most CHUNK_MAX_PAGES pages, and spread over at least CHUNK_MIN_COUNT chunks when the document is long enough.
   */
  pagesPerChunk?: number;
  /**
   * Comma-separated subset of summary, entities, keyPoints, sentiment. Default: all.
   */
  analyses?: string;
  /**
   * Called with document.* events when the document is finished (see the webhooks guide).
   */
  webhookUrl?: string;
  /**
   * The PDF (application/pdf).
   */
  file: string;
}
export interface DocumentResult {
  schemaVersion: 1;
  documentId: string;
  status: "completed" | "completed_with_errors" | "failed";
  pages: {
    total: number;
    analysed: number;
    selection: string;
  };
  analyzer: string;
  summary: string;
  keyPoints: string[];
  entities: Entity[];
  sentiment: Sentiment;
  chunks: ChunkResult[];
  failedPages: FailedPage[];
  /**
   * Pages read from their image (scanned).
   */
  ocrPages?: number[];
  usage: ModelUsage;
  createdAt: string;
}
export interface Entity {
  text: string;
  type: "PERSON" | "ORGANIZATION" | "LOCATION" | "DATE" | "MONEY" | "PERCENT" | "EMAIL" | "URL" | "OTHER";
  count: number;
  pages: number[];
}
export interface Sentiment {
  label: "positive" | "negative" | "neutral" | "mixed";
  score: number;
}
export interface ChunkResult {
  index: number;
  /**
   * [first, last] page of the chunk.
   *
   * @minItems 2
   * @maxItems 2
   */
  pages: [number, number];
  status: "succeeded" | "failed";
  summary: string;
  keyPoints: string[];
  entities: Entity[];
  sentiment: Sentiment;
  textLength: number;
  failedPages: FailedPage[];
  usage: ModelUsage;
  ocr?: true;
  ocrPages?: number[];
  error?: DocumentError;
}
export interface FailedPage {
  page: number;
  code: string;
}
export interface ModelUsage {
  inputTokens: number;
  outputTokens: number;
  modelCalls: number;
}
export interface DocumentError {
  code: string;
  message: string;
}
export interface Accepted {
  id: string;
  status: JobStatus;
  links: DocumentLinks;
}
export interface DocumentLinks {
  self: string;
  result: string;
  /**
   * Server-Sent Events of this document (status, chunk completions).
   */
  events: string;
}
export interface DocumentList {
  documents: Document[];
  /**
   * The next page, when there is one.
   */
  next?: string;
}
export interface Document {
  id: string;
  status: JobStatus;
  mode: "sync" | "async";
  filename: string;
  sizeBytes: number;
  pages: {
    total: number | null;
    selected: number | null;
    selection: string;
  };
  analyses: ("summary" | "entities" | "keyPoints" | "sentiment")[];
  progress: Progress;
  analyzer: string | null;
  error: DocumentError | null;
  createdAt: string;
  updatedAt: string;
  completedAt: string | null;
  links: DocumentLinks;
}
export interface Progress {
  chunksTotal: number;
  chunksSucceeded: number;
  chunksFailed: number;
  /**
   * 100 only once the document is finished.
   */
  percent: number;
}
export interface DeliveryList {
  deliveries: Delivery[];
}
export interface Delivery {
  id: string;
  /**
   * The event id the receiver dedupes on (the same for every attempt).
   */
  eventId: string;
  event: "document.completed" | "document.completed_with_errors" | "document.failed" | "document.cancelled";
  url: string;
  /**
   * failed: gave up after the retry window (24 h) or the target was refused.
   */
  status: "pending" | "delivered" | "failed";
  attempts: DeliveryAttempt[];
  nextAttemptAt: string | null;
  createdAt: string;
}
export interface DeliveryAttempt {
  at: string;
  /**
   * The receiver's HTTP status; null when no answer came.
   */
  statusCode: number | null;
  /**
   * Why the attempt failed (timeout, refused target, ...), null on success.
   */
  error: string | null;
  durationMs: number;
}
export interface UsageReport {
  tenantId: string;
  month: string;
  inputTokens: number;
  outputTokens: number;
  modelCalls: number;
  chunks: number;
  quotas: {
    pagesPerMonth: {
      used: number;
      limit: number;
      reserved: number;
    };
    tokensPerMonth: {
      used: number;
      limit: number;
    };
    concurrentDocuments: {
      used: number;
      limit: number;
    };
  };
}
export interface Health {
  status: "ok";
  state: string;
}
export interface Readiness {
  ready: boolean;
  [k: string]: unknown | undefined;
}
export interface Problem {
  type: string;
  title: string;
  status: number;
  code:
    | "THROTTLED"
    | "UPSTREAM_UNAVAILABLE"
    | "TIMEOUT"
    | "INVALID_MODEL_OUTPUT"
    | "BAD_PDF"
    | "ENCRYPTED_PDF"
    | "TOO_LARGE"
    | "TOO_MANY_PAGES"
    | "UNSUPPORTED_MEDIA_TYPE"
    | "SAFETY_BLOCKED"
    | "NO_TEXT_LAYER"
    | "TEXT_LIMIT"
    | "INVALID_REQUEST"
    | "INVALID_PAGE_RANGE"
    | "UNAUTHENTICATED"
    | "FORBIDDEN"
    | "QUOTA_PAGES_EXCEEDED"
    | "QUOTA_TOKENS_EXCEEDED"
    | "CONCURRENCY_LIMIT"
    | "IDEMPOTENCY_KEY_REUSED"
    | "IDEMPOTENCY_IN_PROGRESS"
    | "NOT_FOUND"
    | "CONFLICT"
    | "RESULT_NOT_READY"
    | "DEADLINE_EXCEEDED"
    | "DEAD_LETTERED"
    | "SHUTTING_DOWN"
    | "INTERNAL";
  detail: string;
  instance?: string;
  [k: string]: unknown | undefined;
}
