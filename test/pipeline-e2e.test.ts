/**
 * The async pipeline end to end on the local stack: 3 workers, 4 shards, a 300-page PDF.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPipeline, type Pipeline } from '@docorch/testkit';
import { getResult, submitGenerated, waitForTerminal, type StatusView } from './helpers.js';

describe('async pipeline, 3 workers on 4 shards', () => {
  let pipeline: Pipeline;
  beforeAll(async () => {
    pipeline = await startPipeline({ workers: 3, shards: 4, prefix: 'e2e', env: { LOG_LEVEL: process.env.E2E_LOG_LEVEL ?? 'warn' } });
  });
  afterAll(async () => {
    await pipeline?.stop();
  });

  it('completes a 300-page document with contiguous chunks and monotonic progress', { timeout: 300_000 }, async () => {
    const id = await submitGenerated(pipeline, Number(process.env.E2E_PAGES ?? 300));
    const seen: StatusView[] = [];
    const final = await waitForTerminal(pipeline, id, Number(process.env.E2E_WAIT_MS ?? 240_000), (v) => seen.push(v)).catch((err: unknown) => {
      console.error(['aggregator output:', ...pipeline.aggregator.output.slice(-40)].join('\n'));
      pipeline.workers.forEach((w, i) => console.error([`worker ${i + 1} output:`, ...w.output.slice(-60)].join('\n')));
      throw err;
    });
    expect(final.status).toBe('completed');
    // Progress never went backwards, and was observed moving.
    const percents = seen.map((v) => v.progress.percent);
    for (let i = 1; i < percents.length; i++) expect(percents[i]).toBeGreaterThanOrEqual(percents[i - 1] as number);
    const done = seen.map((v) => v.progress.chunksSucceeded + v.progress.chunksFailed);
    for (let i = 1; i < done.length; i++) expect(done[i]).toBeGreaterThanOrEqual(done[i - 1] as number);
    expect(new Set(percents).size).toBeGreaterThan(2);

    const result = await getResult(pipeline, id);
    expect(result.pages).toEqual({ total: 300, analysed: 300, selection: 'all' });
    expect(result.failedPages).toEqual([]);
    const ranges = (result.chunks as Array<{ index: number; pages: [number, number]; status: string }>).map((c) => c.pages);
    expect(ranges[0]?.[0]).toBe(1);
    expect(ranges[ranges.length - 1]?.[1]).toBe(300);
    for (let i = 1; i < ranges.length; i++) expect(ranges[i]?.[0]).toBe((ranges[i - 1]?.[1] as number) + 1);
    expect(result.summary.length).toBeGreaterThan(0);
    expect(result.entities.length).toBeGreaterThan(0);
  });
});
