/**
 * Fair share in the worker fleet (issue 9), whole system on isolated resources:
 *
 * - With 2 workers, tenant B's 5-page document, submitted right after tenant A's 2,000-page
 *   document (1 page per chunk), completes while A's is still under 25% done.
 * - A worker killed -9 while it holds chunks of both tenants: both documents complete, every
 *   chunk counted once, none stalls.
 * - With a model quota (GEMINI_RPM) binding, tenants of weights 3 and 1 get 75% and 25% of the
 *   model requests (each within 10% of its share) while both have work, read from the fake
 *   Gemini servers' logs (each document's pages carry its tenant's label).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StatusTable, TenantStore, type ChunkRow } from '@docorch/core';
import { generatePdf, type FakeGeminiRequest, type ServiceProcess } from '@docorch/testkit';
import { seedTenant } from '../services/api/test/helpers.js';
import { getStatus, startFleet, submitPdf, waitFor, waitForTerminal, workerHealth, type ApiTarget, type Fleet } from './helpers.js';

/** The emulators' endpoints and the fleet's resource names: what a tenant seed needs. */
function seedEnv(fleet: Fleet): NodeJS.ProcessEnv {
  return { ...process.env, ...fleet.pipeline.env };
}

async function deleteDocument(target: ApiTarget, id: string): Promise<void> {
  await fetch(`${target.api.baseUrl}/v1/documents/${id}`, { method: 'DELETE', headers: { authorization: `Bearer ${target.apiKey}` } });
}

describe('fair share: a small document is not queued behind a large one', () => {
  let fleet: Fleet;
  let a: ApiTarget;
  let b: ApiTarget;
  let tenantOfB: string;

  beforeAll(async () => {
    fleet = await startFleet({
      prefix: 'fair',
      workers: 2,
      shards: 4,
      balanced: true,
      latencyMs: 500,
      env: { ANALYSIS_CONCURRENCY: '4', LEASE_FAILOVER_MS: '3000', CHUNK_CLAIM_TIMEOUT_MS: '3000', WORKER_GRACE_MS: '2000' },
    });
    a = fleet.pipeline;
    const tenantB = await seedTenant('fair-b', {}, seedEnv(fleet));
    tenantOfB = tenantB.tenantId;
    b = { api: fleet.pipeline.api, apiKey: tenantB.apiKey };
  });

  afterAll(async () => {
    await fleet?.stop();
  });

  it("B's 5-page document completes while A's 2,000-page document is under 25% done", { timeout: 180_000 }, async () => {
    const [big, small] = await Promise.all([generatePdf({ pages: 2_000, seed: 21 }), generatePdf({ pages: 5, seed: 22 })]);
    const bigId = await submitPdf(a, big.bytes, { pagesPerChunk: '1' });
    const submittedB = Date.now();
    const smallId = await submitPdf(b, small.bytes, { pagesPerChunk: '1' });
    try {
      const final = await waitForTerminal(b, smallId, 120_000);
      const tookMs = Date.now() - submittedB;
      const aView = await getStatus(a, bigId);
      const aDone = aView.progress.chunksSucceeded + aView.progress.chunksFailed;
      console.info(`fair share: B's 5 pages completed in ${tookMs} ms; A had ${aDone} of ${aView.progress.chunksTotal} chunks done (${aView.status})`);
      expect(final.status).toBe('completed');
      expect(aView.status).not.toMatch(/^completed/);
      expect(aDone).toBeLessThan(2_000 * 0.25);
    } catch (err) {
      await fleet.dump(smallId);
      throw err;
    } finally {
      await deleteDocument(a, bigId);
    }
  });

  it('a worker killed -9 while it holds chunks of both tenants: both documents complete, none stalls', { timeout: 240_000 }, async () => {
    const { pipeline, workers, aws, config } = fleet;
    const status = new StatusTable(aws.doc, config.STATUS_TABLE);
    const [docA, docB] = await Promise.all([generatePdf({ pages: 150, seed: 31 }), generatePdf({ pages: 60, seed: 32 })]);
    const idA = await submitPdf(a, docA.bytes, { pagesPerChunk: '1' });
    const idB = await submitPdf(b, docB.bytes, { pagesPerChunk: '1' });
    // The victim: a worker holding claimed chunks of both documents at the same moment.
    let victim: ServiceProcess | undefined;
    let held: { a: number; b: number } | undefined;
    try {
      await waitFor(
        'a worker holding chunks of both tenants',
        async () => {
          const [rowsA, rowsB] = await Promise.all([status.listChunks(pipeline.tenantId, idA), status.listChunks(tenantOfB, idB)]);
          for (const [i, w] of workers.entries()) {
            const id = `w${i + 1}`;
            const mine = (rows: ChunkRow[]) => rows.filter((r) => r.status === 'processing' && r.claimOwner === id).length;
            if (mine(rowsA) > 0 && mine(rowsB) > 0) {
              victim = w;
              held = { a: mine(rowsA), b: mine(rowsB) };
              return true;
            }
          }
          return undefined;
        },
        60_000,
        50,
      );
      victim?.signal('SIGKILL');
      await victim?.exitedPromise;
      console.info(`fair share kill: the victim held ${held?.a} chunks of A and ${held?.b} of B`);
      const [finalA, finalB] = await Promise.all([waitForTerminal(a, idA, 150_000), waitForTerminal(b, idB, 150_000)]);
      expect(finalA.status).toBe('completed');
      expect(finalB.status).toBe('completed');
      expect(finalA.progress.chunksSucceeded).toBe(150);
      expect(finalB.progress.chunksSucceeded).toBe(60);
    } catch (err) {
      await fleet.dump(idA);
      await fleet.dump(idB);
      throw err;
    }
  });
});

describe('fair share of the model quota by plan weight', () => {
  let fleet: Fleet;
  let a: ApiTarget;
  let b: ApiTarget;
  let tenantOfB: string;

  beforeAll(async () => {
    fleet = await startFleet({
      prefix: 'fairq',
      workers: 2,
      shards: 4,
      balanced: true,
      latencyMs: 50,
      // 15 requests per second for the whole fleet: the quota, not the fleet, binds.
      env: { ANALYSIS_CONCURRENCY: '4', GEMINI_RPM: '900', GEMINI_TPM: '100000000' },
    });
    const env = seedEnv(fleet);
    const tenants = new TenantStore(fleet.aws.doc, fleet.config.TENANTS_TABLE);
    await tenants.updateTenant(fleet.pipeline.tenantId, { plan: { weight: 3 } });
    a = fleet.pipeline;
    const tenantB = await seedTenant('fairq-b', { weight: 1 }, env);
    tenantOfB = tenantB.tenantId;
    b = { api: fleet.pipeline.api, apiKey: tenantB.apiKey };
  });

  afterAll(async () => {
    await fleet?.stop();
  });

  it('tenants of weights 3 and 1 get 75% and 25% of the model requests while both have work', { timeout: 180_000 }, async () => {
    const [docA, docB] = await Promise.all([
      generatePdf({ pages: 400, seed: 41, label: 'Tenant label TENANT-A' }),
      generatePdf({ pages: 400, seed: 42, label: 'Tenant label TENANT-B' }),
    ]);
    for (const f of fleet.fakes) f.clearLog();
    const [idA, idB] = await Promise.all([
      submitPdf(a, docA.bytes, { pagesPerChunk: '1' }),
      submitPdf(b, docB.bytes, { pagesPerChunk: '1' }),
    ]);
    // When each document's split has written its last chunk input (the last row exists): before
    // that, a document's later chunks are not on the stream yet, whatever its share.
    const status = new StatusTable(fleet.aws.doc, fleet.config.STATUS_TABLE);
    const splitDone: Record<'A' | 'B', number | undefined> = { A: undefined, B: undefined };
    let polling = true;
    const poller = (async () => {
      while (polling && (splitDone.A === undefined || splitDone.B === undefined)) {
        for (const [k, t, id] of [['A', fleet.pipeline.tenantId, idA], ['B', tenantOfB, idB]] as const) {
          if (splitDone[k] === undefined && (await status.listChunks(t, id)).length >= 400) splitDone[k] = Date.now();
        }
        await new Promise((r) => setTimeout(r, 250));
      }
    })();
    // Each worker's analyses waiting per tenant, sampled: a tenant with none waiting at a worker
    // is not backlogged there, and its share there is not the fair queue's choice (diagnostics).
    const backlog: Array<{ at: number; worker: number; a: number; b: number; shards: number }> = [];
    const sampler = (async () => {
      while (polling) {
        await Promise.all(
          fleet.workers.map(async (w, i) => {
            const h = await workerHealth(w).catch(() => undefined);
            const waiting = h?.analyses.waitingByTenant ?? {};
            if (h) backlog.push({ at: Date.now(), worker: i + 1, a: waiting[fleet.pipeline.tenantId] ?? 0, b: waiting[tenantOfB] ?? 0, shards: h.shards.length });
          }),
        );
        await new Promise((r) => setTimeout(r, 250));
      }
    })();
    try {
      // A (3/4 of 15 per second) finishes its 400 chunks first; B still has work until then.
      // What is measured ends with A's last chunk analysis: A's assembly is not part of it (late
      // in a CI run it once took over 100 s, all 400 chunks counted; see the closing note of
      // 2026-12-07), so the test waits for the chunks, not for the document to be completed.
      await waitFor(
        "every chunk of A counted",
        async () => {
          const view = await getStatus(a, idA);
          if (view.status === 'failed') throw new Error(`A failed: ${JSON.stringify(view)}`);
          return view.progress.chunksSucceeded + view.progress.chunksFailed >= 400 ? view : undefined;
        },
        150_000,
        250,
      );
      polling = false;
      await poller;
      await sampler;
      const log: FakeGeminiRequest[] = fleet.fakes.flatMap((f) => f.log).filter((r) => r.pages.length > 0 && r.status === 200);
      const of = (label: string) => log.filter((r) => r.sample.includes(label)).sort((x, y) => x.at - y.at);
      const logA = of('TENANT-A');
      const logB = of('TENANT-B');
      // While both have work waiting: from the moment both are being served until A's last
      // window of chunks (its job's fair-share window) is all that is left of it; after that A
      // has fewer chunks than the fleet could run, and B rightly gets the spare capacity.
      const windowA = (await new StatusTable(fleet.aws.doc, fleet.config.STATUS_TABLE).getJob(fleet.pipeline.tenantId, idA))?.window ?? 0;
      expect(windowA).toBe(96); // FAIR_SHARE_WINDOW (32) x weight 3
      // It starts once A's first window has been dispatched (A's splitter publishes it while it
      // reads the pages, so A is not backlogged before) and B is being served.
      const from = Math.max(logA[windowA]?.at ?? 0, logB[0]?.at ?? 0);
      const to = logA[logA.length - 1 - windowA]?.at ?? 0;
      const nA = logA.filter((r) => r.at >= from && r.at <= to).length;
      const nB = logB.filter((r) => r.at >= from && r.at <= to).length;
      const shareA = nA / (nA + nB);
      const shareB = nB / (nA + nB);
      const lines = fleet.fakes.map((f, i) => {
        const mine = f.log.filter((r) => r.pages.length > 0 && r.status === 200 && r.at >= from && r.at <= to);
        const inWindow = backlog.filter((s) => s.worker === i + 1 && s.at >= from && s.at <= to);
        return `worker ${i + 1}: A ${mine.filter((r) => r.sample.includes('TENANT-A')).length}, B ${mine.filter((r) => r.sample.includes('TENANT-B')).length}; of ${inWindow.length} samples, none of A waiting in ${inWindow.filter((s) => s.a === 0).length}, none of B in ${inWindow.filter((s) => s.b === 0).length}; shards held ${[...new Set(inWindow.map((s) => s.shards))].join('/')}`;
      });
      lines.push(`splits done A +${((splitDone.A ?? NaN) - from) / 1000} s, B +${((splitDone.B ?? NaN) - from) / 1000} s after the window's start; the window ends at +${(to - from) / 1000} s`);
      lines.push(`over ${((to - from) / 1000).toFixed(1)} s: A (weight 3) ${nA} requests, ${(shareA * 100).toFixed(1)}%; B (weight 1) ${nB}, ${(shareB * 100).toFixed(1)}%`);
      const figures = `fair share of the quota: ${lines.join('; ')}`;
      console.info(figures);
      expect(nA + nB, figures).toBeGreaterThan(200);
      expect(Math.abs(shareA - 0.75), figures).toBeLessThanOrEqual(0.075);
      expect(Math.abs(shareB - 0.25), figures).toBeLessThanOrEqual(0.025);
      expect((await getStatus(b, idB)).status).not.toBe('failed');
    } catch (err) {
      await fleet.dump(idA);
      throw err;
    } finally {
      polling = false;
      await deleteDocument(b, idB);
    }
  });
});
