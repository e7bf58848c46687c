// Public API of @docorch/client.
export {
  DocorchClient,
  parseRetryAfter,
  type DocorchClientOptions,
  type DocumentEvent,
  type ProgressUpdate,
  type RetryNotice,
  type SubmitOptions,
  type SubmitOutcome,
  type UploadInput,
} from './client.js';
export {
  AuthenticationError,
  ConflictError,
  ConnectionError,
  DocorchApiError,
  DocumentFailedError,
  InvalidRequestError,
  NotFoundError,
  PermissionDeniedError,
  RateLimitError,
  ServerError,
  type ProblemCode,
} from './errors.js';
export type * from './generated/openapi.js';
