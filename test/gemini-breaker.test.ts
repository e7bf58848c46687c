/**
 * The model circuit breaker on the whole system (issue 4): while the fake Gemini fails every
 * call (503, `failAll`), each worker's breaker opens and the workers stop sending: the fake's
 * log shows the rate dropping from a full fleet's retries to one probe per worker per
 * CIRCUIT_OPEN_MS. When the model recovers, a probe succeeds, the breakers close and the
 * document completes with every chunk succeeded: the chunks waited (their records stayed in
 * flight) instead of using up their attempts, so nothing is lost.
 *
 * Small knobs keep it bounded: a 4 s window, 4 calls before a breaker may open, 4 s open,
 * 1 probe. The outage starts once the whole fleet is busy (every worker's cap in flight).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maxInWindow, startFakeGemini, startPipeline, type FakeGemini, type Pipeline } from '@docorch/testkit';
import { expectEveryChunkSucceeded, getResult, getStatus, submitGenerated, waitFor, waitForTerminal } from './helpers.js';

const WORKERS = 3;
const CAP = 4;
const PAGES = 200;
const PAGES_PER_CHUNK = 2;
const CHUNKS = PAGES / PAGES_PER_CHUNK;
const OPEN_MS = 4_000;
const PROBES = 1;
/** How long the model is down. */
const OUTAGE_MS = 20_000;

/** Epoch ms at which a worker's breaker logged a transition to `to`. */
function transitions(output: readonly string[], to: string): number[] {
  const times: number[] = [];
  for (const line of output) {
    if (!line.includes('model circuit breaker changed state')) continue;
    try {
      const entry = JSON.parse(line) as { time?: string | number; circuit?: { to?: string } };
      if (entry.circuit?.to === to) times.push(typeof entry.time === 'number' ? entry.time : Date.parse(String(entry.time)));
    } catch {
      // not a JSON log line
    }
  }
  return times;
}

describe('Gemini circuit breaker: a full outage and the recovery', () => {
  let fake: FakeGemini;
  let pipeline: Pipeline;

  beforeAll(async () => {
    // 1 s per call: 3 workers x cap 4 keep ~12 calls per second going.
    fake = await startFakeGemini({ latencyMs: 1_000 });
    pipeline = await startPipeline({
      workers: WORKERS,
      shards: 4,
      prefix: 'gbreaker',
      // A steady fleet: a lease taken over while records are in flight would re-deliver them
      // (issue 12's hand-off), an extra model call that this test would count.
      waitForBalance: true,
      env: {
        LOG_LEVEL: 'warn',
        ANALYZER: 'gemini',
        GEMINI_API_KEY: 'test',
        GEMINI_BASE_URL: fake.url,
        ANALYSIS_CONCURRENCY: String(CAP),
        CIRCUIT_WINDOW_MS: '4000',
        CIRCUIT_MIN_CALLS: '4',
        CIRCUIT_FAILURE_RATE: '0.5',
        CIRCUIT_OPEN_MS: String(OPEN_MS),
        CIRCUIT_PROBES: String(PROBES),
      },
    });
  });
  afterAll(async () => {
    await pipeline?.stop();
    await fake?.close();
  });

  it('stops sending during the outage (probes only) and loses nothing after it', { timeout: 240_000 }, async () => {
    const id = await submitGenerated(pipeline, PAGES, { pagesPerChunk: String(PAGES_PER_CHUNK) });
    await waitFor('a few chunks done', async () => ((await getStatus(pipeline, id)).progress.chunksSucceeded >= 6 ? true : undefined), 90_000, 50);
    await waitFor('the whole fleet busy', () => (fake.log.filter((r) => r.respondedAt === undefined).length >= WORKERS * CAP ? true : undefined), 30_000, 10);
    fake.configure({ failAll: true });
    const outageStart = Date.now();
    await new Promise((r) => setTimeout(r, OUTAGE_MS));
    fake.configure({ failAll: false });
    const outageEnd = Date.now();

    const final = await waitForTerminal(pipeline, id, 120_000).catch((err: unknown) => {
      pipeline.workers.forEach((w, i) => console.error([`worker ${i + 1} output:`, ...w.output.slice(-30)].join('\n')));
      throw err;
    });

    // Every worker's breaker opened during the outage, and closed again after it.
    const opened = pipeline.workers.map((w) => transitions(w.output, 'open').filter((t) => t >= outageStart - 1_000)[0]);
    const closed = pipeline.workers.map((w) => transitions(w.output, 'closed').filter((t) => t >= outageEnd - 1_000));
    expect(opened.every((t) => t !== undefined && t < outageEnd)).toBe(true);
    expect(closed.every((c) => c.length > 0)).toBe(true);
    const allOpen = Math.max(...(opened as number[]));

    // The log: during the outage, before the breakers opened, the fleet sent its usual rate and
    // retries; once all were open, only probes: at most one per worker per CIRCUIT_OPEN_MS.
    const log = [...fake.log];
    const busy = log.filter((r) => r.at >= outageStart - 2_000 && r.at < outageStart);
    const during = log.filter((r) => r.at >= outageStart && r.at < outageEnd);
    const beforeOpen = during.filter((r) => r.at < allOpen);
    const probes = during.filter((r) => r.at >= allOpen);
    const probeMs = outageEnd - allOpen;
    const mostPerOpenTime = maxInWindow(
      probes.map((r) => r.at),
      OPEN_MS,
    );
    console.log(
      `breaker: ${busy.length / 2}/s before the outage; outage ${OUTAGE_MS} ms; all breakers open ${allOpen - outageStart} ms in, after ${beforeOpen.length} calls ` +
        `(${((beforeOpen.length * 1000) / Math.max(1, allOpen - outageStart)).toFixed(1)}/s); then ${probes.length} calls in ${probeMs} ms ` +
        `(${((probes.length * 1000) / probeMs).toFixed(2)}/s, most in any ${OPEN_MS} ms: ${mostPerOpenTime}); ` +
        `breakers closed ${closed.map((c) => (c[0] as number) - outageEnd).join(', ')} ms after the outage`,
    );
    // (The fake decides after its latency: calls arriving in the outage's last 500 ms may be answered.)
    expect(during.filter((r) => r.at < outageEnd - 1_000).every((r) => r.outcome === 'failAll')).toBe(true);
    expect(probeMs).toBeGreaterThan(2 * OPEN_MS); // the breakers opened early in the outage
    expect(mostPerOpenTime).toBeLessThanOrEqual(WORKERS * PROBES);
    expect(probes.length).toBeLessThanOrEqual(WORKERS * PROBES * Math.ceil(probeMs / OPEN_MS));
    expect(probes.length).toBeGreaterThanOrEqual(WORKERS); // they did probe
    // A real drop: the probe rate is far below the fleet's rate before the outage.
    expect(probes.length / probeMs).toBeLessThan(busy.length / 2_000 / 4);

    // Nothing lost: the document completed with every chunk analysed.
    expect(final.status).toBe('completed');
    const result = await getResult(pipeline, id);
    expectEveryChunkSucceeded(result, CHUNKS);
  });
});
