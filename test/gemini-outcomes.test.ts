/**
 * What the model's answers do to a document (issue 4), on the whole system with the fake Gemini
 * scripted per chunk (`enqueueFor`, by the pages a request carries, so the order in which the
 * workers take the chunks does not matter):
 * - malformed output (truncated JSON, JSON off the schema) is asked again, and a chunk whose
 *   answers stay malformed fails with INVALID_MODEL_OUTPUT after 1 + GEMINI_MAX_INVALID_OUTPUT_RETRIES
 *   answers (a chunk whose later answer is valid succeeds);
 * - a safety block (prompt `blockReason`, candidate `finishReason: SAFETY`) fails only its chunk,
 *   at once, with SAFETY_BLOCKED;
 * - the document ends `completed_with_errors` with the failed pages listed with their codes;
 * - usage: every chunk's and the document's token counts equal the sums of `usageMetadata` the
 *   fake reported (billed answers, rejected ones included), and so does the tenant's month at
 *   GET /v1/usage.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeGemini, startPipeline, type FakeGemini, type FakeGeminiRequest, type Pipeline } from '@docorch/testkit';
import { chunkOfRequest, getResult, submitGenerated, waitFor, waitForTerminal } from './helpers.js';

const PAGES = 40;
const PAGES_PER_CHUNK = 4;
const CHUNKS = PAGES / PAGES_PER_CHUNK;
const MAX_INVALID_RETRIES = 2;

/** Chunk index -> what the fake answers its requests, in order (then valid answers). */
const SCRIPT = {
  /** Stays malformed: fails with INVALID_MODEL_OUTPUT. More than needed is scripted, so extra tries would show. */
  2: ['malformedJson', 'invalidSchema', 'malformedJson', 'malformedJson', 'malformedJson', 'malformedJson'],
  /** Malformed twice, then valid: succeeds. */
  4: ['invalidSchema', 'malformedJson'],
  6: ['safetyPrompt'],
  8: ['safetyCandidate'],
} as const;
const FAILED = { 2: 'INVALID_MODEL_OUTPUT', 6: 'SAFETY_BLOCKED', 8: 'SAFETY_BLOCKED' } as const;

const pagesOf = (chunk: number) => Array.from({ length: PAGES_PER_CHUNK }, (_, i) => chunk * PAGES_PER_CHUNK + i + 1);
const billed = (r: FakeGeminiRequest) => r.status === 200 && !r.clientAborted;
const usageOf = (requests: FakeGeminiRequest[]) => {
  const b = requests.filter(billed);
  return {
    inputTokens: b.reduce((n, r) => n + r.promptTokens, 0),
    outputTokens: b.reduce((n, r) => n + r.candidatesTokens, 0),
    modelCalls: b.length,
  };
};

describe('Gemini answers: malformed output, safety blocks, usage', () => {
  let fake: FakeGemini;
  let pipeline: Pipeline;

  beforeAll(async () => {
    fake = await startFakeGemini({ latencyMs: 50 });
    pipeline = await startPipeline({
      workers: 2,
      shards: 2,
      prefix: 'goutcome',
      // A steady fleet: a lease taken over while records are in flight would re-deliver them
      // (issue 12's hand-off), an extra model call that this test would count.
      waitForBalance: true,
      env: {
        LOG_LEVEL: 'warn',
        ANALYZER: 'gemini',
        GEMINI_API_KEY: 'test',
        GEMINI_BASE_URL: fake.url,
        GEMINI_MAX_INVALID_OUTPUT_RETRIES: String(MAX_INVALID_RETRIES),
      },
    });
  });
  afterAll(async () => {
    await pipeline?.stop();
    await fake?.close();
  });

  it('fails only the bad chunks, with their codes, and meters exactly what the model billed', { timeout: 180_000 }, async () => {
    for (const [chunk, outcomes] of Object.entries(SCRIPT)) {
      const first = pagesOf(Number(chunk))[0];
      fake.enqueueFor((r) => r.pages[0] === first, ...outcomes);
    }
    const id = await submitGenerated(pipeline, PAGES, { pagesPerChunk: String(PAGES_PER_CHUNK) });
    const final = await waitForTerminal(pipeline, id, 120_000).catch((err: unknown) => {
      pipeline.workers.forEach((w, i) => console.error([`worker ${i + 1} output:`, ...w.output.slice(-40)].join('\n')));
      throw err;
    });
    expect(final.status).toBe('completed_with_errors');
    expect(final.progress).toMatchObject({ chunksTotal: CHUNKS, chunksSucceeded: CHUNKS - 3, chunksFailed: 3 });

    const result = await getResult(pipeline, id);
    expect(result.status).toBe('completed_with_errors');
    const chunks = result.chunks as Array<{ index: number; status: string; error?: { code: string }; usage: Record<string, number> }>;
    expect(chunks.map((c) => [c.index, c.status, c.error?.code])).toEqual(
      Array.from({ length: CHUNKS }, (_, i) => {
        const code = FAILED[i as keyof typeof FAILED];
        return code ? [i, 'failed', code] : [i, 'succeeded', undefined];
      }),
    );
    // The failed pages, with their codes, and nothing else.
    expect(result.failedPages).toEqual(
      Object.entries(FAILED).flatMap(([chunk, code]) => pagesOf(Number(chunk)).map((page) => ({ page, code }))),
    );

    // What the fake saw, per chunk: a malformed answer was asked again, 1 + MAX_INVALID_RETRIES
    // answers in all for the chunk that stayed malformed (no worker-level retries on top); a
    // safety block was final at once.
    const log = [...fake.log];
    const byChunk = new Map<number, FakeGeminiRequest[]>();
    for (const r of log) {
      const chunk = chunkOfRequest(r, PAGES_PER_CHUNK);
      if (chunk !== undefined) byChunk.set(chunk, [...(byChunk.get(chunk) ?? []), r]);
    }
    const outcomes = (chunk: number) => (byChunk.get(chunk) ?? []).map((r) => r.outcome);
    expect(outcomes(2)).toEqual(SCRIPT[2].slice(0, 1 + MAX_INVALID_RETRIES));
    expect(outcomes(4)).toEqual([...SCRIPT[4], 'ok']);
    expect(outcomes(6)).toEqual(['safetyPrompt']);
    expect(outcomes(8)).toEqual(['safetyCandidate']);
    for (const i of [0, 1, 3, 5, 7, 9]) expect(outcomes(i)).toEqual(['ok']);
    const reduce = log.filter((r) => r.pages.length === 0);
    expect(reduce.length).toBeGreaterThan(0);
    expect(reduce.every((r) => r.outcome === 'ok')).toBe(true);

    // Usage: per chunk, per document, per tenant, all equal to the fake's own counts.
    for (const c of chunks) expect({ index: c.index, ...c.usage }).toEqual({ index: c.index, ...usageOf(byChunk.get(c.index) ?? []) });
    const totals = fake.totals();
    const expected = { inputTokens: totals.promptTokens, outputTokens: totals.candidatesTokens, modelCalls: totals.billedCalls };
    expect(expected.modelCalls).toBe(log.length); // every answer of this run was billed (no 429/5xx/hangs)
    expect(result.usage).toEqual(expected);
    expect(expected.inputTokens).toBeGreaterThan(0);
    // The reduce's usage is metered after the job is marked finished: wait for it to land.
    const month = await waitFor(
      'the tenant usage to include the reduce',
      async () => {
        const res = await fetch(`${pipeline.api.baseUrl}/v1/usage`, { headers: { authorization: `Bearer ${pipeline.apiKey}` } });
        expect(res.status).toBe(200);
        const body = (await res.json()) as Record<string, unknown>;
        return body.modelCalls === expected.modelCalls ? body : undefined;
      },
      10_000,
      200,
    ).catch(async (err: unknown) => {
      const res = await fetch(`${pipeline.api.baseUrl}/v1/usage`, { headers: { authorization: `Bearer ${pipeline.apiKey}` } });
      console.error(`usage: ${await res.text()}; expected ${JSON.stringify(expected)}`);
      throw err;
    });
    expect(month).toMatchObject({ tenantId: pipeline.tenantId, ...expected, chunks: CHUNKS });
    console.log(`outcomes: ${log.length} model calls; usage ${JSON.stringify(result.usage)}; tenant month ${JSON.stringify(month)}`);
  });
});
