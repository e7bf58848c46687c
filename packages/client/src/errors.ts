/**
 * Errors of the client: every API error is a {@link DocorchApiError} carrying the problem's stable
 * `code` (switch on it), with a subclass per kind of failure.
 */
import type { Document, Problem } from './generated/openapi.js';

/** A problem code of the API (the `code` member of every error body). */
export type ProblemCode = Problem['code'];

/** An error answered by the API (problem+json), or a transport failure. */
export class DocorchApiError extends Error {
  override readonly name: string = 'DocorchApiError';
  /** HTTP status (0 when no response came). */
  readonly status: number;
  /** The problem's stable code, e.g. `QUOTA_PAGES_EXCEEDED`. */
  readonly code: ProblemCode | 'CONNECTION_FAILED';
  /** The full problem body, when there was one. */
  readonly problem: Problem | undefined;
  /** The server's request id (X-Request-Id), for support. */
  readonly requestId: string | undefined;
  /** Seconds the server asked to wait (Retry-After), when it did. */
  readonly retryAfterSeconds: number | undefined;

  constructor(message: string, init: { status: number; code: ProblemCode | 'CONNECTION_FAILED'; problem?: Problem; requestId?: string; retryAfterSeconds?: number; cause?: unknown }) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.status = init.status;
    this.code = init.code;
    this.problem = init.problem;
    this.requestId = init.requestId;
    this.retryAfterSeconds = init.retryAfterSeconds;
  }
}

/** 400, 413, 415, 422: the request or the file is not acceptable; retrying will not help. */
export class InvalidRequestError extends DocorchApiError {
  override readonly name = 'InvalidRequestError';
}
/** 401: missing, invalid, revoked or expired API key. */
export class AuthenticationError extends DocorchApiError {
  override readonly name = 'AuthenticationError';
}
/** 403: the key may not do this (a read-only key on a write). */
export class PermissionDeniedError extends DocorchApiError {
  override readonly name = 'PermissionDeniedError';
}
/** 404: no such document (or another tenant's). */
export class NotFoundError extends DocorchApiError {
  override readonly name = 'NotFoundError';
}
/** 409: e.g. RESULT_NOT_READY, IDEMPOTENCY_IN_PROGRESS. */
export class ConflictError extends DocorchApiError {
  override readonly name = 'ConflictError';
}
/** 429: a rate limit or a quota; `retryAfterSeconds` says when to come back. */
export class RateLimitError extends DocorchApiError {
  override readonly name = 'RateLimitError';
}
/** 5xx: the service failed or is unavailable. */
export class ServerError extends DocorchApiError {
  override readonly name = 'ServerError';
}
/** No response: the connection failed, was reset, or timed out. */
export class ConnectionError extends DocorchApiError {
  override readonly name = 'ConnectionError';
}

/** A document that finished without a result: `failed` or `cancelled` (thrown by waitForResult). */
export class DocumentFailedError extends Error {
  override readonly name = 'DocumentFailedError';
  constructor(readonly document: Document) {
    super(`Document ${document.id} is ${document.status}${document.error ? `: ${document.error.code}: ${document.error.message}` : ''}`);
  }
}

/** The error class of an HTTP status. */
export function errorClassFor(status: number): typeof DocorchApiError {
  if (status === 401) return AuthenticationError;
  if (status === 403) return PermissionDeniedError;
  if (status === 404) return NotFoundError;
  if (status === 409) return ConflictError;
  if (status === 429) return RateLimitError;
  if (status >= 500) return ServerError;
  return InvalidRequestError;
}
