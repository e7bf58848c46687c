/**
 * How Gemini failures map onto docorch's error taxonomy (DESIGN.md section 6), and which of them
 * the analyzer retries itself.
 *
 * @google/genai throws `ApiError` for any non-2xx answer: `status` is the HTTP status and
 * `message` is the JSON error body as a string (`{"error":{"code","message","status","details"}}`),
 * so RetryInfo is read from there. Network failures are fetch `TypeError`s; aborts are
 * `AbortError`s (the analyzer tells its own timeout apart from the caller's abort).
 *
 * | answer                                   | code                 | retried here | breaker failure |
 * | ---------------------------------------- | -------------------- | ------------ | --------------- |
 * | 429 RESOURCE_EXHAUSTED                   | THROTTLED            | yes, RetryInfo as a floor | yes |
 * | 500, 502, 503, 504                       | UPSTREAM_UNAVAILABLE | yes          | yes             |
 * | our per-call timeout, 408                | TIMEOUT              | yes          | yes             |
 * | network error (reset, refused)           | UPSTREAM_UNAVAILABLE | yes          | yes             |
 * | 401, 403, 400 API_KEY_INVALID            | UPSTREAM_UNAVAILABLE (reason `gemini-auth`) | no | yes |
 * | 404 (model), 400 FAILED_PRECONDITION     | UPSTREAM_UNAVAILABLE (reason `gemini-config`) | no | yes |
 * | other 400 / 4xx                          | INVALID_REQUEST      | no           | no              |
 *
 * A bad key or model name is an outage of ours, not a fault of the document: it is not retried
 * here (it cannot heal within seconds), but it stays retryable for the worker, which re-publishes
 * the chunk, and it trips the circuit breaker, so the fleet stops sending until it is fixed
 * instead of failing every chunk for good.
 */
import { ApiError } from '@google/genai';
import { DocorchError, type ErrorCode } from '../../errors.js';

/** A google.rpc.Status error body. */
export interface GoogleRpcStatus {
  code?: number;
  message?: string;
  status?: string;
  details?: Array<Record<string, unknown>>;
}

/** `details.reason` of errors the analyzer does not retry itself. */
export const NOT_RETRIED_HERE = new Set(['gemini-auth', 'gemini-config', 'circuit-open']);

const RETRY_INFO = 'type.googleapis.com/google.rpc.RetryInfo';
const ERROR_INFO = 'type.googleapis.com/google.rpc.ErrorInfo';

/** The error body carried by an ApiError's message, when it is JSON. */
export function rpcStatusOf(err: ApiError): GoogleRpcStatus | undefined {
  try {
    const body = JSON.parse(err.message) as { error?: GoogleRpcStatus };
    return typeof body === 'object' && body !== null && typeof body.error === 'object' ? body.error : undefined;
  } catch {
    return undefined;
  }
}

/** A protobuf Duration in JSON form ("12s", "0.5s", "1.000340s") in ms; undefined when malformed. */
export function parseDurationMs(value: unknown): number | undefined {
  if (typeof value !== 'string') return undefined;
  const m = /^(\d+(?:\.\d{1,9})?)s$/.exec(value.trim());
  return m ? Math.ceil(Number(m[1]) * 1000) : undefined;
}

/** The RetryInfo `retryDelay` of an error body, in ms. */
export function retryDelayMsOf(status: GoogleRpcStatus | undefined): number | undefined {
  const info = status?.details?.find((d) => d['@type'] === RETRY_INFO);
  return info ? parseDurationMs(info.retryDelay) : undefined;
}

function errorInfoReason(status: GoogleRpcStatus | undefined): string | undefined {
  const info = status?.details?.find((d) => d['@type'] === ERROR_INFO);
  return typeof info?.reason === 'string' ? info.reason : undefined;
}

function upstream(code: ErrorCode, message: string, cause: unknown, details: Record<string, unknown>, retryAfterMs?: number): DocorchError {
  return new DocorchError(code, message, { cause, details, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) });
}

/**
 * Classifies a failed call. `timedOut` says whether our own per-call timeout fired (an abort
 * that is not ours never reaches here: the analyzer rethrows the caller's reason).
 */
export function classifyGeminiError(err: unknown, context: { timedOut: boolean; timeoutMs: number }): DocorchError {
  if (err instanceof DocorchError) return err;
  if (context.timedOut) {
    return upstream('TIMEOUT', `The Gemini call took longer than ${context.timeoutMs} ms`, err, { timeoutMs: context.timeoutMs });
  }
  if (err instanceof ApiError) {
    const body = rpcStatusOf(err);
    const status = err.status;
    const details: Record<string, unknown> = { upstreamStatus: status, ...(body?.status ? { upstreamCode: body.status } : {}) };
    const text = body?.message ?? `HTTP ${status}`;
    if (status === 429) {
      const delay = retryDelayMsOf(body);
      return upstream('THROTTLED', `Gemini throttled the call: ${text}`, err, details, delay);
    }
    if (status === 408) return upstream('TIMEOUT', `Gemini timed out: ${text}`, err, details);
    if (status >= 500) return upstream('UPSTREAM_UNAVAILABLE', `Gemini is unavailable: ${text}`, err, details);
    if (status === 401 || status === 403 || (status === 400 && errorInfoReason(body) === 'API_KEY_INVALID')) {
      return upstream('UPSTREAM_UNAVAILABLE', `Gemini refused our credentials: ${text}`, err, { ...details, reason: 'gemini-auth' });
    }
    if (status === 404 || (status === 400 && body?.status === 'FAILED_PRECONDITION')) {
      return upstream('UPSTREAM_UNAVAILABLE', `Gemini is misconfigured for this service: ${text}`, err, { ...details, reason: 'gemini-config' });
    }
    return upstream('INVALID_REQUEST', `Gemini rejected the request: ${text}`, err, details);
  }
  // fetch() rejects with a TypeError for network failures (reset, refused, DNS).
  if (err instanceof TypeError) return upstream('UPSTREAM_UNAVAILABLE', `Gemini could not be reached: ${err.message}`, err, {});
  const message = err instanceof Error ? err.message : String(err);
  return new DocorchError('INTERNAL', `Gemini call failed: ${message}`, { cause: err });
}

/** Whether the analyzer itself should try the call again after this error. */
export function retriedHere(err: unknown): boolean {
  if (!(err instanceof DocorchError)) return false;
  if (!['THROTTLED', 'UPSTREAM_UNAVAILABLE', 'TIMEOUT'].includes(err.code)) return false;
  return !NOT_RETRIED_HERE.has(String(err.details?.reason ?? ''));
}

/** Whether this error counts against the model's health (circuit breaker). */
export function isBreakerFailure(err: unknown): boolean {
  return (
    err instanceof DocorchError &&
    ['THROTTLED', 'UPSTREAM_UNAVAILABLE', 'TIMEOUT'].includes(err.code) &&
    err.details?.reason !== 'circuit-open'
  );
}
