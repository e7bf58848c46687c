/**
 * The rate-limit arithmetic (GCRA), in virtual time: the window bound holds for any arrival
 * pattern, throughput reaches the limit, and the in-memory limiter applies it.
 */
import { describe, expect, it } from 'vitest';
import { charge, defaultTokenBurst, FULL_BUCKET, intervalMs, refund, reserve, validateParams, type BucketState, type RateLimitParams } from '../src/ratelimit/gcra.js';
import { MemoryRateLimiter } from '../src/ratelimit/memory-rate-limiter.js';
import { DocorchError } from '../src/errors.js';
import { seededRandom } from '../../testkit/src/random.js';

/** Most total cost in any half-open window of `windowMs`. */
function maxCostInWindow(grants: Array<{ at: number; cost: number }>, windowMs: number): number {
  const sorted = [...grants].sort((a, b) => a.at - b.at);
  let best = 0;
  let sum = 0;
  for (let lo = 0, hi = 0; hi < sorted.length; hi++) {
    sum += sorted[hi]!.cost;
    while (sorted[hi]!.at - sorted[lo]!.at >= windowMs) sum -= sorted[lo++]!.cost;
    best = Math.max(best, sum);
  }
  return best;
}

function simulate(params: RateLimitParams, arrivals: Array<{ at: number; tokens: number }>) {
  let state: BucketState = { ...FULL_BUCKET };
  const grants: Array<{ at: number; cost: number; tokens: number }> = [];
  for (const a of [...arrivals].sort((x, y) => x.at - y.at)) {
    const r = reserve(state, a.at, a.tokens, params);
    expect(r.startAt).toBeGreaterThanOrEqual(a.at);
    state = r.next;
    grants.push({ at: r.startAt, cost: 1, tokens: a.tokens });
  }
  return grants;
}

describe('GCRA reserve', () => {
  const params = validateParams({ windowMs: 60_000, marginMs: 0, requests: { limit: 10, burst: 1 }, tokens: { limit: 10_000, burst: 1 } });

  it('paces a burst evenly: interval = window / limit with burst 1', () => {
    expect(intervalMs(params, params.requests)).toBe(6_000);
    const grants = simulate(params, Array.from({ length: 25 }, () => ({ at: 1_000, tokens: 10 })));
    expect(grants.map((g) => g.at - 1_000).slice(0, 4)).toEqual([0, 6_000, 12_000, 18_000]);
    expect(maxCostInWindow(grants, 60_000)).toBe(10);
  });

  it('never grants more than the limit in any window, for random arrivals, bursts and costs', () => {
    const random = seededRandom(11);
    for (let round = 0; round < 30; round++) {
      const limit = 1 + Math.floor(random() * 40);
      const burst = 1 + Math.floor(random() * limit);
      const tokenLimit = 500 + Math.floor(random() * 5_000);
      const p = validateParams({
        windowMs: 1_000 + Math.floor(random() * 60_000),
        marginMs: Math.floor(random() * 500),
        requests: { limit, burst },
        tokens: { limit: tokenLimit, burst: 1 + Math.floor(random() * tokenLimit) },
      });
      let t = 0;
      const arrivals = Array.from({ length: 300 }, () => {
        t += random() < 0.3 ? 0 : random() * (p.windowMs / limit) * 2;
        return { at: t, tokens: Math.floor(random() * tokenLimit * 0.6) };
      });
      const grants = simulate(p, arrivals);
      const window = p.windowMs + p.marginMs;
      expect(maxCostInWindow(grants, window)).toBeLessThanOrEqual(limit);
      expect(maxCostInWindow(grants.map((g) => ({ at: g.at, cost: g.tokens })), window)).toBeLessThanOrEqual(tokenLimit);
    }
  });

  it('reaches the limit under saturation', () => {
    const p = validateParams({ windowMs: 60_000, marginMs: 1_000, requests: { limit: 600, burst: 1 }, tokens: { limit: 1_000_000, burst: 1 } });
    const grants = simulate(p, Array.from({ length: 3_000 }, (_, i) => ({ at: i, tokens: 100 })));
    const inFirstWindows = grants.filter((g) => g.at < 5 * 60_000).length;
    // 600 per 61 s: 98% of the nominal 600 per minute.
    expect(inFirstWindows / (5 * 600)).toBeGreaterThan(0.98 * (60 / 61));
  });

  it('the token dimension binds when requests are large; a cost above the limit is capped', () => {
    const p = validateParams({ windowMs: 1_000, marginMs: 0, requests: { limit: 100, burst: 1 }, tokens: { limit: 1_000, burst: 1 } });
    const grants = simulate(p, Array.from({ length: 20 }, () => ({ at: 0, tokens: 400 })));
    expect(maxCostInWindow(grants.map((g) => ({ at: g.at, cost: g.tokens })), 1_000)).toBeLessThanOrEqual(1_000);
    const huge = reserve(FULL_BUCKET, 0, 50_000, p);
    expect(huge.startAt).toBeLessThanOrEqual(1_000);
  });

  it('charges an underestimate; refunds an overestimate, never past now', () => {
    const p = validateParams({ windowMs: 1_000, marginMs: 0, requests: { limit: 10, burst: 1 }, tokens: { limit: 1_000, burst: 1 } });
    const s = { requestTat: 0, tokenTat: 500 };
    expect(charge(s, 100, 200, p).tokenTat).toBeCloseTo(500 + 200 * intervalMs(p, p.tokens));
    expect(charge(s, 100, -200, p)).toBe(s);
    expect(charge(s, 900, 10, p).tokenTat).toBeCloseTo(900 + 10 * intervalMs(p, p.tokens));
    expect(refund(s, 100, 200, p).tokenTat).toBeCloseTo(500 - 200 * intervalMs(p, p.tokens));
    expect(refund(s, 400, 1_000, p).tokenTat).toBe(400); // a bucket is never fuller than full
    expect(refund(s, 600, 100, p)).toBe(s); // already full: nothing to give back
    expect(refund(s, 100, -5, p)).toBe(s);
  });

  it('refunds keep the billed tokens in any window within the limit plus one estimate, and raise throughput', () => {
    const random = seededRandom(5);
    for (let round = 0; round < 20; round++) {
      const tokenLimit = 2_000 + Math.floor(random() * 20_000);
      const p = validateParams({
        windowMs: 60_000,
        marginMs: Math.floor(random() * 1_000),
        requests: { limit: 10_000, burst: 1 },
        tokens: { limit: tokenLimit, burst: 1 + Math.floor(random() * tokenLimit) },
      });
      const run = (withRefund: boolean) => {
        let state: BucketState = { ...FULL_BUCKET };
        const billed: Array<{ at: number; cost: number }> = [];
        let t = 0;
        let maxEstimate = 0;
        for (let i = 0; i < 400; i++) {
          t += random() < 0.5 ? 0 : random() * 2_000;
          const estimate = 100 + Math.floor(random() * tokenLimit * 0.3);
          maxEstimate = Math.max(maxEstimate, estimate);
          const r = reserve(state, t, estimate, p);
          state = r.next;
          const actual = Math.floor(estimate * random());
          billed.push({ at: r.startAt, cost: actual });
          // The answer comes back a little after the send, and the limiter is corrected then.
          if (withRefund) state = refund(state, r.startAt + random() * 3_000, estimate - actual, p);
        }
        return { billed, maxEstimate, last: Math.max(...billed.map((b) => b.at)) };
      };
      const refunded = run(true);
      expect(maxCostInWindow(refunded.billed, p.windowMs + p.marginMs)).toBeLessThanOrEqual(tokenLimit + refunded.maxEstimate);
    }
    // Saturated (each call reserved as the previous one is answered) with estimates 4x the billed
    // tokens: refunds let about 4x as many calls through in ten minutes.
    const p = validateParams({ windowMs: 60_000, marginMs: 0, requests: { limit: 100_000, burst: 1 }, tokens: { limit: 10_000, burst: defaultTokenBurst(10_000) } });
    const throughput = (withRefund: boolean) => {
      let state: BucketState = { ...FULL_BUCKET };
      let calls = 0;
      let now = 0;
      while (calls < 10_000) {
        const r = reserve(state, now, 400, p);
        state = r.next;
        if (r.startAt >= 600_000) break;
        calls++;
        now = r.startAt + 1;
        if (withRefund) state = refund(state, now, 300, p);
      }
      return calls;
    };
    expect(throughput(true) / throughput(false)).toBeGreaterThan(3.5);
  });

  it('validates its parameters', () => {
    expect(() => validateParams({ ...params, requests: { limit: 5, burst: 6 } })).toThrow(RangeError);
    expect(() => validateParams({ ...params, windowMs: 0 })).toThrow(RangeError);
    expect(() => validateParams({ ...params, tokens: { limit: 0, burst: 1 } })).toThrow(RangeError);
  });
});

describe('MemoryRateLimiter', () => {
  it('sleeps until the reserved slot and refuses waits beyond maxWaitMs', async () => {
    let now = 100_000;
    const sleeps: number[] = [];
    const limiter = new MemoryRateLimiter({
      requestsPerWindow: 2,
      tokensPerWindow: 1_000,
      windowMs: 1_000,
      marginMs: 0,
      maxWaitMs: 600,
      now: () => now,
      sleep: async (ms) => {
        sleeps.push(ms);
      },
    });
    await limiter.acquire(10);
    await limiter.acquire(10);
    expect(sleeps).toEqual([500]);
    const err = await limiter.acquire(10).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DocorchError);
    expect(err).toMatchObject({ code: 'THROTTLED', retryAfterMs: 1_000 });
    now = 101_000;
    await limiter.acquire(10);
    expect(sleeps).toEqual([500]);
  });
});
