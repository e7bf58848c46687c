/**
 * The rate-limiter contract the model analyzers call before every HTTP call to the model.
 */

/** A limiter of model calls: requests and input tokens per window. Safe to call concurrently. */
export interface RateLimiter {
  /**
   * Waits until one request of about `estimatedTokens` input tokens may be sent, and counts it.
   * Rejects with the signal's reason when `signal` aborts while waiting, or with
   * `DocorchError('THROTTLED')` (with `retryAfterMs`) when the wait would exceed the limiter's
   * longest wait.
   */
  acquire(estimatedTokens: number, signal?: AbortSignal): Promise<void>;
  /**
   * Reports the input tokens a granted request actually used, so that the limiter can charge
   * an underestimate. Best effort: callers do not wait for it to be stored.
   */
  settle?(estimatedTokens: number, actualTokens: number): Promise<void>;
}
