/** What the pipeline benchmarks share: submitting a PDF asynchronously and polling it to the end. */
import { readFile } from 'node:fs/promises';
import path from 'node:path';

/** The API a benchmark talks to (a started pipeline is one). */
export interface BenchApi {
  api: { baseUrl: string };
  apiKey: string;
}

const TERMINAL = ['completed', 'completed_with_errors', 'failed'];

/** A numeric knob from the environment, with its default. */
export const knob = (name: string, def: number): number => Number(process.env[name] ?? def);

/** The knobs both pipeline benchmarks take (env BENCH_*), with their defaults. */
export function fleetKnobs(defaults: { pagesPerChunk: number }) {
  return {
    PAGES: knob('BENCH_PAGES', 500),
    L: knob('BENCH_LATENCY_MS', 1000),
    WORKERS: knob('BENCH_WORKERS', 3),
    SHARDS: knob('BENCH_SHARDS', 6),
    CAP: knob('BENCH_CAP', 4),
    PAGES_PER_CHUNK: knob('BENCH_PAGES_PER_CHUNK', defaults.pagesPerChunk),
  };
}

/**
 * Submits `file` with `mode=async` and polls its status every `everyMs` until the job is finished.
 * Returns the id, the final status, the number of chunks, and the submission and end times
 * (epoch ms, from `performance`, so sub-millisecond differences are kept).
 */
export async function submitAndWait(
  target: BenchApi,
  file: string,
  /** Pages per chunk; undefined: the service's default plan (by tokens). */
  pagesPerChunk: number | undefined,
  everyMs = 50,
  /** Told of every status view polled, with its time (epoch ms). */
  onView?: (view: { status: string; progress: { chunksTotal: number; chunksSucceeded: number; chunksFailed: number } }, at: number) => void,
): Promise<{ id: string; status: string; chunks: number; submittedAt: number; doneAt: number }> {
  const headers = { authorization: `Bearer ${target.apiKey}` };
  const form = new FormData();
  form.set('mode', 'async');
  if (pagesPerChunk !== undefined) form.set('pagesPerChunk', String(pagesPerChunk));
  form.set('file', new Blob([await readFile(file)], { type: 'application/pdf' }), path.basename(file));
  const submittedAt = performance.timeOrigin + performance.now();
  const res = await fetch(`${target.api.baseUrl}/v1/documents`, { method: 'POST', body: form, headers });
  if (res.status !== 202) throw new Error(`submit answered ${res.status}: ${await res.text()}`);
  const { id } = (await res.json()) as { id: string };
  for (;;) {
    const view = (await (await fetch(`${target.api.baseUrl}/v1/documents/${id}`, { headers })).json()) as {
      status: string;
      progress: { chunksTotal: number; chunksSucceeded: number; chunksFailed: number };
    };
    onView?.(view, performance.timeOrigin + performance.now());
    if (TERMINAL.includes(view.status)) {
      return { id, status: view.status, chunks: view.progress.chunksTotal, submittedAt, doneAt: performance.timeOrigin + performance.now() };
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
