import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeGemini, startPipeline, type FakeGemini, type Pipeline } from '@docorch/testkit';
import { getResult, submitGenerated, waitForTerminal } from './helpers.js';

describe('probe', () => {
  let pipeline: Pipeline;
  let fake: FakeGemini;
  beforeAll(async () => {
    fake = await startFakeGemini({ latencyMs: 300 });
    const t0 = Date.now();
    pipeline = await startPipeline({ workers: 1, shards: 2, prefix: 'probe', env: { ANALYZER: 'gemini', GEMINI_BASE_URL: fake.url, GEMINI_API_KEY: 'test', LOG_LEVEL: 'warn' } });
    console.log('pipeline start ms', Date.now() - t0);
  });
  afterAll(async () => {
    await pipeline?.stop();
    await fake?.close();
  });
  it('works', { timeout: 120_000 }, async () => {
    const t0 = Date.now();
    const id = await submitGenerated(pipeline, 30, { pagesPerChunk: '5' });
    const final = await waitForTerminal(pipeline, id, 60_000);
    console.log('done ms', Date.now() - t0, final.status);
    const result = await getResult(pipeline, id);
    console.log(JSON.stringify(fake.log.map((r) => ({ id: r.id, at: r.at, resp: r.respondedAt, pages: r.pages, outcome: r.outcome })), null, 0));
    console.log(JSON.stringify(result).slice(0, 3000));
    console.log(pipeline.workers[0]!.output.slice(-20).join('\n'));
    expect(final.status).toBe('completed');
  });
});
