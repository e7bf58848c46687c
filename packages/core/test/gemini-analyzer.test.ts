/**
 * The Gemini analyzer against the fake Gemini server (real wire format, scripted failures).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startFakeGemini, type FakeGemini } from '../../testkit/src/fake-gemini/index.js';
import { CircuitBreaker } from '../src/analysis/circuit-breaker.js';
import { createAnalyzer } from '../src/analysis/factory.js';
import { createGeminiAnalyzer, type GeminiAnalyzerOptions, type ModelCallEvent } from '../src/analysis/gemini/gemini-analyzer.js';
import { addUsage, type ChunkInput, type Usage } from '../src/analysis/types.js';
import { ConfigError, loadConfig } from '../src/config.js';
import { MemoryRateLimiter } from '../src/ratelimit/memory-rate-limiter.js';
import { DocorchError } from '../src/errors.js';
import { createLogger } from '../src/telemetry/logger.js';

const MODEL = 'gemini-2.5-flash';
let fake: FakeGemini;

const chunk: ChunkInput = {
  tenantId: 't1',
  documentId: 'd1',
  chunkIndex: 0,
  analyses: ['summary', 'keyPoints', 'entities', 'sentiment'],
  pages: [
    {
      page: 3,
      text: 'Acme Corporation signed a supply agreement with Globex Ltd in Berlin on 12 March 2024. Jane Smith, the chief executive, called it a great success and a strong basis for growth. The contract is worth $4.5 million over three years.',
    },
    { page: 4, text: 'Jane Smith will report to the board of Acme Corporation. Prices rise by 3% per year under the agreement.' },
  ],
};

function analyzer(overrides: Partial<GeminiAnalyzerOptions> = {}) {
  return createGeminiAnalyzer({
    apiKey: 'test-key',
    model: MODEL,
    baseUrl: fake.url,
    timeoutMs: 2_000,
    retry: { maxAttempts: 4, baseMs: 5, capMs: 20 },
    ...overrides,
  });
}

async function rejection(promise: Promise<unknown>): Promise<DocorchError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DocorchError);
  return err as DocorchError;
}

function expectUsageMatchesServer(usage: Usage): void {
  const totals = fake.totals();
  expect(usage).toEqual({ inputTokens: totals.promptTokens, outputTokens: totals.candidatesTokens, modelCalls: totals.billedCalls });
}

beforeAll(async () => {
  fake = await startFakeGemini({ seed: 3 });
});
afterAll(async () => {
  await fake.close();
});
beforeEach(() => {
  fake.configure({ failures: null, failAll: false, latencyMs: 0, apiKey: null, models: null, retryDelayMs: 1000 });
  fake.clearLog();
});

describe('Gemini analyzer: answers', () => {
  it('analyses a chunk with one call: summary, key points, typed entities on the chunk pages, sentiment, usage', async () => {
    const a = analyzer();
    const out = await a.analyzeChunk(chunk);
    expect(a.name).toBe(`gemini/${MODEL}`);
    expect(out.summary).toContain('Acme Corporation');
    expect(out.keyPoints.length).toBeGreaterThan(0);
    const jane = out.entities.find((e) => e.text === 'Jane Smith');
    expect(jane).toEqual({ text: 'Jane Smith', type: 'PERSON', count: 2, pages: [3, 4] });
    for (const e of out.entities) {
      expect(e.pages.every((p) => p === 3 || p === 4)).toBe(true);
      expect(e.count).toBeGreaterThanOrEqual(e.pages.length);
    }
    expect(out.sentiment.label).toBe('positive');
    expect(out.textLength).toBe(chunk.pages.reduce((n, p) => n + p.text.length, 0));
    expect(out.failedPages).toEqual([]);
    expect(out.ocrPages).toBeUndefined();
    expect(out.usage.modelCalls).toBe(1);
    expectUsageMatchesServer(out.usage);
    expect(fake.log).toHaveLength(1);
    expect(fake.log[0]).toMatchObject({ model: MODEL, apiVersion: 'v1beta', pages: [3, 4], outcome: 'ok' });
  });

  it('asks only for the analyses requested; the others come back empty', async () => {
    const out = await analyzer().analyzeChunk({ ...chunk, analyses: ['summary'] });
    expect(out.summary).not.toBe('');
    expect(out.keyPoints).toEqual([]);
    expect(out.entities).toEqual([]);
    expect(out.sentiment).toEqual({ label: 'neutral', score: 0 });
  });

  it('sends scanned pages as inline image parts, marks them, and reports pages with neither text nor image', async () => {
    const image = { mimeType: 'image/png', data: Buffer.from('fake png bytes').toString('base64') };
    const out = await analyzer().analyzeChunk({
      ...chunk,
      pages: [
        { page: 7, text: 'Globex Ltd confirmed the order in London.' },
        { page: 8, text: '  ', image },
        { page: 9, text: '' },
      ],
    });
    expect(out.ocrPages).toEqual([8]);
    expect(out.failedPages).toEqual([{ page: 9, code: 'NO_TEXT_LAYER' }]);
    expect(fake.log[0]?.inlineData).toEqual([{ mimeType: 'image/png', bytes: 14 }]);
    expect(fake.log[0]?.pages).toEqual([7, 8]);
  });

  it('caps the text of one call: the page that crosses the cap is cut, later pages are TEXT_LIMIT', async () => {
    const page = (n: number) => ({ page: n, text: `Acme Corporation hired Jane Smith in Berlin. ${'More text about the agreement. '.repeat(60)}` });
    const pages = [page(1), page(2), page(3), page(4)];
    const per = pages[0]?.text.length ?? 0;
    const out = await analyzer({ maxChunkChars: Math.floor(per * 1.5) }).analyzeChunk({ ...chunk, pages });
    expect(out.failedPages).toEqual([
      { page: 3, code: 'TEXT_LIMIT' },
      { page: 4, code: 'TEXT_LIMIT' },
    ]);
    expect(out.textLength).toBe(Math.floor(per * 1.5));
    expect(fake.log[0]?.pages).toEqual([1, 2]);
    // The request carries the capped text (plus the prompt's own instructions and markup).
    expect(fake.log[0]?.textChars).toBeLessThan(per * 1.5 + 6_000);
  });

  it('makes no call when no page has text or an image', async () => {
    const out = await analyzer().analyzeChunk({ ...chunk, pages: [{ page: 1, text: '' }] });
    expect(out.failedPages).toEqual([{ page: 1, code: 'NO_TEXT_LAYER' }]);
    expect(out.usage).toEqual({ inputTokens: 0, outputTokens: 0, modelCalls: 0 });
    expect(fake.log).toHaveLength(0);
  });

  it('reduces summaries with one model call per step; a single part needs no call', async () => {
    const a = analyzer();
    const out = await a.reduceSummaries({
      summaries: ['The first part covers the contract.', 'The second part covers the prices.', 'The third part covers the term.'],
      keyPoints: ['Price rises 3%.', 'Term is three years.'],
      maxKeyPoints: 1,
    });
    expect(out.summary).toContain('The first part covers the contract.');
    expect(out.keyPoints).toEqual(['Price rises 3%.']);
    expect(out.usage.modelCalls).toBe(1);
    expectUsageMatchesServer(out.usage);

    const single = await a.reduceSummaries({ summaries: ['Only one.'], keyPoints: ['A point.'], maxKeyPoints: 5 });
    expect(single).toEqual({ summary: 'Only one.', keyPoints: ['A point.'], usage: { inputTokens: 0, outputTokens: 0, modelCalls: 0 } });
    expect(fake.log).toHaveLength(1);
  });
});

describe('Gemini analyzer: resilience', () => {
  it('honours a 429 RetryInfo retryDelay as the floor of the wait', async () => {
    fake.configure({ retryDelayMs: 1_200 });
    fake.enqueue('rateLimit');
    const out = await analyzer().analyzeChunk(chunk);
    expect(out.usage.modelCalls).toBe(1);
    const [first, second] = fake.log;
    expect(first?.outcome).toBe('rateLimit');
    expect(second?.outcome).toBe('ok');
    // The backoff alone would be under 20 ms; the retry waited for the server's delay.
    expect((second?.at ?? 0) - (first?.respondedAt ?? 0)).toBeGreaterThanOrEqual(1_190);
  });

  it('retries 503 and 500, then succeeds', async () => {
    fake.enqueue('unavailable', 'serverError');
    const events: ModelCallEvent[] = [];
    const out = await analyzer({ onModelCall: (e) => events.push(e) }).analyzeChunk(chunk);
    expect(out.summary).not.toBe('');
    expect(fake.log.map((r) => r.outcome)).toEqual(['unavailable', 'serverError', 'ok']);
    expect(events.map((e) => [e.attempt, e.outcome, e.httpStatus])).toEqual([
      [1, 'UPSTREAM_UNAVAILABLE', 503],
      [2, 'UPSTREAM_UNAVAILABLE', 500],
      [3, 'ok', 200],
    ]);
    expect(out.usage.modelCalls).toBe(1);
    expectUsageMatchesServer(out.usage);
  });

  it('a hanging call times out and is retried; after the attempts it is TIMEOUT', async () => {
    fake.enqueue('hang', 'hang', 'hang');
    const started = Date.now();
    const err = await rejection(analyzer({ timeoutMs: 200, retry: { maxAttempts: 3, baseMs: 1, capMs: 2 } }).analyzeChunk(chunk));
    expect(err.code).toBe('TIMEOUT');
    expect(err.retry).toBe('retry');
    expect(Date.now() - started).toBeGreaterThanOrEqual(590);
    expect(fake.log.map((r) => r.outcome)).toEqual(['hang', 'hang', 'hang']);
    await expect.poll(() => fake.log.every((r) => r.clientAborted)).toBe(true);

    fake.clearLog();
    fake.enqueue('hang');
    const out = await analyzer({ timeoutMs: 200 }).analyzeChunk(chunk);
    expect(out.summary).not.toBe('');
    expect(fake.log.map((r) => r.outcome)).toEqual(['hang', 'ok']);
  });

  it('retries malformed JSON a bounded number of times, then INVALID_MODEL_OUTPUT with the billed usage', async () => {
    fake.enqueue('malformedJson', 'invalidSchema', 'malformedJson');
    const err = await rejection(analyzer({ maxInvalidOutputRetries: 2 }).analyzeChunk(chunk));
    expect(err.code).toBe('INVALID_MODEL_OUTPUT');
    expect(err.details?.answers).toBe(3);
    expect(fake.log).toHaveLength(3);
    // The three answers were billed; the error carries their usage, equal to the server's sums.
    expectUsageMatchesServer(err.details?.usage as Usage);

    fake.clearLog();
    fake.enqueue('malformedJson');
    const out = await analyzer().analyzeChunk(chunk);
    expect(out.usage.modelCalls).toBe(2);
    expectUsageMatchesServer(out.usage);
  });

  it('a safety block is SAFETY_BLOCKED at once, never retried', async () => {
    for (const outcome of ['safetyPrompt', 'safetyCandidate'] as const) {
      fake.clearLog();
      fake.enqueue(outcome);
      const err = await rejection(analyzer().analyzeChunk(chunk));
      expect(err.code).toBe('SAFETY_BLOCKED');
      expect(err.retry).toBe('terminal');
      expect(fake.log).toHaveLength(1);
      expectUsageMatchesServer(err.details?.usage as Usage);
    }
  });

  it('maps exhausted retries: 429 -> THROTTLED with retryAfterMs, 503 -> UPSTREAM_UNAVAILABLE', async () => {
    fake.configure({ retryDelayMs: 30 });
    fake.enqueue('rateLimit', 'rateLimit');
    const throttled = await rejection(analyzer({ retry: { maxAttempts: 2, baseMs: 1, capMs: 2 } }).analyzeChunk(chunk));
    expect(throttled.code).toBe('THROTTLED');
    expect(throttled.retryAfterMs).toBe(30);
    expect(throttled.details).toMatchObject({ upstreamStatus: 429, upstreamCode: 'RESOURCE_EXHAUSTED' });

    fake.enqueue('unavailable', 'unavailable');
    const unavailable = await rejection(analyzer({ retry: { maxAttempts: 2, baseMs: 1, capMs: 2 } }).analyzeChunk(chunk));
    expect(unavailable.code).toBe('UPSTREAM_UNAVAILABLE');
    expect(unavailable.details?.upstreamStatus).toBe(503);
  });

  it('does not sit out a 429 whose retryDelay exceeds the longest accepted wait', async () => {
    fake.configure({ retryDelayMs: 90_000 });
    fake.enqueue('rateLimit');
    const err = await rejection(analyzer().analyzeChunk(chunk));
    expect(err.code).toBe('THROTTLED');
    expect(err.retryAfterMs).toBe(90_000);
    expect(fake.log).toHaveLength(1);
  });

  it('a bad key or an unknown model is not retried and stays retryable for the worker', async () => {
    fake.configure({ apiKey: 'the-real-key' });
    const auth = await rejection(analyzer().analyzeChunk(chunk));
    expect(auth.code).toBe('UPSTREAM_UNAVAILABLE');
    expect(auth.details?.reason).toBe('gemini-auth');
    expect(fake.log).toHaveLength(1);

    fake.configure({ apiKey: null, models: ['gemini-other'] });
    fake.clearLog();
    const config = await rejection(analyzer().analyzeChunk(chunk));
    expect(config.details?.reason).toBe('gemini-config');
    expect(fake.log).toHaveLength(1);
  });

  it("stops at once when the caller's signal aborts", async () => {
    fake.configure({ latencyMs: 5_000 });
    const controller = new AbortController();
    const started = Date.now();
    const pending = analyzer({ timeoutMs: 10_000 }).analyzeChunk(chunk, { signal: controller.signal });
    setTimeout(() => controller.abort(new DocorchError('TIMEOUT', 'sync budget spent')), 100);
    const err = await rejection(pending);
    expect(err.message).toBe('sync budget spent');
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(fake.log).toHaveLength(1);
  });

  it('usage over a mixed run equals the sums the server reported', async () => {
    fake.enqueue('ok', 'unavailable', 'ok', 'malformedJson', 'ok', 'rateLimit', 'ok');
    fake.configure({ retryDelayMs: 10 });
    const a = analyzer();
    const results = [];
    for (let i = 0; i < 4; i++) results.push(await a.analyzeChunk({ ...chunk, chunkIndex: i }));
    const reduced = await a.reduceSummaries({ summaries: results.map((r) => r.summary), keyPoints: results.flatMap((r) => r.keyPoints), maxKeyPoints: 5 });
    const usage = addUsage(...results.map((r) => r.usage), reduced.usage);
    expectUsageMatchesServer(usage);
    expect(usage.modelCalls).toBe(6);
  });
});

describe('Gemini analyzer: rate limiter and circuit breaker hooks', () => {
  it('acquires from the rate limiter before every HTTP call and settles the actual input tokens', async () => {
    const acquired: number[] = [];
    const settled: Array<[number, number]> = [];
    fake.enqueue('unavailable');
    const out = await analyzer({
      rateLimiter: {
        acquire: async (tokens) => void acquired.push(tokens),
        settle: async (estimated, actual) => void settled.push([estimated, actual]),
      },
    }).analyzeChunk(chunk);
    expect(acquired).toHaveLength(fake.log.length);
    expect(acquired[0]).toBeGreaterThan(50);
    expect(settled).toEqual([[acquired[0], out.usage.inputTokens]]);
  });

  it('analyzers sharing a limiter keep the rate the server sees under the quota, through failures and retries', async () => {
    // 6 requests per 1 s window (scaled down from a minute), 3 analyzers, 12 chunks at once, 30% failures.
    const limiter = new MemoryRateLimiter({ requestsPerWindow: 6, tokensPerWindow: 1_000_000, windowMs: 1_000, marginMs: 100 });
    fake.configure({ failures: { rateLimit: 0.1, unavailable: 0.1, hang: 0.1 }, retryDelayMs: 50 });
    const analyzers = [0, 1, 2].map(() => analyzer({ rateLimiter: limiter, timeoutMs: 300, retry: { maxAttempts: 8, baseMs: 10, capMs: 100 } }));
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) => (analyzers[i % 3] as ReturnType<typeof analyzer>).analyzeChunk({ ...chunk, chunkIndex: i })),
    );
    expect(results.every((r) => r.summary !== '')).toBe(true);
    expect(fake.ratePerWindow(1_000)).toBeLessThanOrEqual(6);
    expect(fake.log.length).toBeGreaterThan(12);
    expectUsageMatchesServer(addUsage(...results.map((r) => r.usage)));
  }, 30_000);

  it('a call that waited for the rate limiter while the circuit opened is not sent', async () => {
    let now = 0;
    const breaker = new CircuitBreaker({ minimumCalls: 2, failureRateThreshold: 0.5, openMs: 1_000, probes: 1, windowMs: 10_000, clock: { nowMs: () => now } });
    let letGo: () => void = () => undefined;
    const waiting = new Promise<void>((resolve) => (letGo = resolve));
    let asked = 0;
    const a = analyzer({
      circuitBreaker: breaker,
      retry: { maxAttempts: 3, baseMs: 1, capMs: 1 },
      rateLimiter: { acquire: async () => void (++asked === 1 ? await waiting : undefined) },
    });
    const held = a.analyzeChunk(chunk); // permit taken while closed, then held by the limiter
    await new Promise((r) => setTimeout(r, 20));
    expect(asked).toBe(1);
    breaker.onFailure();
    breaker.onFailure();
    expect(breaker.state).toBe('open');
    letGo();
    const err = await rejection(held);
    expect(err.code).toBe('UPSTREAM_UNAVAILABLE');
    expect(err.details?.reason).toBe('circuit-open');
    expect(fake.log).toHaveLength(0); // and not retried around the open circuit either
    expect(breaker.state).toBe('open');
  });

  it('an open circuit fails fast without an HTTP call, and probes close it again', async () => {
    let now = 0;
    const breaker = new CircuitBreaker({ minimumCalls: 2, failureRateThreshold: 0.5, openMs: 1_000, probes: 1, windowMs: 10_000, clock: { nowMs: () => now } });
    const a = analyzer({ circuitBreaker: breaker, retry: { maxAttempts: 1 } });
    fake.configure({ failAll: true });
    await rejection(a.analyzeChunk(chunk));
    await rejection(a.analyzeChunk(chunk));
    expect(breaker.state).toBe('open');
    const calls = fake.log.length;
    const fast = await rejection(a.analyzeChunk(chunk));
    expect(fast.code).toBe('UPSTREAM_UNAVAILABLE');
    expect(fast.details?.reason).toBe('circuit-open');
    expect(fast.retryAfterMs).toBe(1_000);
    expect(fake.log).toHaveLength(calls);

    fake.configure({ failAll: false });
    now += 1_000;
    expect(breaker.state).toBe('half-open');
    await a.analyzeChunk(chunk);
    expect(breaker.state).toBe('closed');
  });
});

describe('createAnalyzer', () => {
  const logger = createLogger({ service: 'test', level: 'silent' });

  it('builds the Gemini analyzer for ANALYZER=gemini with a fake server URL', async () => {
    const config = loadConfig({ ANALYZER: 'gemini', GEMINI_BASE_URL: fake.url, GEMINI_MODEL: MODEL, GEMINI_TIMEOUT_MS: '2000' });
    const a = createAnalyzer(config, logger);
    expect(a.name).toBe(`gemini/${MODEL}`);
    const out = await a.analyzeChunk(chunk);
    expect(out.summary).not.toBe('');
    await a.close();
  });

  it('refuses Gemini without a key or a base URL', () => {
    expect(() => createAnalyzer(loadConfig({ ANALYZER: 'gemini' }), logger)).toThrow(ConfigError);
  });
});
