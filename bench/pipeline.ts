/**
 * `pnpm bench:pipeline`: end-to-end time of a 500-page async document on the local stack, with
 * an analyzer of fixed latency L (the fake Gemini server), against the ideal time for the fleet:
 *
 *   ideal = chunks / (workers x cap) x L + extraction (measured in the same run)
 *
 * and their ratio. Knobs (env): BENCH_PAGES (500), BENCH_LATENCY_MS (1000), BENCH_WORKERS (3),
 * BENCH_SHARDS (6), BENCH_CAP (4), BENCH_PAGES_PER_CHUNK (2), BENCH_GEMINI_RPM (0: no fleet-wide
 * limit; set it to include the DynamoDB rate limiter's cost), BENCH_WARMUP_PAGES (100; 0 for a
 * cold fleet). The fleet is measured in steady state: the document is submitted once the workers
 * hold the shards evenly and a small warm-up document has been through the pipeline.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createPdfExtractor, loadConfig } from '@docorch/core';
import { startEmulators, startFakeGemini, startPipeline, writePdf } from '@docorch/testkit';
import { fleetKnobs, knob, submitAndWait } from './lib.js';

const { PAGES, L, WORKERS, SHARDS, CAP, PAGES_PER_CHUNK } = fleetKnobs({ pagesPerChunk: 2 });
const WARMUP_PAGES = knob('BENCH_WARMUP_PAGES', 100);

const dir = await mkdtemp(path.join(os.tmpdir(), 'docorch-bench-pipeline-'));
const emulators = await startEmulators();
Object.assign(process.env, emulators.env);
const fake = await startFakeGemini({ latencyMs: L });
let pipeline: Awaited<ReturnType<typeof startPipeline>> | undefined;
try {
  const file = path.join(dir, 'doc.pdf');
  await writePdf(file, { pages: PAGES, seed: 42 });

  // Extraction as the splitter does it (same extractor, same limits), measured here.
  const extractor = createPdfExtractor(loadConfig());
  await extractor.extract(file, { maxPages: 100_000 }); // warm-up
  const e0 = performance.now();
  await extractor.extract(file, { maxPages: 100_000 });
  const extractionMs = performance.now() - e0;
  await extractor.close();

  pipeline = await startPipeline({
    workers: WORKERS,
    shards: SHARDS,
    prefix: 'bench',
    waitForBalance: true,
    env: {
      ANALYZER: 'gemini',
      GEMINI_BASE_URL: fake.url,
      GEMINI_API_KEY: 'bench',
      ANALYSIS_CONCURRENCY: String(CAP),
      // The quota is not what this bench measures (bench:gemini does): no fleet-wide limit here.
      GEMINI_RPM: process.env.BENCH_GEMINI_RPM ?? '0',
      GEMINI_TPM: '1000000000',
      // info: the split and the assembly log their phase timings, printed below.
      LOG_LEVEL: 'info',
    },
  });
  // Steady state, as the fleet runs in production: one small document first warms what a fresh
  // process or emulator pays once (V8 and the DynamoDB Local JVM compiling their hot paths, the
  // PDF workers' first large parse), so the figure is the pipeline's, not start-up's.
  if (WARMUP_PAGES > 0) {
    const warmFile = path.join(dir, 'warm-up.pdf');
    await writePdf(warmFile, { pages: WARMUP_PAGES, seed: 7 });
    await submitAndWait(pipeline, warmFile, PAGES_PER_CHUNK);
  }
  fake.clearLog();

  const run = await submitAndWait(pipeline, file, PAGES_PER_CHUNK);
  const { status, chunks, submittedAt } = run;
  const e2eMs = run.doneAt - run.submittedAt;
  // Where the time went, from the fake server's log: split (until the first call), the analysis
  // phase (first to last chunk call), the tail (reduce + bookkeeping), and the peak concurrency.
  const log = [...fake.log];
  const first = Math.min(...log.map((r) => r.at));
  const lastChunkEnd = Math.max(...log.slice(0, chunks).map((r) => r.respondedAt ?? r.at));
  let peak = 0;
  for (const r of log) peak = Math.max(peak, log.filter((o) => o.at <= r.at && (o.respondedAt ?? Infinity) > r.at).length);
  // How full the fleet's analysis slots were during the chunk phase: the time all were busy,
  // the ramp-up (first call until every slot is busy) and the tail (after the last full moment).
  const chunkCalls = log.slice(0, chunks);
  const busyMs = chunkCalls.reduce((sum, r) => sum + ((r.respondedAt ?? r.at) - r.at), 0);
  const slots = WORKERS * CAP;
  const fullAt = chunkCalls.filter((r) => chunkCalls.filter((o) => o.at <= r.at && (o.respondedAt ?? Infinity) > r.at).length >= slots).map((r) => r.at);
  const utilisation = busyMs / (slots * (lastChunkEnd - first));
  const meanCallMs = busyMs / chunkCalls.length;
  const idealMs = (chunks / (WORKERS * CAP)) * L + extractionMs;
  const calls = fake.totals().requests;
  console.log(`pipeline bench: ${PAGES} pages, ${chunks} chunks, ${WORKERS} workers x cap ${CAP}, ${SHARDS} shards, L = ${L} ms`);
  console.log(`  status:              ${status}; model calls: ${calls} (${chunks} chunks + ${calls - chunks} reduce)`);
  console.log(`  extraction:          ${(extractionMs / 1000).toFixed(2)} s (measured in this run)`);
  console.log(`  ideal:               ${(idealMs / 1000).toFixed(2)} s = ${chunks} / (${WORKERS} x ${CAP}) x ${L} ms + extraction`);
  console.log(`  end to end:          ${(e2eMs / 1000).toFixed(2)} s`);
  console.log(
    `  breakdown:           until first model call ${((first - submittedAt) / 1000).toFixed(2)} s, chunk calls ${((lastChunkEnd - first) / 1000).toFixed(2)} s, after ${((submittedAt + e2eMs - lastChunkEnd) / 1000).toFixed(2)} s; peak calls in flight ${peak}`,
  );
  const phase = (lines: string[], msg: string) =>
    lines.filter((l) => l.includes(`"msg":"${msg}"`)).map((l) => JSON.stringify((JSON.parse(l) as { ms?: unknown }).ms));
  const splitLine = pipeline.workers
    .flatMap((w) => w.output)
    .filter((l) => l.includes('"msg":"document split"'))
    .sort((a, b) => Date.parse((JSON.parse(a) as { time: string }).time) - Date.parse((JSON.parse(b) as { time: string }).time))
    .at(-1);
  const split = splitLine ? (JSON.parse(splitLine) as { time: string; ms: { published: number } }) : undefined;
  if (split) console.log(`  upload to split:     ${((Date.parse(split.time) - split.ms.published - submittedAt) / 1000).toFixed(2)} s (API, S3 upload, document.submitted read by a worker)`);
  console.log(`  split phases (ms):   ${splitLine ? JSON.stringify((JSON.parse(splitLine) as { ms: unknown }).ms) : '-'}`);
  console.log(`  assembly (ms):       ${phase(pipeline.aggregator.output, 'document assembled').slice(-1).join(' ')}`);
  console.log(
    `  analysis slots:      ${(utilisation * 100).toFixed(1)}% busy; mean call ${meanCallMs.toFixed(0)} ms; ramp-up ${fullAt.length ? ((Math.min(...fullAt) - first) / 1000).toFixed(2) : '-'} s, tail ${fullAt.length ? ((lastChunkEnd - Math.max(...fullAt)) / 1000).toFixed(2) : '-'} s`,
  );
  // Per worker: chunk analyses done (warm-up document included).
  const perWorker = await Promise.all(
    pipeline.workers.map(async (w) => {
      const metrics = await (await fetch(`${w.baseUrl}/metrics`)).text();
      const done = [...metrics.matchAll(/^docorch_analyses_total\{[^}]*\} (\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
      return `${done}`;
    }),
  );
  console.log(`  analyses per worker: ${perWorker.join(', ')} (warm-up included)`);
  console.log(`pipeline ratio (end-to-end / ideal, target <= 1.25): ${(e2eMs / idealMs).toFixed(3)}`);
} finally {
  await pipeline?.stop().catch(() => undefined);
  await fake.close();
  await emulators.stop();
  await rm(dir, { recursive: true, force: true });
}

