/**
 * `pnpm bench:fairness`: how much tenant A's backlog delays tenant B's small document.
 *
 * On one fleet (2 workers, 4 shards, a fake model of fixed latency L), in the same run:
 *   idle   = end-to-end time of B's 5-page document on an idle fleet (after a warm-up document);
 *   loaded = the same document submitted right after A's 2,000-page document (1 page per chunk);
 * and the ratio loaded / idle (target at most 2.0; without fair share, B waits for the whole of
 * A's document). A's document is deleted once B's is done. Where B's time went is printed from
 * the fake model's log (B's pages carry its label) and its job row.
 *
 * Knobs (env): BENCH_LATENCY_MS (1000, as bench:pipeline; at 300 ms the emulators, not the fleet, saturate on a 2-core machine), BENCH_BIG_PAGES (2000), BENCH_SMALL_PAGES (5),
 * BENCH_WORKERS (2), BENCH_SHARDS (4), BENCH_CAP (4), BENCH_RUNS (3: the loaded and idle
 * figures are medians of this many runs).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createAwsClients, loadConfig, TenantStore } from '@docorch/core';
import { startEmulators, startFakeGemini, startPipeline, writePdf, type FakeGemini } from '@docorch/testkit';
import { knob, submitAndWait, type BenchApi } from './lib.js';

const L = knob('BENCH_LATENCY_MS', 1000);
const BIG = knob('BENCH_BIG_PAGES', 2000);
const SMALL = knob('BENCH_SMALL_PAGES', 5);
const WORKERS = knob('BENCH_WORKERS', 2);
const SHARDS = knob('BENCH_SHARDS', 4);
const CAP = knob('BENCH_CAP', 4);
const RUNS = knob('BENCH_RUNS', 3);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

const dir = await mkdtemp(path.join(os.tmpdir(), 'docorch-bench-fairness-'));
const emulators = await startEmulators();
Object.assign(process.env, emulators.env);
const fake: FakeGemini = await startFakeGemini({ latencyMs: L });
let pipeline: Awaited<ReturnType<typeof startPipeline>> | undefined;
try {
  const bigFile = path.join(dir, 'big.pdf');
  const smallFile = path.join(dir, 'small.pdf');
  await writePdf(bigFile, { pages: BIG, seed: 5, label: 'TENANT-A' });
  await writePdf(smallFile, { pages: SMALL, seed: 6, label: 'TENANT-B' });

  pipeline = await startPipeline({
    workers: WORKERS,
    shards: SHARDS,
    prefix: 'benchfair',
    waitForBalance: true,
    env: {
      ANALYZER: 'gemini',
      GEMINI_BASE_URL: fake.url,
      GEMINI_API_KEY: 'bench',
      ANALYSIS_CONCURRENCY: String(CAP),
      GEMINI_RPM: '0',
      GEMINI_TPM: '1000000000',
      // info: the split logs its phase timings, printed below for B's document.
      LOG_LEVEL: 'info',
    },
  });
  const config = loadConfig({ ...process.env, ...pipeline.env });
  const aws = createAwsClients(config);
  const tenants = new TenantStore(aws.doc, config.TENANTS_TABLE);
  const tenantB = `bench-b-${Date.now().toString(36)}`;
  await tenants.createTenant({ tenantId: tenantB, name: 'tenant B' });
  const b: BenchApi = { api: pipeline.api, apiKey: (await tenants.createKey(tenantB, { name: 'bench' })).key };
  const a: BenchApi = pipeline;
  aws.destroy();

  // Warm-up: what a fresh process or emulator pays once is not the figure.
  await submitAndWait(b, smallFile, 1);
  await submitAndWait(a, smallFile, 1);

  /** B's document, timed, with where its time went. */
  const timeB = async (): Promise<{ ms: number; firstCallMs: number; lastCallMs: number; countedMs: number; split: string }> => {
    const before = fake.log.length;
    const marks = (pipeline?.workers ?? []).map((w) => w.output.length);
    let countedAt = Number.NaN;
    const run = await submitAndWait(b, smallFile, 1, 25, (view, at) => {
      if (Number.isNaN(countedAt) && view.progress.chunksTotal > 0 && view.progress.chunksSucceeded + view.progress.chunksFailed === view.progress.chunksTotal) countedAt = at;
    });
    const calls = fake.log.slice(before).filter((r) => r.sample.includes('TENANT-B'));
    const t0 = run.submittedAt;
    // The split's own log line: when it ended (relative to the submission) and its phases.
    const line = (pipeline?.workers ?? [])
      .flatMap((w, i) => w.output.slice(marks[i]))
      .map((l) => { try { return JSON.parse(l) as { msg?: string; documentId?: string; time?: string; ms?: Record<string, number> }; } catch { return {}; } })
      .find((l) => l.msg === 'document split' && l.documentId === run.id);
    const split = line?.time ? `split done at ${(Date.parse(line.time) - t0).toFixed(0)} ms, phases ${JSON.stringify(line.ms)}` : 'split log not found';
    return {
      split,
      ms: run.doneAt - t0,
      firstCallMs: Math.min(...calls.map((r) => r.at)) - t0,
      lastCallMs: Math.max(...calls.map((r) => r.respondedAt ?? r.at)) - t0,
      countedMs: (Number.isNaN(countedAt) ? run.doneAt : countedAt) - t0,
    };
  };

  /** Waits until every worker has had nothing in flight for a second (at most a minute). */
  const quiet = async (): Promise<void> => {
    const deadline = Date.now() + 60_000;
    let since = Date.now();
    let views: Array<{ inFlight?: number }> = [];
    while (Date.now() < deadline) {
      views = await Promise.all(
        (pipeline?.workers ?? []).map((w) => fetch(`${w.baseUrl}/healthz`).then((r) => r.json() as Promise<{ inFlight?: number }>).catch(() => ({ inFlight: 1 }))),
      );
      if (views.some((v) => (v.inFlight ?? 0) > 0)) since = Date.now();
      else if (Date.now() - since >= 1_000) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`the fleet did not go quiet within a minute: ${JSON.stringify(views)}\n${(pipeline?.workers ?? []).map((w) => w.output.slice(-15).join('\n')).join('\n---\n')}`);
  };

  const idle: number[] = [];
  const loaded: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    await quiet();
    const quietRun = await timeB();
    idle.push(quietRun.ms);
    console.log(`run ${i + 1}: B on an idle fleet: ${quietRun.ms.toFixed(0)} ms (first model call at ${quietRun.firstCallMs.toFixed(0)} ms, last answer at ${quietRun.lastCallMs.toFixed(0)} ms, all chunks counted at ${quietRun.countedMs.toFixed(0)} ms)`);

    // A's large document first, then B's right after it.
    const form = new FormData();
    form.set('mode', 'async');
    form.set('pagesPerChunk', '1');
    const { readFile } = await import('node:fs/promises');
    form.set('file', new Blob([await readFile(bigFile)], { type: 'application/pdf' }), 'big.pdf');
    const res = await fetch(`${a.api.baseUrl}/v1/documents`, { method: 'POST', body: form, headers: { authorization: `Bearer ${a.apiKey}` } });
    if (res.status !== 202) throw new Error(`A's submit answered ${res.status}: ${await res.text()}`);
    const bigId = ((await res.json()) as { id: string }).id;
    const busy = await timeB();
    loaded.push(busy.ms);
    const view = (await (await fetch(`${a.api.baseUrl}/v1/documents/${bigId}`, { headers: { authorization: `Bearer ${a.apiKey}` } })).json()) as {
      progress: { chunksSucceeded: number; chunksTotal: number };
    };
    console.log(
      `run ${i + 1}: B right after A's ${BIG}-page document: ${busy.ms.toFixed(0)} ms (first model call at ${busy.firstCallMs.toFixed(0)} ms, last answer at ${busy.lastCallMs.toFixed(0)} ms, all chunks counted at ${busy.countedMs.toFixed(0)} ms); A had ${view.progress.chunksSucceeded} of ${view.progress.chunksTotal} chunks done; B's ${busy.split}`,
    );
    const deleted = await fetch(`${a.api.baseUrl}/v1/documents/${bigId}`, { method: 'DELETE', headers: { authorization: `Bearer ${a.apiKey}` } });
    if (deleted.status !== 200 && deleted.status !== 204) throw new Error(`DELETE of A's document answered ${deleted.status}: ${await deleted.text()}`);
    // The next idle measurement starts once the cancelled document's work has drained.
    await quiet();
  }
  const idleMs = median(idle);
  const loadedMs = median(loaded);
  console.log(`fleet: ${WORKERS} workers, ${SHARDS} shards, ${CAP} analyses each, model latency ${L} ms; medians of ${RUNS} runs`);
  console.log(`B's ${SMALL}-page document on an idle fleet: ${idleMs.toFixed(0)} ms`);
  console.log(`B's ${SMALL}-page document under A's ${BIG}-page load: ${loadedMs.toFixed(0)} ms`);
  console.log(`fairness ratio ${(loadedMs / idleMs).toFixed(2)}`);
} finally {
  await pipeline?.stop();
  await fake.close();
  await emulators.stop();
  await rm(dir, { recursive: true, force: true });
}
