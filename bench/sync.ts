/**
 * `pnpm bench:sync`: the sync path's answer time (POST /v1/documents, mode sync, through the API
 * process on the emulators) for a 3-page and a 20-page document, against the bare work: the same
 * extraction (the PDF worker processes) and the same analysis (the Gemini analyzer against the
 * same fake model, chunks under the same cap, then the reduce) called in this process, with
 * nothing stored. Medians of BENCH_RUNS after one warm-up each; prints both and their ratio.
 *
 * What the ratio charges to the API: the multipart upload to a temp file, the PDF inspection
 * (page count, encryption), the metadata and job rows, the source and the result in S3, usage
 * metering, and the HTTP round trip.
 *
 * Knobs (env): BENCH_LATENCY_MS (300), BENCH_RUNS (5).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pLimit from 'p-limit';
import {
  ANALYSIS_KINDS,
  analyzeChunk,
  assembleOptionsFrom,
  assembleResult,
  createAnalyzer,
  createLogger,
  createPdfExtractor,
  loadConfig,
  planExtractedPages,
  toPageText,
} from '@docorch/core';
import { startEmulators, startFakeGemini, startPipeline, writePdf } from '@docorch/testkit';
import { knob } from './lib.js';

const L = knob('BENCH_LATENCY_MS', 300);
const RUNS = knob('BENCH_RUNS', 5);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

const dir = await mkdtemp(path.join(os.tmpdir(), 'docorch-bench-sync-'));
const emulators = await startEmulators();
Object.assign(process.env, emulators.env);
const fake = await startFakeGemini({ latencyMs: L });
const env = { ANALYZER: 'gemini', GEMINI_BASE_URL: fake.url, GEMINI_API_KEY: 'bench' };
const pipeline = await startPipeline({ workers: 1, shards: 1, prefix: 'benchsync', env });
const config = loadConfig({ ...process.env, ...pipeline.env, ...env, LOG_LEVEL: 'silent' });
const logger = createLogger({ service: 'bench-sync', level: 'silent' });
const extractor = createPdfExtractor(config);
const analyzer = createAnalyzer(config, logger);
try {
  await extractor.warmUp();
  console.log(`bench:sync: fake model ${L} ms, chunks planned by tokens (target ${config.CHUNK_TARGET_TOKENS}, at least ${config.CHUNK_MIN_COUNT} chunks or ${config.PAGES_PER_CHUNK} pages a chunk), ${config.ANALYSIS_CONCURRENCY} analyses at once; medians of ${RUNS}`);
  for (const pages of [3, 20]) {
    const file = path.join(dir, `doc-${pages}.pdf`);
    await writePdf(file, { pages, seed: pages });
    const bytes = await readFile(file);

    const api = async () => {
      const form = new FormData();
      form.set('mode', 'sync');
      form.set('file', new Blob([bytes], { type: 'application/pdf' }), path.basename(file));
      const t0 = performance.now();
      const res = await fetch(`${pipeline.api.baseUrl}/v1/documents`, { method: 'POST', body: form, headers: { authorization: `Bearer ${pipeline.apiKey}` } });
      const body = (await res.json()) as { status?: string };
      if (res.status !== 200 || body.status !== 'completed') throw new Error(`sync answered ${res.status} ${JSON.stringify(body).slice(0, 200)}`);
      return performance.now() - t0;
    };
    const bare = async () => {
      const t0 = performance.now();
      const extraction = await extractor.extract(file, { maxPages: config.MAX_PAGES });
      const { plan } = planExtractedPages(config, extraction.pages);
      const doc = { tenantId: 'bench', documentId: 'bench', pages: new Map(extraction.pages.map((p) => [p.page, toPageText(p)])), analyses: ANALYSIS_KINDS };
      const limit = pLimit(config.ANALYSIS_CONCURRENCY);
      const chunks = await Promise.all(plan.map((chunk) => limit(() => analyzeChunk(analyzer, doc, chunk, logger))));
      const result = await assembleResult(
        { documentId: 'bench', analyzer, chunks, pageCount: extraction.info.pageCount, pagesSelected: extraction.pages.length },
        assembleOptionsFrom(config),
      );
      if (result.status !== 'completed') throw new Error(`bare work: ${result.status}`);
      return performance.now() - t0;
    };
    await api();
    await bare();
    const apiMs: number[] = [];
    const bareMs: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      apiMs.push(await api());
      bareMs.push(await bare());
    }
    const a = median(apiMs);
    const b = median(bareMs);
    console.log(
      `  ${String(pages).padStart(2)} pages: sync answer ${a.toFixed(0)} ms, bare work ${b.toFixed(0)} ms: ratio ${(a / b).toFixed(2)} (overhead ${(a - b).toFixed(0)} ms)   api [${apiMs.map((x) => x.toFixed(0)).join(', ')}] bare [${bareMs.map((x) => x.toFixed(0)).join(', ')}]`,
    );
  }
} finally {
  await extractor.close();
  await pipeline.stop();
  await fake.close();
  await emulators.stop();
  await rm(dir, { recursive: true, force: true });
}
