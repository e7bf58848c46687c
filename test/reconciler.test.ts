/**
 * No document left behind (issue 10): the gaps where a document used to stay non-terminal forever,
 * each reproduced on a real pipeline (API, two workers and the aggregator as child processes, the
 * emulators, a fake Gemini) and closed by the reconciler that the workers run:
 *
 * - the API stops between storing an upload and publishing `document.submitted` (the job `queued`,
 *   no record): re-published, the document completes;
 * - the API is killed -9 during a sync analysis (the job `processing`, no chunk row): fenced and
 *   resumed on the async path, the document completes;
 * - the API dies between storing a sync result and finishing its job (`processing`, or
 *   `assembling` as an older version left it; no chunk row): the reconciler finishes it from the
 *   stored result without analysing it again;
 * - a DELETE of a 300-page document mid-processing: after the drain and the tombstone's purge,
 *   nothing of it is left in either bucket or any table;
 * - SIGTERM of the API during a sync request: new uploads answer 503 SHUTTING_DOWN, the sync
 *   request hands its document to the async path after API_DRAIN_MS and answers 202 with its id,
 *   and the document completes.
 *
 * Each document reaches a terminal state within RECONCILE_STALE_MS plus one sweep
 * (RECONCILE_INTERVAL_MS), plus its own processing time, with every chunk counted exactly once
 * (the job's counts equal its chunks, the tenant's metered pages equal its pages).
 */
import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import {
  ANALYSIS_KINDS,
  closePipelineContext,
  createDocument,
  createLogger,
  createPipelineContext,
  newDocumentId,
  resultKey,
  unavailableExtractor,
  type AnalysisKind,
  type PipelineContext,
} from '@docorch/core';
import { generatePdf, startFakeGemini, startPipeline, startService, type FakeGemini, type Pipeline, type ServiceProcess } from '@docorch/testkit';
import { pipelineClients, submitPdf, waitFor } from './helpers.js';

const STALE_MS = 3_000;
const INTERVAL_MS = 500;
const SYNC_TIMEOUT_MS = 8_000;
const TERMINAL = new Set(['completed', 'completed_with_errors', 'failed', 'cancelled']);

describe('the reconciler drives stuck documents to a terminal state', () => {
  let pipeline: Pipeline;
  let fake: FakeGemini;
  let ctx: PipelineContext;
  let dir: string;
  const extra: ServiceProcess[] = [];

  beforeAll(async () => {
    fake = await startFakeGemini({ latencyMs: 150 });
    pipeline = await startPipeline({
      workers: 2,
      shards: 2,
      prefix: 'reconcile',
      env: {
        ANALYZER: 'gemini',
        GEMINI_API_KEY: 'test',
        GEMINI_BASE_URL: fake.url,
        RECONCILE_STALE_MS: String(STALE_MS),
        RECONCILE_INTERVAL_MS: String(INTERVAL_MS),
        DELETED_RETENTION_MS: '2000',
        SYNC_TIMEOUT_MS: String(SYNC_TIMEOUT_MS),
        CHUNK_CLAIM_TIMEOUT_MS: '2000',
        LEASE_FAILOVER_MS: '3000',
        API_DRAIN_MS: '1000',
      },
    });
    const { config, aws } = pipelineClients(pipeline);
    ctx = createPipelineContext(config, createLogger({ service: 'reconciler-test', level: 'silent' }), {
      aws,
      extractor: unavailableExtractor('not needed'),
      analyzer: { name: 'gemini/test', analyzeChunk: () => Promise.reject(new Error('no')), reduceSummaries: () => Promise.reject(new Error('no')), close: async () => undefined },
    });
    dir = await mkdtemp(path.join(tmpdir(), 'docorch-reconcile-'));
  }, 120_000);

  afterAll(async () => {
    await Promise.all(extra.map((p) => p.stop(5_000)));
    if (ctx) await closePipelineContext(ctx);
    await pipeline?.stop();
    await fake?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Polls the job row until terminal; returns it and when it got there. */
  async function terminal(documentId: string, timeoutMs: number) {
    const job = await waitFor(
      `document ${documentId} terminal`,
      async () => {
        const j = await ctx.status.getJob(pipeline.tenantId, documentId);
        return j && TERMINAL.has(j.status) ? j : undefined;
      },
      timeoutMs,
      100,
    );
    return { job, at: Date.now() };
  }

  it('the API stopped between storing the upload and publishing its record: the queued job is re-published and completes', { timeout: 90_000 }, async () => {
    const pdf = await generatePdf({ pages: 12, seed: 41 });
    const file = path.join(dir, 'orphan.pdf');
    await writeFile(file, pdf.bytes);
    // Exactly what the API has written when it dies before `queue.add`: the upload in S3, the
    // file row and the queued job row (with its admission), and no record on the stream.
    const documentId = newDocumentId();
    const job = await createDocument(
      ctx,
      {
        tenantId: pipeline.tenantId,
        filePath: file,
        filename: 'orphan.pdf',
        contentType: 'application/pdf',
        sizeBytes: pdf.bytes.length,
        sha256: 'x'.repeat(64),
        pagesPerChunk: 3,
        analyses: [...ANALYSIS_KINDS] as AnalysisKind[],
        limits: { maxPages: 1000, pagesPerMonth: 1_000_000, tokensPerMonth: 1_000_000_000, concurrentDocuments: 100 },
      },
      { documentId, mode: 'async', status: 'queued', pageCount: 12, pagesSelected: 12, chunksTotal: 0 },
    );
    const t0 = Date.parse(job.updatedAt);
    // Nothing else will ever publish this document: only the reconciler can move it.
    const moved = await waitFor('the queued job picked up', async () => {
      const j = await ctx.status.getJob(pipeline.tenantId, documentId);
      return j && j.status !== 'queued' ? Date.now() : undefined;
    }, 30_000, 50);
    const { job: done, at } = await terminal(documentId, 60_000);
    console.log(`queued orphan: picked up after ${moved - t0} ms (stale ${STALE_MS} + sweep ${INTERVAL_MS}), terminal after ${at - t0} ms`);
    expect(moved - t0).toBeLessThanOrEqual(STALE_MS + INTERVAL_MS + 1_500);
    expect(done.status).toBe('completed');
    expect(done.recoveries).toBeGreaterThanOrEqual(1);
    expect(done.chunksSucceeded).toBe(4);
    expect(done.chunksFailed).toBe(0);
    expect(done.pagesDone).toBe(12);
  });

  it('the API killed between storing a sync result and finishing its job: the reconciler finishes it from the stored result', { timeout: 60_000 }, async () => {
    const pdf = await generatePdf({ pages: 4, seed: 44, label: 'sync-stored' });
    const file = path.join(dir, 'sync-stored.pdf');
    await writeFile(file, pdf.bytes);
    const limits = { maxPages: 1000, pagesPerMonth: 1_000_000, tokensPerMonth: 1_000_000_000, concurrentDocuments: 100 };
    const sub = {
      tenantId: pipeline.tenantId, filePath: file, filename: 'sync.pdf', contentType: 'application/pdf', sizeBytes: pdf.bytes.length, sha256: 'y'.repeat(64),
      pagesPerChunk: 2, analyses: [...ANALYSIS_KINDS] as AnalysisKind[], limits,
    };
    const chunk = (index: number) => ({ index, pages: [index * 2 + 1, index * 2 + 2], status: 'succeeded', summary: 's', keyPoints: [], entities: [], sentiment: 'neutral', textLength: 1, failedPages: [], usage: { inputTokens: 5, outputTokens: 2, modelCalls: 1 } });
    /** What pipeline/sync.ts has written when its process dies after storing the result: the job `processing`, the result at its key. */
    const diedAfterStoring = async () => {
      const documentId = newDocumentId();
      const job = await createDocument(ctx, sub, { documentId, mode: 'sync', status: 'processing', pageCount: 4, pagesSelected: 4, chunksTotal: 2 });
      const key = resultKey(pipeline.tenantId, documentId);
      await ctx.blobs.putJson(ctx.config.RESULTS_BUCKET, key, { documentId, status: 'completed', summary: 'done', chunks: [chunk(0), chunk(1)], usage: { inputTokens: 10, outputTokens: 5, modelCalls: 3 } });
      return { documentId, key, createdAt: Date.parse(job.createdAt) };
    };
    // This version: the run dies between its result and its terminal write (the job `processing`,
    // no chunk row). The reconciler waits out the sync budget, fences it, and finishes it from the
    // result, without analysing it again.
    const now = await diedAfterStoring();
    // An older version wrote `assembling` (with the key) in between; such a job is finished too.
    const old = await diedAfterStoring();
    await ctx.status.transition(pipeline.tenantId, old.documentId, 'assembling', { chunksSucceeded: 2, chunksFailed: 0, resultKey: old.key });
    const t0 = Date.now();
    const [current, legacy] = await Promise.all([terminal(now.documentId, SYNC_TIMEOUT_MS + 30_000), terminal(old.documentId, 30_000)]);
    console.log(`sync run died after storing its result: finished ${current.at - now.createdAt} ms after it started (budget ${SYNC_TIMEOUT_MS} + stale ${STALE_MS} + sweep ${INTERVAL_MS}); left assembling: ${legacy.at - t0} ms`);
    for (const { job } of [current, legacy]) {
      expect(job.status).toBe('completed');
      expect(job.pagesDone).toBe(4);
      expect(job.chunksSucceeded).toBe(2);
      expect(job.recoveries ?? 0).toBe(0);
    }
    expect(current.job.resultKey).toBe(now.key);
    expect(current.job.syncFenced).toBe(true);
    expect(current.at - now.createdAt).toBeLessThanOrEqual(SYNC_TIMEOUT_MS + STALE_MS + INTERVAL_MS + 1_500);
    expect(legacy.at - t0).toBeLessThanOrEqual(STALE_MS + INTERVAL_MS + 1_500);
    // Finished from the stored result: no page of it went to the model again.
    expect(fake.log.some((r) => r.sample.includes('sync-stored'))).toBe(false);
  });

  it('DELETE of a 300-page document mid-processing leaves nothing of it in either bucket or any table once drained', { timeout: 180_000 }, async () => {
    const pdf = await generatePdf({ pages: 300, seed: 300 });
    const documentId = await submitPdf(pipeline, pdf.bytes, { mode: 'async', pagesPerChunk: '5' }, ).then((id) => id);
    await waitFor('some chunks done', async () => {
      const j = await ctx.status.getJob(pipeline.tenantId, documentId);
      return j && j.chunksSucceeded >= 5 ? j : undefined;
    }, 60_000, 50);
    const res = await fetch(`${pipeline.api.baseUrl}/v1/documents/${documentId}`, { method: 'DELETE', headers: { authorization: `Bearer ${pipeline.apiKey}` } });
    expect([200, 202]).toContain(res.status);
    const body = (await res.json()) as { status: string };
    expect(body.status).toBe('cancelled');
    // The tombstone answers `cancelled` for DELETED_RETENTION_MS, then the reconciler purges it
    // (and whatever a worker racing the DELETE wrote after it): the document answers 404.
    await waitFor('the tombstone purged', async () => {
      const r = await fetch(`${pipeline.api.baseUrl}/v1/documents/${documentId}`, { headers: { authorization: `Bearer ${pipeline.apiKey}` } });
      await r.arrayBuffer();
      return r.status === 404 ? true : undefined;
    }, 60_000, 250);
    // Drained: wait until no analysis of it is open at the fake, plus a claim timeout.
    await waitFor('no analysis of the document in flight', () => (fake.log.every((r) => r.respondedAt !== undefined || r.clientAborted) ? true : undefined), 30_000, 100);
    await new Promise((r) => setTimeout(r, 2_500));
    await waitFor('the purge repeated after the drain', async () => (await leftovers(documentId)).length === 0 ? true : undefined, 30_000, 500).catch(async () => {
      throw new Error(`left behind: ${JSON.stringify((await leftovers(documentId)).slice(0, 20))}`);
    });
    expect(await leftovers(documentId)).toEqual([]);
  });

  /** Every object key and table item, in both buckets and every table, that names the document. */
  async function leftovers(documentId: string): Promise<string[]> {
    const found: string[] = [];
    for (const bucket of [ctx.config.UPLOADS_BUCKET, ctx.config.RESULTS_BUCKET]) {
      let token: string | undefined;
      do {
        const page = await ctx.aws.s3.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
        for (const o of page.Contents ?? []) if (o.Key?.includes(documentId)) found.push(`s3://${bucket}/${o.Key}`);
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
    }
    const tables = [ctx.config.STATUS_TABLE, ctx.config.FILES_TABLE, ctx.config.TENANTS_TABLE, ctx.config.LEASES_TABLE, ctx.config.DEAD_LETTERS_TABLE, ctx.config.RATE_LIMIT_TABLE, ctx.config.WEBHOOKS_TABLE];
    for (const table of tables) {
      let start: Record<string, unknown> | undefined;
      do {
        const page = await ctx.aws.doc.send(new ScanCommand({ TableName: table, ExclusiveStartKey: start, ConsistentRead: true }));
        for (const item of page.Items ?? []) if (JSON.stringify(item).includes(documentId)) found.push(`${table}: ${JSON.stringify(item).slice(0, 160)}`);
        start = page.LastEvaluatedKey;
      } while (start);
    }
    return found;
  }

  it('SIGTERM of the API during a sync request: the request answers 202 with its id, new uploads 503, the document completes', { timeout: 120_000 }, async () => {
    const pages = 8;
    const pdf = await generatePdf({ pages, seed: 909, label: 'sync-term' });
    fake.configure({ latencyMs: 1_500 });
    const post = (mode: string) => {
      const form = new FormData();
      form.set('mode', mode);
      form.set('pagesPerChunk', '2');
      form.set('file', new Blob([pdf.bytes], { type: 'application/pdf' }), 'term.pdf');
      return fetch(`${pipeline.api.baseUrl}/v1/documents`, { method: 'POST', body: form, headers: { authorization: `Bearer ${pipeline.apiKey}`, connection: 'close' } });
    };
    const request = post('sync');
    await waitFor('its first model call', () => (fake.log.some((r) => r.sample.includes('sync-term')) ? true : undefined), 15_000, 20);
    const old = pipeline.api;
    old.signal('SIGTERM');
    await new Promise((r) => setTimeout(r, 200));
    // Draining: no new uploads (the server may also already refuse the connection).
    const refused = await post('async').then(async (r) => ({ status: r.status, body: (await r.json()) as { code?: string }, retryAfter: r.headers.get('retry-after') }), () => undefined);
    console.log(`upload during the drain: ${refused ? `${refused.status} ${refused.body.code ?? ''}` : 'connection refused'}`);
    if (refused) {
      expect(refused.status).toBe(503);
      expect(refused.body.code).toBe('SHUTTING_DOWN');
      expect(refused.retryAfter).not.toBeNull();
    }
    const res = await request;
    expect(res.status).toBe(202);
    const { id, status } = (await res.json()) as { id: string; status: string };
    expect(status).toBe('processing');
    await old.exitedPromise;
    fake.configure({ latencyMs: 150 });
    const { job } = await terminal(id, 60_000);
    expect(job.status).toBe('completed');
    expect(job.mode).toBe('sync');
    expect(job.chunksSucceeded).toBe(4);
    expect(job.pagesDone).toBe(pages);
    expect(job.syncFenced).toBeUndefined(); // handed off by the API itself, not by the reconciler
    const api = await startService({ service: 'api', env: pipeline.env });
    extra.push(api);
    pipeline.api = api;
  });

  it('the API killed -9 during a sync analysis: the job is fenced, resumed on the async path and completes, each chunk counted once', { timeout: 120_000 }, async () => {
    const pages = 8;
    const pdf = await generatePdf({ pages, seed: 808, label: 'sync-kill' });
    fake.configure({ latencyMs: 1_500 });
    const form = new FormData();
    form.set('mode', 'sync');
    form.set('pagesPerChunk', '2');
    form.set('file', new Blob([pdf.bytes], { type: 'application/pdf' }), 'sync.pdf');
    const request = fetch(`${pipeline.api.baseUrl}/v1/documents`, { method: 'POST', body: form, headers: { authorization: `Bearer ${pipeline.apiKey}` } }).catch((err: unknown) => err);
    const sync = await waitFor('the sync job running', async () => {
      const { jobs } = await ctx.status.listJobs(pipeline.tenantId, { limit: 10 });
      return jobs.find((j) => j.mode === 'sync' && j.status === 'processing');
    }, 30_000, 50);
    await waitFor('its first model call', () => (fake.log.some((r) => r.sample.includes('sync-kill')) ? true : undefined), 15_000, 20);
    pipeline.api.signal('SIGKILL');
    await pipeline.api.exitedPromise;
    expect(await request).toBeInstanceOf(Error); // the client lost its connection
    fake.configure({ latencyMs: 150 });
    const t0 = Date.parse(sync.createdAt);
    const { job, at } = await terminal(sync.documentId, 90_000);
    console.log(`sync kill: terminal ${at - t0} ms after creation (sync budget ${SYNC_TIMEOUT_MS} + stale ${STALE_MS} + sweep ${INTERVAL_MS}, then the split)`);
    expect(job.status).toBe('completed');
    expect(job.syncFenced).toBe(true);
    expect(job.chunksTotal).toBe(4);
    expect(job.chunksSucceeded).toBe(4);
    expect(job.pagesDone).toBe(pages);
    const rows = await ctx.status.listChunks(pipeline.tenantId, sync.documentId);
    expect(rows.map((r) => r.status)).toEqual(['succeeded', 'succeeded', 'succeeded', 'succeeded']);
    // The API comes back for the other tests (the old one is gone).
    const api = await startService({ service: 'api', env: pipeline.env });
    extra.push(api);
    pipeline.api = api;
  });
});
