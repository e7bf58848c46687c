/**
 * Fault injection, kill -9 (issue 3): 3 workers on 4 shards analyse a 300-page document; one
 * worker is SIGKILLed mid-run while it has analyses in flight. The job completes with the same
 * result as a fault-free run of the same PDF; the analyses repeated are at most the ones the
 * killed worker had in flight; the survivors take its shards over within 3 x the failover time.
 *
 * Each worker talks to its own fake Gemini (fixed latency, deterministic answers), so the fakes'
 * request logs say exactly which worker analysed which chunk, and how often.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StatusTable } from '@docorch/core';
import { generatePdf, type ServiceProcess } from '@docorch/testkit';
import {
  analysesPerChunk,
  assertCheckpointsMonotonic,
  countLines,
  chunkOfRequest,
  comparableResult,
  getResult,
  metricValue,
  readLeaseWrites,
  scanLeases,
  startFleet,
  submitPdf,
  waitFor,
  waitForTerminal,
  waitForVictim,
  workerHealth,
  type Fleet,
} from './helpers.js';

const PAGES = 300;
const PAGES_PER_CHUNK = 5;
const CHUNKS = PAGES / PAGES_PER_CHUNK;
const FAILOVER_MS = 3_000;

describe('kill -9 of a worker mid-run', () => {
  let fleet: Fleet;

  beforeAll(async () => {
    fleet = await startFleet({
      prefix: 'fault-kill',
      workers: 3,
      shards: 4,
      latencyMs: 400,
      env: {
        LEASE_FAILOVER_MS: String(FAILOVER_MS),
        CHUNK_CLAIM_TIMEOUT_MS: '3000',
        ANALYSIS_CONCURRENCY: '2',
        WORKER_GRACE_MS: '2000',
      },
    });
  });

  afterAll(async () => {
    await fleet?.stop();
  });

  it('completes with the fault-free result, few repeats and a fast takeover', { timeout: 150_000 }, async () => {
    const { pipeline, fakes, workers, aws, config } = fleet;
    const pdf = await generatePdf({ pages: PAGES, seed: 7 });
    const fields = { pagesPerChunk: String(PAGES_PER_CHUNK) };
    let documentId: string | undefined;
    const failing = async (err: unknown): Promise<never> => {
      await fleet.dump(documentId);
      throw err;
    };

    // 1. The fault-free reference run.
    let started = Date.now();
    const reference = await submitPdf(pipeline, pdf.bytes, fields);
    documentId = reference;
    const refFinal = await waitForTerminal(pipeline, reference, 90_000).catch(failing);
    const referenceMs = Date.now() - started;
    const chunkTimes = fakes.flatMap((f) => f.log.filter((r) => r.pages.length > 0).map((r) => [r.at, r.respondedAt ?? r.at] as const));
    const referenceTimeline = {
      submitToFirstAnalysisMs: Math.min(...chunkTimes.map(([at]) => at)) - started,
      analysesSpanMs: Math.max(...chunkTimes.map(([, end]) => end)) - Math.min(...chunkTimes.map(([at]) => at)),
      lastAnalysisToCompletedMs: started + referenceMs - Math.max(...chunkTimes.map(([, end]) => end)),
    };
    expect(refFinal.status).toBe('completed');
    const refResult = await getResult(pipeline, reference);
    const refCounts = analysesPerChunk(
      fakes.map((f) => f.log),
      PAGES_PER_CHUNK,
    );
    expect(refCounts.size).toBe(CHUNKS);
    expect([...refCounts.values()].every((n) => n === 1)).toBe(true);
    for (const f of fakes) f.clearLog();

    // 2. The same PDF again; SIGKILL one worker once some chunks are done and it has analyses in flight.
    started = Date.now();
    const id = await submitPdf(pipeline, pdf.bytes, fields);
    documentId = id;
    const victimIndex = await waitForVictim(fleet, id, CHUNKS / 6).catch(failing);
    const victim = workers[victimIndex] as ServiceProcess;
    const victimId = `w${victimIndex + 1}`;
    const [metricInFlight, health] = await Promise.all([
      metricValue(victim, 'docorch_analyses_in_flight').catch(() => Number.NaN),
      workerHealth(victim).catch(() => undefined),
    ]);
    // Freeze it first, so that what it has in flight can be read without a race; then kill it.
    victim.signal('SIGSTOP');
    // From here on the victim does nothing: takeover is timed from this moment (stricter than from the kill).
    const frozenAt = Date.now();
    await new Promise((r) => setTimeout(r, 200));
    const rows = await new StatusTable(aws.doc, config.STATUS_TABLE).listChunks(pipeline.tenantId, id);
    const requested = new Set(fakes[victimIndex]?.log.map((r) => chunkOfRequest(r, PAGES_PER_CHUNK)));
    const claimed = rows.filter((r) => r.status === 'processing' && r.claimOwner === victimId);
    // In flight: analyses it began (its fake saw the request) for chunks it has not completed.
    const inFlight = claimed.filter((r) => requested.has(r.index)).length;
    const succeededAtKill = rows.filter((r) => r.status === 'succeeded').length;
    const victimLeases = (await scanLeases(aws, config.LEASES_TABLE)).filter((r) => r.leaseOwner === victimId).map((r) => r.leaseKey);
    victim.signal('SIGKILL');
    const killedAt = Date.now();
    await victim.exitedPromise;

    // 3. Takeover: every lease the victim held gets another owner (lease table, polled every 50 ms).
    const takeoverMs = await waitFor(
      "the survivors to take over the killed worker's leases",
      async () => {
        const now = await scanLeases(aws, config.LEASES_TABLE);
        const moved = victimLeases.every((key) => {
          const owner = now.find((r) => r.leaseKey === key)?.leaseOwner;
          return owner !== undefined && owner !== victimId;
        });
        return moved ? Date.now() - frozenAt : undefined;
      },
      6 * FAILOVER_MS,
      50,
    ).catch(failing);
    const survivors = workers.filter((w) => w !== victim);
    const consumingMs = await waitFor(
      'the survivors to consume every shard (their /healthz)',
      async () => {
        const views = await Promise.all(survivors.map((w) => workerHealth(w)));
        return new Set(views.flatMap((v) => v.shards)).size === 4 ? Date.now() - frozenAt : undefined;
      },
      6 * FAILOVER_MS,
      50,
    ).catch(failing);

    const final = await waitForTerminal(pipeline, id, 90_000).catch(failing);
    const faultMs = Date.now() - started;
    expect(final.status).toBe('completed');
    expect(final.progress).toMatchObject({ chunksTotal: CHUNKS, chunksSucceeded: CHUNKS, chunksFailed: 0 });

    // 4. The result equals the fault-free run's (the fake is deterministic, so the summary too).
    const result = await getResult(pipeline, id);
    expect(comparableResult(result)).toEqual(comparableResult(refResult));
    expect(result.summary).toBe(refResult.summary);

    // 5. Repeated analyses: requests for a chunk beyond its first, over every worker's fake.
    const counts = analysesPerChunk(
      fakes.map((f) => f.log),
      PAGES_PER_CHUNK,
    );
    expect(counts.size).toBe(CHUNKS);
    const repeated = [...counts.values()].reduce((sum, n) => sum + Math.max(0, n - 1), 0);
    // Who analysed each repeated chunk, and when (for the report below).
    const repeatedDetail = [...counts.entries()]
      .filter(([, n]) => n > 1)
      .map(([chunk]) => ({
        chunk,
        by: fakes.flatMap((f, w) => f.log.filter((r) => chunkOfRequest(r, PAGES_PER_CHUNK) === chunk).map((r) => `w${w + 1}@${r.at - killedAt}ms`)),
      }));

    // 6. No checkpoint ever moved backwards (the complete write history of the lease table).
    const checkpointMoves = assertCheckpointsMonotonic(await readLeaseWrites(aws, config, config.LEASES_TABLE));

    console.log(
      `fault-kill: ${JSON.stringify({
        victim: victimId,
        victimLeases,
        succeededAtKill,
        claimedAtKill: claimed.length,
        analysesInFlightAtKill: inFlight,
        analysesInFlightMetric: metricInFlight,
        recordsInFlightHealthz: health?.inFlight,
        repeatedAnalyses: repeated,
        repeatedDetail,
        frozenToKilledMs: killedAt - frozenAt,
        takeoverMs,
        survivorsConsumeAllShardsMs: consumingMs,
        limitMs: 3 * FAILOVER_MS,
        referenceRunMs: referenceMs,
        referenceTimeline,
        faultRunMs: faultMs,
        checkpointMoves,
        handlerRetries: countLines(workers, /handler failed; retrying/),
        deadLetters: countLines(workers, /record dead-lettered/),
      })}`,
    );
    // A dead-lettered chunk record would leave its chunk to nobody.
    expect(countLines(workers, /record dead-lettered/)).toBe(0);
    expect(succeededAtKill).toBeGreaterThan(0);
    expect(inFlight).toBeGreaterThan(0);
    expect(repeated).toBeLessThanOrEqual(inFlight);
    expect(takeoverMs).toBeLessThanOrEqual(3 * FAILOVER_MS);
    expect(consumingMs).toBeLessThanOrEqual(3 * FAILOVER_MS);
    expect(checkpointMoves).toBeGreaterThan(0);
  });
});
