/**
 * The rate-limit arithmetic, pure: a token bucket in its "virtual scheduling" form (the Generic
 * Cell Rate Algorithm, as in ATM traffic shaping and redis-cell). The state of one bucket is a
 * single number, its theoretical arrival time (TAT): the instant at which the bucket would be
 * full again. A grant of cost `c` at time `t` conforms when `TAT - t <= (burst - c) * interval`,
 * and moves `TAT` to `max(TAT, t) + c * interval`.
 *
 * Callers *reserve* the earliest conforming instant and then sleep until it, so a waiting
 * caller writes the shared state once instead of polling it (no hot loop), and waiters are
 * served in the order they reserved (fair).
 *
 * Guarantee: with `interval = (windowMs + marginMs) / (limit - burst + 1)`, the costs granted in
 * any half-open window of `windowMs + marginMs` sum to at most `limit`. Proof sketch: for grants
 * g1 <= ... <= gn in such a window, `TAT` before gn is at least `g1 + (sum of costs before gn) *
 * interval`, and gn conforms, so `gn >= g1 + (sum of all costs - burst) * interval`; since
 * `gn - g1 < window`, the sum is below `burst + window / interval = limit + 1`.
 *
 * A cost above `burst` (the bucket's capacity) waits until the bucket would hold it if it were
 * not capped, and then still moves `TAT` by its whole cost from that instant: the bound holds,
 * but such requests get about half the throughput, so size `burst` to the largest request. A
 * single cost above `limit` is capped at `limit` (it could never conform otherwise).
 */

/** One dimension of a limit, e.g. requests or input tokens per window. */
export interface BucketLimit {
  /** Most units granted in any window. */
  limit: number;
  /** Units that may be granted back to back (the bucket's capacity), 1..limit. */
  burst: number;
}

/** Both dimensions of a model quota, over one window. */
export interface RateLimitParams {
  /** The quota's window, e.g. 60 000 ms for "per minute". */
  windowMs: number;
  /**
   * Added to the window when pacing, so that network jitter between our grant and the server's
   * arrival time and clock skew between hosts (up to this much) cannot push a window over the
   * limit as the server measures it.
   */
  marginMs: number;
  requests: BucketLimit;
  tokens: BucketLimit;
}

/** The shared state: one TAT per dimension, in epoch milliseconds (may be fractional). */
export interface BucketState {
  requestTat: number;
  tokenTat: number;
}

/** Default token burst: 5% of the quota, enough for any single chunk request at real quotas. */
export function defaultTokenBurst(tokensPerWindow: number): number {
  return Math.max(1, Math.min(tokensPerWindow, Math.ceil(tokensPerWindow / 20)));
}

/**
 * Lateness: the guarantee is about grants, the server counts arrivals. A request that arrives
 * late after its grant crowds the window it lands in; limiters therefore drop a grant they could
 * only use more than `maxLatenessMs` after its instant (it stays unused, which only lowers the
 * rate) and reserve another, at most {@link MAX_STALE_GRANTS} times per acquire.
 */
export const MAX_STALE_GRANTS = 3;

/** Default `maxLatenessMs`: half the margin (the rest is for the way to the server); no limit without a margin. */
export function defaultMaxLateness(marginMs: number): number {
  return marginMs > 0 ? marginMs / 2 : Number.POSITIVE_INFINITY;
}

/** An empty (full) bucket. */
export const FULL_BUCKET: Readonly<BucketState> = Object.freeze({ requestTat: 0, tokenTat: 0 });

/** Milliseconds of refill per unit of a dimension. */
export function intervalMs(params: Pick<RateLimitParams, 'windowMs' | 'marginMs'>, limit: BucketLimit): number {
  return (params.windowMs + params.marginMs) / (limit.limit - limit.burst + 1);
}

/** Validates the parameters; throws RangeError naming the bad one. */
export function validateParams(params: RateLimitParams): RateLimitParams {
  if (!(params.windowMs > 0)) throw new RangeError('windowMs must be > 0');
  if (!(params.marginMs >= 0)) throw new RangeError('marginMs must be >= 0');
  for (const [name, l] of [
    ['requests', params.requests],
    ['tokens', params.tokens],
  ] as const) {
    if (!Number.isInteger(l.limit) || l.limit < 1) throw new RangeError(`${name}.limit must be an integer >= 1`);
    if (!Number.isInteger(l.burst) || l.burst < 1 || l.burst > l.limit) throw new RangeError(`${name}.burst must be an integer in 1..limit`);
  }
  return params;
}

/** A reservation: when the grant may be used, and the state to store. */
export interface Reservation {
  /** Epoch ms from which the caller may send (<= now means at once). */
  startAt: number;
  next: BucketState;
}

/** Earliest conforming instant of a grant of `cost` in one dimension. */
function conformingAt(tat: number, now: number, cost: number, burst: number, interval: number): number {
  return Math.max(now, tat - (burst - cost) * interval);
}

/**
 * Reserves one request of `tokens` input tokens: the earliest instant at or after `now` at which
 * both dimensions conform, and the state after the grant.
 */
export function reserve(state: BucketState, now: number, tokens: number, params: RateLimitParams): Reservation {
  const ri = intervalMs(params, params.requests);
  const ti = intervalMs(params, params.tokens);
  const cost = Math.min(Math.max(0, tokens), params.tokens.limit);
  const startAt = Math.max(
    conformingAt(state.requestTat, now, 1, params.requests.burst, ri),
    conformingAt(state.tokenTat, now, cost, params.tokens.burst, ti),
  );
  return {
    startAt,
    next: {
      requestTat: Math.max(state.requestTat, startAt) + ri,
      tokenTat: Math.max(state.tokenTat, startAt) + cost * ti,
    },
  };
}

/**
 * Charges `extraTokens` more to the token dimension at `now` (the call used more input tokens
 * than were reserved).
 */
export function charge(state: BucketState, now: number, extraTokens: number, params: RateLimitParams): BucketState {
  if (!(extraTokens > 0)) return state;
  const ti = intervalMs(params, params.tokens);
  return { ...state, tokenTat: Math.max(state.tokenTat, now) + Math.min(extraTokens, params.tokens.limit) * ti };
}

/**
 * Gives back `unusedTokens` of a reservation (the call used fewer input tokens than estimated),
 * never past `now`: a bucket cannot be fuller than full. While the bucket stays backlogged this
 * is exactly the state the true cost would have left; if it ran idle in between, a later grant
 * may have been clamped to its own start and the refund can credit at most `unusedTokens` too
 * much once (less than one call's estimate; the margin absorbs it).
 */
export function refund(state: BucketState, now: number, unusedTokens: number, params: RateLimitParams): BucketState {
  if (!(unusedTokens > 0) || state.tokenTat <= now) return state;
  const ti = intervalMs(params, params.tokens);
  return { ...state, tokenTat: Math.max(now, state.tokenTat - Math.min(unusedTokens, params.tokens.limit) * ti) };
}
