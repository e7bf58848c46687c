/**
 * Chaos (issue 4): a 200-page async document, 3 workers, the fake Gemini failing 30% of calls
 * (429 with a RetryInfo retryDelay, 503, hangs past GEMINI_TIMEOUT_MS). Every chunk must
 * succeed, and the fake's log must show the fleet-wide rate limit (GEMINI_RPM, kept in DynamoDB)
 * holding as the server measures it.
 *
 * GEMINI_RPM is set low (60) so that the limiter, not the model's latency or the workers' cap,
 * is what paces the run: about 75 calls at one per second, so the run lasts longer than one
 * 60-second window and that window is a real constraint (the workers could otherwise send the
 * whole document within seconds).
 *
 * Shorter windows: ratelimit/gcra.ts paces grants `interval = (60 s + margin) / RPM` apart
 * (burst 1), so `n` grants span at least `(n - 1) * interval`; a server window of W ms can hold
 * at most `ceil((W + margin) / interval)` of them as long as the lateness between a grant and its
 * arrival varies by less than the margin (1 s). For W = 60 s that is exactly RPM; for shorter
 * windows it is the scaled bound plus the one-request burst, and that is what is asserted.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maxInWindow, startFakeGemini, startPipeline, type FakeGemini, type Pipeline } from '@docorch/testkit';
import { chunkOfRequest, expectEveryChunkSucceeded, getResult, submitGenerated, waitForTerminal } from './helpers.js';

const PAGES = 200;
const PAGES_PER_CHUNK = 4;
const CHUNKS = PAGES / PAGES_PER_CHUNK;
const RPM = 60;
const WINDOW_MS = 60_000;
/** The limiter's default padding of the window (dynamodb-rate-limiter.ts: windowMs / 60). */
const MARGIN_MS = WINDOW_MS / 60;
const INTERVAL_MS = (WINDOW_MS + MARGIN_MS) / RPM;
const TIMEOUT_MS = 1_500;

describe('Gemini chaos: 30% failures, 3 workers, fleet-wide rate limit', () => {
  let fake: FakeGemini;
  let pipeline: Pipeline;

  beforeAll(async () => {
    fake = await startFakeGemini({
      latencyMs: [50, 200],
      // 30% in all: 429 with retryDelay, 503, and hangs that only our timeout ends.
      failures: { rateLimit: 0.12, unavailable: 0.12, hang: 0.06 },
      retryDelayMs: 1_000,
      // A seed whose draws over this run come out at about 30% failures.
      seed: 21,
    });
    pipeline = await startPipeline({
      workers: 3,
      shards: 4,
      prefix: 'gchaos',
      env: {
        LOG_LEVEL: 'warn',
        ANALYZER: 'gemini',
        GEMINI_API_KEY: 'test',
        GEMINI_BASE_URL: fake.url,
        GEMINI_RPM: String(RPM),
        GEMINI_TIMEOUT_MS: String(TIMEOUT_MS),
        ANALYSIS_CONCURRENCY: '4',
        // A short open time keeps the run bounded should a streak of failures trip a breaker.
        CIRCUIT_OPEN_MS: '5000',
      },
    });
  });
  afterAll(async () => {
    await pipeline?.stop();
    await fake?.close();
  });

  it('completes every chunk, and the server never sees more than GEMINI_RPM requests in a minute', { timeout: 300_000 }, async () => {
    const id = await submitGenerated(pipeline, PAGES, { pagesPerChunk: String(PAGES_PER_CHUNK) });
    const final = await waitForTerminal(pipeline, id, 240_000).catch((err: unknown) => {
      pipeline.workers.forEach((w, i) => console.error([`worker ${i + 1} output:`, ...w.output.slice(-40)].join('\n')));
      console.error(['aggregator output:', ...pipeline.aggregator.output.slice(-20)].join('\n'));
      console.error(`fake totals: ${JSON.stringify(fake.totals())}`);
      throw err;
    });
    const log = [...fake.log];
    const totals = fake.totals();
    const arrivals = log.map((r) => r.at);
    const runMs = Math.max(...arrivals) - Math.min(...arrivals);
    const perWindow = Object.fromEntries([5_000, 10_000, 30_000, WINDOW_MS].map((w) => [w, maxInWindow(arrivals, w)]));
    console.log(
      `chaos: ${log.length} requests over ${(runMs / 1000).toFixed(1)} s; outcomes ${JSON.stringify(totals.byOutcome)}; ` +
        `most in a window: ${JSON.stringify(perWindow)} (RPM ${RPM})`,
    );

    expect(final.status).toBe('completed');
    const result = await getResult(pipeline, id);
    expectEveryChunkSucceeded(result, CHUNKS);
    expect(result.pages).toEqual({ total: PAGES, analysed: PAGES, selection: 'all' });

    // The failure mix really happened, at about 30%, and every hang was ended by our timeout.
    const failed = (totals.byOutcome.rateLimit ?? 0) + (totals.byOutcome.unavailable ?? 0) + (totals.byOutcome.hang ?? 0);
    expect(totals.byOutcome.rateLimit ?? 0).toBeGreaterThan(0);
    expect(totals.byOutcome.unavailable ?? 0).toBeGreaterThan(0);
    expect(totals.byOutcome.hang ?? 0).toBeGreaterThan(0);
    expect(failed / log.length).toBeGreaterThan(0.2);
    expect(failed / log.length).toBeLessThan(0.4);
    for (const r of log.filter((r) => r.outcome === 'hang')) expect(r.clientAborted).toBe(true);
    // No quota of the fake's own was set, and nothing else went wrong.
    expect(Object.keys(totals.byOutcome).sort()).toEqual(['hang', 'ok', 'rateLimit', 'unavailable']);
    // Every chunk got an answer from the model (the log's own view, not just the result's).
    const answered = new Set(log.filter((r) => r.outcome === 'ok' && r.pages.length > 0).map((r) => chunkOfRequest(r, PAGES_PER_CHUNK)));
    expect(answered.size).toBe(CHUNKS);

    // The fleet-wide limit as the server saw it: never above RPM in any 60-second window...
    expect(perWindow[WINDOW_MS]).toBeLessThanOrEqual(RPM);
    // ...and the limiter did bind: the run is longer than a window, and the busiest window is
    // (nearly) full, where the workers alone (12 calls in flight, ~0.15 s each) would send far more.
    expect(runMs).toBeGreaterThan(WINDOW_MS);
    expect(perWindow[WINDOW_MS]).toBeGreaterThanOrEqual(Math.floor(0.85 * RPM));
    // Shorter windows: the GCRA bound (see the file comment).
    for (const w of [5_000, 10_000, 30_000]) expect(perWindow[w]).toBeLessThanOrEqual(Math.ceil((w + MARGIN_MS) / INTERVAL_MS));
  });
});
