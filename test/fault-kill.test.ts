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
import type { AwsClients, Config } from '@docorch/core';
import { StatusTable } from '@docorch/core';
import { generatePdf, startFakeGemini, startPipeline, type FakeGemini, type Pipeline, type ServiceProcess } from '@docorch/testkit';
import {
  analysesPerChunk,
  checkpointValue,
  chunkOfRequest,
  comparableResult,
  enableLeaseStream,
  getResult,
  getStatus,
  metricValue,
  pipelineClients,
  readLeaseWrites,
  scanLeases,
  startWorkerProcess,
  submitPdf,
  waitFor,
  waitForTerminal,
  workerHealth,
} from './helpers.js';

const PAGES = 300;
const PAGES_PER_CHUNK = 5;
const CHUNKS = PAGES / PAGES_PER_CHUNK;
const FAILOVER_MS = 3_000;
const LATENCY_MS = 400;
const WORKERS = 3;

describe('kill -9 of a worker mid-run', () => {
  let pipeline: Pipeline;
  let aggregatorFake: FakeGemini;
  const fakes: FakeGemini[] = [];
  const workers: ServiceProcess[] = [];
  let config: Config;
  let aws: AwsClients;

  beforeAll(async () => {
    aggregatorFake = await startFakeGemini({ latencyMs: 0 });
    for (let i = 0; i < WORKERS; i++) fakes.push(await startFakeGemini({ latencyMs: LATENCY_MS }));
    pipeline = await startPipeline({
      workers: 0,
      shards: 4,
      prefix: 'fault-kill',
      env: {
        LOG_LEVEL: 'warn',
        ANALYZER: 'gemini',
        GEMINI_API_KEY: 'test',
        GEMINI_BASE_URL: aggregatorFake.url,
        LEASE_FAILOVER_MS: String(FAILOVER_MS),
        CHUNK_CLAIM_TIMEOUT_MS: '3000',
        ANALYSIS_CONCURRENCY: '2',
        WORKER_GRACE_MS: '2000',
      },
    });
    ({ config, aws } = pipelineClients(pipeline));
    // Every lease write from the first one on is kept in the table's stream, for the audit below.
    await enableLeaseStream(aws, config.LEASES_TABLE);
    workers.push(
      ...(await Promise.all(fakes.map((fake, i) => startWorkerProcess(pipeline, `w${i + 1}`, { GEMINI_BASE_URL: fake.url })))),
    );
    // Wait for the fleet to balance (4 shards over 3 workers) before any work arrives.
    await waitFor(
      'balanced leases',
      async () => {
        const rows = await scanLeases(aws, config.LEASES_TABLE);
        const owners = new Set(rows.map((r) => r.leaseOwner));
        return rows.length === 4 && rows.every((r) => r.leaseOwner) && owners.size === WORKERS ? rows : undefined;
      },
      30_000,
      200,
    );
  });

  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop(5_000)));
    await pipeline?.stop();
    await Promise.all([aggregatorFake, ...fakes].map((f) => f?.close()));
    aws?.destroy();
  });

  it('completes with the fault-free result, few repeats and a fast takeover', { timeout: 150_000 }, async () => {
    const pdf = await generatePdf({ pages: PAGES, seed: 7 });
    const fields = { pagesPerChunk: String(PAGES_PER_CHUNK) };
    const dump = () => {
      workers.forEach((w, i) => console.error([`worker w${i + 1} output:`, ...w.output.slice(-40)].join('\n')));
      console.error(['aggregator output:', ...pipeline.aggregator.output.slice(-20)].join('\n'));
    };

    // 1. The fault-free reference run.
    let started = Date.now();
    const reference = await submitPdf(pipeline, pdf.bytes, fields);
    const refFinal = await waitForTerminal(pipeline, reference, 60_000).catch((err: unknown) => {
      dump();
      throw err;
    });
    const referenceMs = Date.now() - started;
    expect(refFinal.status).toBe('completed');
    const refResult = await getResult(pipeline, reference);
    const refCounts = analysesPerChunk(fakes.map((f) => f.log), PAGES_PER_CHUNK);
    expect(refCounts.size).toBe(CHUNKS);
    expect([...refCounts.values()].every((n) => n === 1)).toBe(true);
    for (const f of fakes) f.clearLog();

    // 2. The same PDF again; SIGKILL one worker once some chunks are done and it has analyses in flight.
    started = Date.now();
    const id = await submitPdf(pipeline, pdf.bytes, fields);
    const status = new StatusTable(aws.doc, config.STATUS_TABLE);
    const victimIndex = await waitFor(
      'a victim with analyses in flight after some chunks succeeded',
      async () => {
        const view = await getStatus(pipeline, id);
        if (view.progress.chunksSucceeded < CHUNKS / 6) return undefined;
        // Prefer the worker holding the most shards among those with a chunk analysis open now.
        const rows = await scanLeases(aws, config.LEASES_TABLE);
        const candidates = fakes
          .map((fake, i) => ({ i, open: fake.log.filter((r) => r.pages.length > 0 && r.respondedAt === undefined).length }))
          .filter((c) => c.open > 0)
          .map((c) => ({ ...c, shards: rows.filter((r) => r.leaseOwner === `w${c.i + 1}`).length }))
          .sort((a, b) => b.shards - a.shards || b.open - a.open);
        return candidates[0]?.i;
      },
      60_000,
      25,
    );
    const victim = workers[victimIndex] as ServiceProcess;
    const victimId = `w${victimIndex + 1}`;
    const victimFake = fakes[victimIndex] as FakeGemini;
    const [metricInFlight, health] = await Promise.all([
      metricValue(victim, 'docorch_analyses_in_flight').catch(() => NaN),
      workerHealth(victim).catch(() => undefined),
    ]);
    // Freeze it first, so that what it has in flight can be read without a race, then kill it.
    victim.signal('SIGSTOP');
    await new Promise((r) => setTimeout(r, 200));
    const rows = await status.listChunks(pipeline.tenantId, id);
    const requested = new Set(victimFake.log.map((r) => chunkOfRequest(r, PAGES_PER_CHUNK)).filter((c) => c !== undefined));
    const claimed = rows.filter((r) => r.status === 'processing' && r.claimOwner === victimId);
    // In flight: analyses it began (its fake saw the request) for chunks it has not completed.
    const inFlight = claimed.filter((r) => requested.has(r.index)).length;
    const succeededAtKill = rows.filter((r) => r.status === 'succeeded').length;
    const victimLeases = (await scanLeases(aws, config.LEASES_TABLE)).filter((r) => r.leaseOwner === victimId).map((r) => r.leaseKey);
    victim.signal('SIGKILL');
    const killedAt = Date.now();
    await victim.exitedPromise;

    // 3. Takeover: every lease the victim held gets another owner (lease table, polled).
    const takeoverMs = await waitFor(
      'the survivors to take over the killed worker’s leases',
      async () => {
        const now = await scanLeases(aws, config.LEASES_TABLE);
        const moved = victimLeases.every((key) => {
          const owner = now.find((r) => r.leaseKey === key)?.leaseOwner;
          return owner !== undefined && owner !== victimId;
        });
        return moved ? Date.now() - killedAt : undefined;
      },
      6 * FAILOVER_MS,
      50,
    );
    const survivors = workers.filter((w) => w !== victim);
    const healthShards = await waitFor(
      'the survivors to consume every shard',
      async () => {
        const views = await Promise.all(survivors.map((w) => workerHealth(w)));
        const shards = new Set(views.flatMap((v) => v.shards));
        return shards.size === 4 ? Date.now() - killedAt : undefined;
      },
      6 * FAILOVER_MS,
      50,
    );

    const final = await waitForTerminal(pipeline, id, 90_000).catch((err: unknown) => {
      dump();
      throw err;
    });
    const faultMs = Date.now() - started;
    expect(final.status).toBe('completed');
    expect(final.progress).toMatchObject({ chunksTotal: CHUNKS, chunksSucceeded: CHUNKS, chunksFailed: 0 });

    // 4. The result equals the fault-free run's.
    const result = await getResult(pipeline, id);
    expect(comparableResult(result)).toEqual(comparableResult(refResult));
    expect(result.summary).toBe(refResult.summary);

    // 5. Repeated analyses: requests for a chunk beyond its first, over every worker's fake.
    const counts = analysesPerChunk(fakes.map((f) => f.log), PAGES_PER_CHUNK);
    expect(counts.size).toBe(CHUNKS);
    const repeated = [...counts.values()].reduce((sum, n) => sum + Math.max(0, n - 1), 0);

    // 6. No checkpoint ever moved backwards (complete write history of the lease table).
    const writes = await readLeaseWrites(aws, config, config.LEASES_TABLE);
    const last = new Map<string, bigint>();
    let checkpointWrites = 0;
    for (const w of writes) {
      if (!w.new) continue;
      const value = checkpointValue(w.new.checkpoint);
      const before = last.get(w.leaseKey);
      if (before !== undefined) expect(value >= before, `${w.leaseKey} checkpoint moved back at ${w.sequenceNumber}`).toBe(true);
      if (w.old && w.old.checkpoint !== w.new.checkpoint) checkpointWrites++;
      last.set(w.leaseKey, value);
    }

    console.log(
      JSON.stringify({
        victim: victimId,
        victimLeases,
        succeededAtKill,
        claimedAtKill: claimed.length,
        inFlightAtKill: inFlight,
        metricAnalysesInFlight: metricInFlight,
        healthRecordsInFlight: health?.inFlight,
        repeated,
        takeoverMs,
        survivorsConsumeAllShardsMs: healthShards,
        limitMs: 3 * FAILOVER_MS,
        referenceMs,
        faultMs,
        leaseWrites: writes.length,
        checkpointWrites,
      }),
    );
    expect(succeededAtKill).toBeGreaterThan(0);
    expect(inFlight).toBeGreaterThan(0);
    expect(repeated).toBeLessThanOrEqual(inFlight);
    expect(takeoverMs).toBeLessThanOrEqual(3 * FAILOVER_MS);
    expect(healthShards).toBeLessThanOrEqual(3 * FAILOVER_MS);
    expect(checkpointWrites).toBeGreaterThan(0);
  });
});
