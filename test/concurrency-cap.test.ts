/**
 * The analysis cap (issue 3): the highest number of chunk analyses in flight in one worker,
 * observed, equals ANALYSIS_CONCURRENCY and never exceeds it. The worker service runs in this
 * process (services/worker createWorkerService) with an onAnalysis hook; the API and the
 * aggregator run as child processes; the analyzer is a fake Gemini with a fixed latency, and far
 * more records are in flight (STREAM_RECORDS_IN_FLIGHT) than the cap, so the cap is what binds.
 * The fake's own view (overlapping requests) and the worker's /metrics gauge are checked too.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closePipelineContext, createLogger, createPdfExtractor, createPipelineContext, loadConfig, type PipelineContext } from '@docorch/core';
import { startFakeGemini, startPipeline, type FakeGemini, type Pipeline } from '@docorch/testkit';
import { createWorkerService, type WorkerService } from '../services/worker/src/service.js';
import { submitGenerated, waitForTerminal } from './helpers.js';

const CAP = 3;
const PAGES = 120;
const PAGES_PER_CHUNK = 5;

describe('analysis concurrency cap of one worker', () => {
  let fake: FakeGemini;
  let pipeline: Pipeline;
  let ctx: PipelineContext;
  let service: WorkerService;
  let inFlight = 0;
  let highest = 0;
  const overCap: number[] = [];
  let starts = 0;

  beforeAll(async () => {
    fake = await startFakeGemini({ latencyMs: 300 });
    const env = {
      LOG_LEVEL: 'warn',
      ANALYZER: 'gemini',
      GEMINI_API_KEY: 'test',
      GEMINI_BASE_URL: fake.url,
      ANALYSIS_CONCURRENCY: String(CAP),
      STREAM_RECORDS_IN_FLIGHT: '16',
      LEASE_FAILOVER_MS: '3000',
    };
    pipeline = await startPipeline({ workers: 0, shards: 2, prefix: 'cap', env });
    const config = loadConfig({ ...process.env, ...pipeline.env, WORKER_PORT: '0' });
    ctx = createPipelineContext(config, createLogger({ service: 'worker', level: 'warn' }), { extractor: createPdfExtractor(config) });
    service = createWorkerService(ctx, {
      workerId: 'cap-worker',
      onAnalysis: (e) => {
        if (e.phase === 'start') {
          starts++;
          inFlight++;
          highest = Math.max(highest, inFlight);
          if (inFlight > CAP) overCap.push(inFlight);
        } else inFlight--;
      },
    });
    await service.listen(0);
    await service.worker.run();
  });

  afterAll(async () => {
    await service?.close();
    if (ctx) await closePipelineContext(ctx);
    await pipeline?.stop();
    await fake?.close();
  });

  it(`never runs more than ${CAP} analyses at once, and reaches ${CAP}`, { timeout: 120_000 }, async () => {
    const id = await submitGenerated(pipeline, PAGES, { pagesPerChunk: String(PAGES_PER_CHUNK) });
    // Sample the service's own gauge while the document runs.
    let gaugeMax = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        gaugeMax = Math.max(gaugeMax, (await service.metrics.analysesInFlight.get()).values.reduce((n, v) => n + v.value, 0));
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const final = await waitForTerminal(pipeline, id, 90_000);
    sampling = false;
    await sampler;
    expect(final.status).toBe('completed');

    // What the model saw: the most requests open at one time.
    const chunkRequests = fake.log.filter((r) => r.pages.length > 0);
    const edges = chunkRequests.flatMap((r) => [
      { at: r.at, d: 1 },
      { at: r.respondedAt ?? Number.POSITIVE_INFINITY, d: -1 },
    ]);
    edges.sort((a, b) => a.at - b.at || a.d - b.d);
    let open = 0;
    let fakeMax = 0;
    for (const e of edges) fakeMax = Math.max(fakeMax, (open += e.d));

    console.log(
      `concurrency-cap: ${JSON.stringify({ cap: CAP, highestObserved: highest, overCap: overCap.length, gaugeMax, fakeMax, analyses: starts, chunks: PAGES / PAGES_PER_CHUNK })}`,
    );
    expect(overCap).toEqual([]);
    expect(highest).toBe(CAP);
    expect(gaugeMax).toBeLessThanOrEqual(CAP);
    expect(fakeMax).toBeLessThanOrEqual(CAP);
    expect(inFlight).toBe(0);
    expect(starts).toBeGreaterThanOrEqual(PAGES / PAGES_PER_CHUNK);
  });
});
