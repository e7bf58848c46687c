/**
 * `pnpm bench:rescale`: a 1,000-page document (2 pages a chunk: 500 model calls) on a fleet of 2
 * workers with a fixed-latency fake model, twice in one run:
 *
 * - the reference: the fleet stays at 2 workers;
 * - the rescale: a 3rd worker starts when a fifth of the chunks are done (it gets its shards by
 *   graceful hand-off, docs/lease-lifecycle.md), and stops (SIGTERM: drains, checkpoints, hands
 *   its leases back) once 60% are done and it has held shards for 3 s.
 *
 * The fleet has no model quota (GEMINI_RPM=0), so its analysis slots bound the pace.
 * Prints for each: end-to-end time, the longest gap between two model calls (from the fake's
 * log), the chunks analysed more than once; then the rescale's time over the reference's.
 *
 * Knobs (env): BENCH_PAGES (1000), BENCH_LATENCY_MS (300), BENCH_SHARDS (6), BENCH_CAP (4),
 * BENCH_PAGES_PER_CHUNK (2).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startEmulators, startFakeGemini, startPipeline, workerShards, writePdf, type FakeGemini, type FakeGeminiRequest } from '@docorch/testkit';
import { knob, submitAndWait } from './lib.js';

const PAGES = knob('BENCH_PAGES', 1000);
const L = knob('BENCH_LATENCY_MS', 300);
const SHARDS = knob('BENCH_SHARDS', 6);
const CAP = knob('BENCH_CAP', 4);
const PAGES_PER_CHUNK = knob('BENCH_PAGES_PER_CHUNK', 2);

interface Outcome {
  label: string;
  status: string;
  chunks: number;
  seconds: number;
  longestGapMs: number;
  gapAt: number;
  repeated: number;
  calls: number;
  events: string[];
}

async function once(label: string, fake: FakeGemini, file: string, rescale: boolean): Promise<Outcome> {
  const pipeline = await startPipeline({
    workers: 2,
    shards: SHARDS,
    prefix: rescale ? 'rsc' : 'rsref',
    waitForBalance: true,
    env: {
      LEASE_GRACEFUL_HANDOFF: 'on', // what this benchmark measures (the services' default too)
      ANALYZER: 'gemini',
      GEMINI_BASE_URL: fake.url,
      GEMINI_API_KEY: 'bench',
      ANALYSIS_CONCURRENCY: String(CAP),
      // No fleet quota: the fleet's slots are the bottleneck, so a third worker matters.
      GEMINI_RPM: '0',
    },
  });
  const events: string[] = [];
  try {
    fake.clearLog();
    let started = false;
    let stopping: Promise<void> | undefined;
    /** When the 3rd worker first held a shard (it reads /healthz), and how many it holds. */
    let thirdSince: number | undefined;
    let thirdShards = 0;
    const t0 = performance.timeOrigin + performance.now();
    const at = () => `+${((performance.timeOrigin + performance.now() - t0) / 1000).toFixed(1)} s`;
    const run = await submitAndWait(pipeline, file, PAGES_PER_CHUNK, 100, (view) => {
      if (!rescale) return;
      const done = (view.progress.chunksSucceeded + view.progress.chunksFailed) / Math.max(1, view.progress.chunksTotal);
      if (!started && view.progress.chunksTotal > 0 && done >= 0.2) {
        started = true;
        events.push(`${at()}: 3rd worker starting (${(done * 100).toFixed(0)}% done)`);
        void pipeline.startWorker('w3').then(() => events.push(`${at()}: 3rd worker up`));
      }
      const third = pipeline.workers[2];
      if (third && !stopping) {
        void workerShards([third]).then(([shards]) => {
          thirdShards = shards?.length ?? 0;
          if (thirdShards > 0 && thirdSince === undefined) {
            thirdSince = performance.now();
            events.push(`${at()}: 3rd worker holds ${thirdShards} shard(s)`);
          }
        });
      }
      // Shrink once 60% is done and the 3rd worker has worked for 3 s at least.
      if (third && !stopping && done >= 0.6 && thirdSince !== undefined && performance.now() - thirdSince >= 3_000) {
        events.push(`${at()}: 3rd worker stopping with ${thirdShards} shard(s) (${(done * 100).toFixed(0)}% done)`);
        stopping = third.stop(30_000).then(() => void events.push(`${at()}: 3rd worker stopped`));
      }
    });
    await stopping;
    const calls: FakeGeminiRequest[] = fake.log.filter((r) => r.pages.length > 0 && r.status === 200).sort((a, b) => a.at - b.at);
    // Chunk calls only (the document's reduce calls carry no page markup of their own chunk).
    const byChunk = new Map<number, number>();
    for (const r of calls) byChunk.set(r.pages[0] as number, (byChunk.get(r.pages[0] as number) ?? 0) + 1);
    let longestGapMs = 0;
    let gapAt = 0;
    for (let i = 1; i < calls.length; i++) {
      const gap = (calls[i] as FakeGeminiRequest).at - (calls[i - 1] as FakeGeminiRequest).at;
      if (gap > longestGapMs) {
        longestGapMs = gap;
        gapAt = ((calls[i - 1] as FakeGeminiRequest).at - t0) / 1000;
      }
    }
    return {
      label,
      status: run.status,
      chunks: run.chunks,
      seconds: (run.doneAt - run.submittedAt) / 1000,
      longestGapMs,
      gapAt,
      repeated: [...byChunk.values()].filter((n) => n > 1).length,
      calls: calls.length,
      events,
    };
  } finally {
    await pipeline.stop();
  }
}

const dir = await mkdtemp(path.join(os.tmpdir(), 'docorch-bench-rescale-'));
const emulators = await startEmulators();
Object.assign(process.env, emulators.env);
const fake = await startFakeGemini({ latencyMs: L });
try {
  const file = path.join(dir, 'doc.pdf');
  await writePdf(file, { pages: PAGES, seed: 7 });
  console.log(`bench:rescale: ${PAGES} pages, ${PAGES_PER_CHUNK} a chunk, fake model ${L} ms, ${SHARDS} shards, ${CAP} analyses a worker`);
  const reference = await once('2 workers throughout', fake, file, false);
  const rescaled = await once('2 -> 3 -> 2 workers', fake, file, true);
  for (const o of [reference, rescaled]) {
    console.log(
      `  ${o.label.padEnd(22)} ${o.status}, ${o.chunks} chunks in ${o.seconds.toFixed(1)} s; longest gap between model calls ${o.longestGapMs} ms (at +${o.gapAt.toFixed(1)} s); chunks analysed more than once: ${o.repeated} (${o.calls} calls)`,
    );
    for (const e of o.events) console.log(`      ${e}`);
  }
  console.log(`  end to end, rescale / reference: ${(rescaled.seconds / reference.seconds).toFixed(2)}`);
} finally {
  await fake.close();
  await emulators.stop();
  await rm(dir, { recursive: true, force: true });
}
