/**
 * Retry with full-jitter exponential backoff ("Exponential Backoff and Jitter", AWS Architecture
 * Blog): delay = random(0, min(cap, base * 2^attempt)), which spreads a thundering herd of
 * retries better than equal or decorrelated jitter. A server-given delay (Retry-After, Gemini's
 * RetryInfo) is a floor.
 */

/** A validated retry policy. */
export interface BackoffPolicy {
  /** Total attempts including the first. @defaultValue 5 */
  maxAttempts: number;
  /** Base delay in ms. @defaultValue 200 */
  baseMs: number;
  /** Longest delay in ms. @defaultValue 20000 */
  capMs: number;
}

/** Builds a policy, validating each field. */
export function backoffPolicy(p: Partial<BackoffPolicy> = {}): BackoffPolicy {
  const policy = { maxAttempts: 5, baseMs: 200, capMs: 20_000, ...p };
  if (!Number.isInteger(policy.maxAttempts) || policy.maxAttempts < 1) throw new RangeError('maxAttempts must be an integer >= 1');
  if (!(policy.baseMs >= 0) || !(policy.capMs >= policy.baseMs)) throw new RangeError('need 0 <= baseMs <= capMs');
  return policy;
}

/** Full-jitter delay before retry number `retry` (0 for the first retry). */
export function fullJitterDelay(retry: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  return Math.floor(random() * Math.min(policy.capMs, policy.baseMs * 2 ** retry));
}

/** Sleeps `ms`, rejecting with the signal's reason when aborted. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Options of {@link withRetry}. */
export interface WithRetryOptions {
  policy?: Partial<BackoffPolicy>;
  /** Whether an error is worth another attempt. @defaultValue always */
  shouldRetry?: (err: unknown, attempt: number) => boolean;
  /** Server-requested minimum delay for an error, in ms. */
  retryAfterMs?: (err: unknown) => number | undefined;
  /** Called before each sleep. */
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
  signal?: AbortSignal;
  random?: () => number;
}

/** Runs `fn` until it succeeds, a non-retryable error, or the attempts run out (last error thrown). */
export async function withRetry<T>(fn: (attempt: number) => Promise<T>, options: WithRetryOptions = {}): Promise<T> {
  const policy = backoffPolicy(options.policy);
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt >= policy.maxAttempts || options.signal?.aborted || !(options.shouldRetry?.(err, attempt) ?? true)) throw err;
      const delay = Math.max(fullJitterDelay(attempt - 1, policy, options.random), options.retryAfterMs?.(err) ?? 0);
      options.onRetry?.(err, attempt, delay);
      await sleep(delay, options.signal);
    }
  }
}
