/**
 * The one error taxonomy of docorch (DESIGN.md section 6).
 *
 * Every failure that crosses a module boundary is a {@link DocorchError} with a stable `code`.
 * The code decides everything downstream: the HTTP status and problem+json `type` in the API,
 * and retry / dead-letter / chunk-failure in the worker. Callers never switch on messages.
 */

/** What a consumer should do with a failed unit of work. */
export type RetryClass =
  /** Transient: retry with backoff (up to the caller's attempt limit). */
  | 'retry'
  /** Possibly transient (e.g. the model produced invalid JSON): retry a small, fixed number of times. */
  | 'bounded-retry'
  /** Deterministic: retrying cannot help. Fail the unit now. */
  | 'terminal';

/** Stable, documented error codes. Clients may switch on these; never rename one. */
export const ERROR_CODES = {
  THROTTLED: { status: 429, retry: 'retry', title: 'Too many requests' },
  UPSTREAM_UNAVAILABLE: { status: 503, retry: 'retry', title: 'A dependency is unavailable' },
  TIMEOUT: { status: 504, retry: 'retry', title: 'The operation timed out' },
  INVALID_MODEL_OUTPUT: { status: 502, retry: 'bounded-retry', title: 'The model returned invalid output' },
  BAD_PDF: { status: 422, retry: 'terminal', title: 'The PDF could not be read' },
  ENCRYPTED_PDF: { status: 422, retry: 'terminal', title: 'The PDF is encrypted' },
  TOO_LARGE: { status: 413, retry: 'terminal', title: 'The upload is too large' },
  TOO_MANY_PAGES: { status: 422, retry: 'terminal', title: 'The PDF has too many pages' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, retry: 'terminal', title: 'The upload is not a PDF' },
  SAFETY_BLOCKED: { status: 422, retry: 'terminal', title: 'The model refused the content' },
  NO_TEXT_LAYER: { status: 422, retry: 'terminal', title: 'The page has no text layer' },
  TEXT_LIMIT: { status: 422, retry: 'terminal', title: 'The page is beyond the text one model call may carry (GEMINI_MAX_CHUNK_CHARS); use fewer pages per chunk' },
  INVALID_REQUEST: { status: 400, retry: 'terminal', title: 'The request is invalid' },
  INVALID_PAGE_RANGE: { status: 422, retry: 'terminal', title: 'The page range is outside the document' },
  UNAUTHENTICATED: { status: 401, retry: 'terminal', title: 'Missing or invalid API key' },
  FORBIDDEN: { status: 403, retry: 'terminal', title: 'The API key may not do this' },
  QUOTA_PAGES_EXCEEDED: { status: 429, retry: 'terminal', title: 'The monthly page quota is used up' },
  QUOTA_TOKENS_EXCEEDED: { status: 429, retry: 'terminal', title: 'The monthly model token quota is used up' },
  CONCURRENCY_LIMIT: { status: 429, retry: 'retry', title: 'Too many documents in flight' },
  IDEMPOTENCY_KEY_REUSED: { status: 422, retry: 'terminal', title: 'The Idempotency-Key was used for another request' },
  IDEMPOTENCY_IN_PROGRESS: { status: 409, retry: 'retry', title: 'A request with this Idempotency-Key is still being processed' },
  NOT_FOUND: { status: 404, retry: 'terminal', title: 'Not found' },
  CONFLICT: { status: 409, retry: 'terminal', title: 'Conflict' },
  RESULT_NOT_READY: { status: 409, retry: 'terminal', title: 'The result is not ready yet' },
  DEADLINE_EXCEEDED: { status: 504, retry: 'terminal', title: 'The document did not finish within its deadline (DOCUMENT_DEADLINE_MS)' },
  DEAD_LETTERED: { status: 500, retry: 'terminal', title: 'The work was dead-lettered and not replayed in time' },
  SHUTTING_DOWN: { status: 503, retry: 'retry', title: 'This server is shutting down; retry' },
  INTERNAL: { status: 500, retry: 'retry', title: 'Internal error' },
} as const satisfies Record<string, { status: number; retry: RetryClass; title: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** Options every {@link DocorchError} accepts. */
export interface DocorchErrorOptions {
  /** The underlying error, kept for logs; never shown to clients. */
  cause?: unknown;
  /** Machine-readable context safe to show to the client (page numbers, limits). */
  details?: Record<string, unknown>;
  /** For THROTTLED and UPSTREAM_UNAVAILABLE: how long the caller should wait, in milliseconds. */
  retryAfterMs?: number;
}

/** Base class of every classified error. */
export class DocorchError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;
  readonly retryAfterMs: number | undefined;

  constructor(code: ErrorCode, message: string, options: DocorchErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DocorchError';
    this.code = code;
    this.details = options.details;
    this.retryAfterMs = options.retryAfterMs;
  }

  /** HTTP status the API answers with for this error. */
  get status(): number {
    return ERROR_CODES[this.code].status;
  }

  /** What a consumer should do with the failed unit of work. */
  get retry(): RetryClass {
    return ERROR_CODES[this.code].retry;
  }

  /** Short, stable human title of the code (problem+json `title`). */
  get title(): string {
    return ERROR_CODES[this.code].title;
  }
}

/** True for a {@link DocorchError}, optionally of one of the given codes. */
export function isDocorchError(err: unknown, ...codes: ErrorCode[]): err is DocorchError {
  return err instanceof DocorchError && (codes.length === 0 || codes.includes(err.code));
}

/**
 * Classifies any thrown value. Unknown errors become INTERNAL (retryable): an unexpected bug
 * should be retried and then dead-lettered, never silently dropped.
 */
export function toDocorchError(err: unknown): DocorchError {
  if (err instanceof DocorchError) return err;
  const dependency = dependencyFailure(err);
  if (dependency) return dependency;
  const message = err instanceof Error ? err.message : String(err);
  return new DocorchError('INTERNAL', message, { cause: err });
}

/** AWS error names that mean "too many requests" (DynamoDB, S3, Kinesis, the SDK's own). */
const AWS_THROTTLING = new Set([
  'ThrottlingException',
  'Throttling',
  'ThrottledException',
  'ProvisionedThroughputExceededException',
  'RequestLimitExceeded',
  'TooManyRequestsException',
  'SlowDown',
  'LimitExceededException',
  'RequestThrottled',
  'RequestThrottledException',
]);
/** Network failures on the way to a dependency. */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ENOTFOUND', 'EHOSTUNREACH']);

/**
 * An AWS service that throttles, fails with a 5xx, or cannot be reached is a dependency's
 * momentary state, not a bug: UPSTREAM_UNAVAILABLE (503 with Retry-After; retried inside the
 * fleet), never a bare 500. Client errors of the SDK (validation, conditions) stay as they are.
 */
function dependencyFailure(err: unknown): DocorchError | undefined {
  if (!(err instanceof Error)) return undefined;
  const e = err as Error & { $metadata?: { httpStatusCode?: number }; $retryable?: { throttling?: boolean }; $fault?: string; code?: string };
  const status = e.$metadata?.httpStatusCode;
  const throttled = AWS_THROTTLING.has(e.name) || e.$retryable?.throttling === true || status === 429;
  const unavailable = e.$fault === 'server' || (status !== undefined && status >= 500) || e.name === 'TimeoutError' || NETWORK_CODES.has(e.code ?? '');
  if (!throttled && !unavailable) return undefined;
  return new DocorchError(
    'UPSTREAM_UNAVAILABLE',
    throttled ? 'A storage service is throttling requests; retry shortly' : 'A storage service is unavailable; retry shortly',
    { cause: err, retryAfterMs: throttled ? 1_000 : 2_000, details: { reason: throttled ? 'throttled' : 'unavailable' } },
  );
}
