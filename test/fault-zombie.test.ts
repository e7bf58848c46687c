/**
 * Fault injection, zombie (issue 3): a worker is frozen with SIGSTOP mid-run for longer than the
 * lease failover time and the chunk claim timeout, so that the others take its shards and its
 * chunks over, then resumed with SIGCONT while the answers to its analyses wait in its sockets.
 *
 * Observables (complete histories, not samples): the lease table and the status table both have
 * a DynamoDB stream with old and new images, so every write that was *accepted* is on record.
 * - No checkpoint of the zombie is accepted after it lost a lease: per lease, once a write moves
 *   the owner away from the zombie, no later write with the zombie as owner changes the
 *   checkpoint unless the zombie first took the lease again (a new acquisition).
 * - No checkpoint moves backwards: per lease, checkpoints compared as BigInt never decrease.
 * - No chunk is counted twice: every chunk row becomes `succeeded` exactly once, the job's
 *   counter only ever moves by +1, and ends with succeeded + failed = total; the result lists
 *   each chunk once.
 * The zombie's own log lines (lease lost, checkpoint refused, completion not counted) are printed
 * as supporting evidence.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StatusTable } from '@docorch/core';
import { generatePdf, type ServiceProcess } from '@docorch/testkit';
import {
  assertCheckpointsMonotonic,
  countLines,
  getResult,
  readLeaseWrites,
  readTableWrites,
  scanLeases,
  startFleet,
  submitPdf,
  waitFor,
  waitForTerminal,
  waitForVictim,
  type Fleet,
} from './helpers.js';

const PAGES = 300;
const PAGES_PER_CHUNK = 5;
const CHUNKS = PAGES / PAGES_PER_CHUNK;
const FAILOVER_MS = 3_000;
const CLAIM_TIMEOUT_MS = 3_000;

describe('a worker paused past the failover time (zombie)', () => {
  let fleet: Fleet;

  beforeAll(async () => {
    fleet = await startFleet({
      prefix: 'fault-zombie',
      workers: 3,
      shards: 4,
      latencyMs: 400,
      env: {
        LEASE_FAILOVER_MS: String(FAILOVER_MS),
        CHUNK_CLAIM_TIMEOUT_MS: String(CLAIM_TIMEOUT_MS),
        ANALYSIS_CONCURRENCY: '2',
        WORKER_GRACE_MS: '2000',
      },
    });
  });

  afterAll(async () => {
    await fleet?.stop();
  });

  it('gets none of its checkpoints or completions accepted after losing its leases', { timeout: 150_000 }, async () => {
    const { pipeline, fakes, workers, aws, config } = fleet;
    let documentId: string | undefined;
    const failing = async (err: unknown): Promise<never> => {
      await fleet.dump(documentId);
      throw err;
    };
    const pdf = await generatePdf({ pages: PAGES, seed: 11 });
    const id = await submitPdf(pipeline, pdf.bytes, { pagesPerChunk: String(PAGES_PER_CHUNK) });
    documentId = id;
    const status = new StatusTable(aws.doc, config.STATUS_TABLE);

    const zombieIndex = await waitForVictim(fleet, id, CHUNKS / 6).catch(failing);
    const zombie = workers[zombieIndex] as ServiceProcess;
    const zombieId = `w${zombieIndex + 1}`;
    const zombieFake = fakes[zombieIndex];
    zombie.signal('SIGSTOP');
    const stoppedAt = Date.now();
    const heldAtStop = (await scanLeases(aws, config.LEASES_TABLE)).filter((r) => r.leaseOwner === zombieId).map((r) => r.leaseKey);
    const claimedAtStop = (await status.listChunks(pipeline.tenantId, id))
      .filter((r) => r.status === 'processing' && r.claimOwner === zombieId)
      .map((r) => r.index);

    // Stay frozen until the others hold all its leases and all its chunk claims moved on, and at
    // least twice the failover time.
    await waitFor(
      'the others to take over the zombie’s leases and claims',
      async () => {
        if (Date.now() - stoppedAt < 2 * FAILOVER_MS) return undefined;
        const leases = await scanLeases(aws, config.LEASES_TABLE);
        if (leases.some((r) => r.leaseOwner === zombieId || !r.leaseOwner)) return undefined;
        const rows = await status.listChunks(pipeline.tenantId, id);
        return rows.some((r) => r.status === 'processing' && r.claimOwner === zombieId) ? undefined : true;
      },
      40_000,
      200,
    ).catch(failing);
    const pausedMs = Date.now() - stoppedAt;
    zombie.signal('SIGCONT');
    const resumedAt = Date.now();
    // Its analyses answered while it was frozen: it resumes holding finished work it no longer owns.
    const answeredWhileFrozen = (zombieFake?.log ?? []).filter(
      (r) => r.pages.length > 0 && r.respondedAt !== undefined && r.respondedAt >= stoppedAt && r.respondedAt <= resumedAt,
    ).length;

    const final = await waitForTerminal(pipeline, id, 90_000).catch(failing);
    expect(final.status).toBe('completed');
    // No chunk counted twice: the counters end exactly at the total.
    expect(final.progress.chunksSucceeded + final.progress.chunksFailed).toBe(CHUNKS);
    expect(final.progress).toMatchObject({ chunksTotal: CHUNKS, chunksSucceeded: CHUNKS, chunksFailed: 0 });
    const result = await getResult(pipeline, id);
    const indexes = (result.chunks as Array<{ index: number; pages: [number, number] }>).map((c) => c.index);
    expect(indexes).toEqual(Array.from({ length: CHUNKS }, (_, i) => i));

    // Status table history: each chunk becomes succeeded exactly once; the job counter moves by +1 only.
    const statusWrites = await readTableWrites(aws, config, config.STATUS_TABLE);
    const pk = `${pipeline.tenantId}#${id}`;
    const succeededTransitions = new Map<string, number>();
    const counterSteps: number[] = [];
    for (const w of statusWrites) {
      if (w.new?.pk !== pk) continue;
      if (w.new.sk === 'JOB') {
        const before = Number(w.old?.chunksSucceeded ?? 0) + Number(w.old?.chunksFailed ?? 0);
        const after = Number(w.new.chunksSucceeded ?? 0) + Number(w.new.chunksFailed ?? 0);
        if (after !== before) counterSteps.push(after - before);
      } else if (w.new.status === 'succeeded' && w.old?.status !== 'succeeded') {
        const sk = String(w.new.sk);
        succeededTransitions.set(sk, (succeededTransitions.get(sk) ?? 0) + 1);
      }
    }
    expect(succeededTransitions.size).toBe(CHUNKS);
    expect([...succeededTransitions.values()].every((n) => n === 1)).toBe(true);
    expect(counterSteps.length).toBe(CHUNKS);
    expect(counterSteps.every((step) => step === 1)).toBe(true);

    // Lease table history.
    const leaseWrites = await readLeaseWrites(aws, config, config.LEASES_TABLE);
    const checkpointMoves = assertCheckpointsMonotonic(leaseWrites);
    const lostLease = new Set<string>();
    const losses: string[] = [];
    let retakes = 0;
    let zombieCheckpoints = 0;
    const acceptedAfterLoss: string[] = [];
    for (const w of leaseWrites) {
      if (!w.old || !w.new) continue;
      const from = w.old.leaseOwner;
      const to = w.new.leaseOwner;
      if (from === zombieId && to !== zombieId) {
        lostLease.add(w.leaseKey);
        losses.push(w.leaseKey);
      } else if (from !== zombieId && to === zombieId && lostLease.delete(w.leaseKey)) {
        retakes++; // a new acquisition, with a new concurrency token
      }
      if (to === zombieId && w.old.checkpoint !== w.new.checkpoint) {
        zombieCheckpoints++;
        if (lostLease.has(w.leaseKey)) acceptedAfterLoss.push(`${w.leaseKey}@${w.sequenceNumber}`);
      }
    }
    // Every lease it held when frozen was taken from it.
    for (const key of heldAtStop) expect(losses).toContain(key);
    expect(acceptedAfterLoss).toEqual([]);

    if (process.env.DEBUG_FAULT) {
      for (const w of leaseWrites) console.log('LEASE', w.leaseKey, w.old?.leaseOwner, '->', w.new?.leaseOwner, w.old?.checkpoint, '->', w.new?.checkpoint, w.new?.leaseCounter);
      console.log(zombie.output.join('\n'));
      console.log('STOP', stoppedAt, 'CONT', resumedAt);
    }
    const zombieLines = (pattern: RegExp) => zombie.output.filter((l) => pattern.test(l)).length;
    const evidence = {
      zombie: zombieId,
      heldAtStop,
      claimedAtStop: claimedAtStop.length,
      pausedMs,
      answeredWhileFrozen,
      leaseLosses: losses.length,
      retakesAfterResume: retakes,
      zombieCheckpointWritesAccepted: zombieCheckpoints,
      checkpointMoves,
      logLeaseLost: zombieLines(/"msg":"lease lost"/),
      logCheckpointRefused: zombieLines(/checkpoint refused: lease lost/),
      logCompletionRefused: zombieLines(/not counted|claim taken over/),
      handlerRetries: countLines(workers, /handler failed; retrying/),
      deadLetters: countLines(workers, /record dead-lettered/),
    };
    console.log(`fault-zombie: ${JSON.stringify(evidence)}`);
    expect(heldAtStop.length).toBeGreaterThan(0);
    expect(claimedAtStop.length).toBeGreaterThan(0);
    expect(pausedMs).toBeGreaterThan(FAILOVER_MS);
    expect(evidence.logLeaseLost).toBeGreaterThanOrEqual(heldAtStop.length);
    // A dead-lettered chunk record would leave its chunk to nobody.
    expect(evidence.deadLetters).toBe(0);
  });
});
