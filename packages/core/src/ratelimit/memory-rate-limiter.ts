/**
 * The same limiter as ./dynamodb-rate-limiter.ts with its state in process memory: for a single
 * process (tests, a one-process local run). It does not share a quota across processes.
 */
import { DocorchError } from '../errors.js';
import { sleep as defaultSleep } from '../retry/backoff.js';
import {
  FULL_BUCKET,
  MAX_STALE_GRANTS,
  charge,
  defaultMaxLateness,
  defaultTokenBurst,
  refund,
  reserve,
  validateParams,
  type BucketState,
  type RateLimitParams,
} from './gcra.js';
import type { RateLimiter } from './types.js';

/** Options of {@link MemoryRateLimiter}; the same meaning and defaults as the DynamoDB limiter's. */
export interface MemoryRateLimiterOptions {
  /** Requests allowed in any window. */
  requestsPerWindow: number;
  /** Input tokens allowed in any window. */
  tokensPerWindow: number;
  /** @defaultValue 60000 */
  windowMs?: number;
  /** @defaultValue windowMs / 60 */
  marginMs?: number;
  /** @defaultValue marginMs / 2 (no limit when marginMs is 0) */
  maxLatenessMs?: number;
  /** @defaultValue 1 */
  requestBurst?: number;
  /** @defaultValue ceil(tokensPerWindow / 20) */
  tokenBurst?: number;
  /** @defaultValue 2 * windowMs */
  maxWaitMs?: number;
  /** Wall clock in epoch ms. @defaultValue Date.now */
  now?: () => number;
  /** @defaultValue retry/backoff sleep */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/** An in-process rate limiter (GCRA, see ./gcra.ts). */
export class MemoryRateLimiter implements RateLimiter {
  readonly params: RateLimitParams;
  private state: BucketState = { ...FULL_BUCKET };
  private readonly now: () => number;
  private readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  private readonly maxWaitMs: number;
  private readonly maxLatenessMs: number;

  constructor(options: MemoryRateLimiterOptions) {
    const windowMs = options.windowMs ?? 60_000;
    this.params = validateParams({
      windowMs,
      marginMs: options.marginMs ?? windowMs / 60,
      requests: { limit: options.requestsPerWindow, burst: options.requestBurst ?? 1 },
      tokens: { limit: options.tokensPerWindow, burst: options.tokenBurst ?? defaultTokenBurst(options.tokensPerWindow) },
    });
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? defaultSleep;
    this.maxWaitMs = options.maxWaitMs ?? 2 * windowMs;
    this.maxLatenessMs = options.maxLatenessMs ?? defaultMaxLateness(this.params.marginMs);
  }

  async acquire(estimatedTokens: number, signal?: AbortSignal): Promise<void> {
    for (let stale = 0; ; stale++) {
      signal?.throwIfAborted();
      const now = this.now();
      const r = reserve(this.state, now, estimatedTokens, this.params);
      if (r.startAt - now > this.maxWaitMs) {
        const retryAfterMs = Math.ceil(r.startAt - now);
        throw new DocorchError('THROTTLED', `The model rate limit is exhausted for the next ${retryAfterMs} ms`, { retryAfterMs });
      }
      this.state = r.next;
      if (r.startAt > now) await this.sleep(r.startAt - now, signal);
      // A grant used too late could crowd a window: leave it unused (see DynamoDbRateLimiter).
      if (this.now() - r.startAt <= this.maxLatenessMs || stale >= MAX_STALE_GRANTS) return;
    }
  }

  async settle(estimatedTokens: number, actualTokens: number): Promise<void> {
    const extra = actualTokens - estimatedTokens;
    this.state = extra > 0 ? charge(this.state, this.now(), extra, this.params) : refund(this.state, this.now(), -extra, this.params);
  }
}
