/**
 * The splitter (core pipeline/split.ts) on the real emulators, called directly:
 *
 * - It commits the chunk rows with chunksTotal, writes every chunk's input and publishes one
 *   `chunk.ready` per chunk, while extracting in slices (chunks are published as slices land).
 * - Resuming an interrupted split (inputs of some pending chunks missing, their records never
 *   published) writes exactly the missing inputs again, identical to the originals, and
 *   re-publishes every pending chunk.
 * - Without pagesPerChunk, chunks are planned by tokens page by page, committed after the last page
 *   with each chunk's first page, and a resume rebuilds missing rows from those starts.
 * - A terminal extraction error after the rows were committed (the text limit, reached in a
 *   later slice) fails the job with that error; nothing is left half-done.
 */
import { writeFile } from 'node:fs/promises';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { DeleteCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  chunkInputKey,
  chunkSk,
  documentPk,
  closePipelineContext,
  createLogger,
  createPdfExtractor,
  createPipelineContext,
  estimatePageTokens,
  loadConfig,
  planChunksByTokens,
  resumeSplit,
  splitDocument,
  type Config,
  type Job,
  type PipelineContext,
  type StreamEvent,
} from '@docorch/core';
import { createIsolatedResources, generatePdf, type IsolatedResources } from '@docorch/testkit';
import { newJob, readStreamEvents } from './helpers.js';

const PAGES = 120;
const PAGES_PER_CHUNK = 5;

describe('splitter', () => {
  let resources: IsolatedResources;
  const contexts: PipelineContext[] = [];
  const tenantId = 'tsplit';
  let pdf: Uint8Array;

  function context(env: Record<string, string> = {}): PipelineContext {
    const config: Config = loadConfig({ ...process.env, ...resources.names, LOG_LEVEL: 'silent', PDF_SLICE_PAGES: '24', ...env });
    const logger = createLogger({ service: 'split-test', level: 'silent' });
    const ctx = createPipelineContext(config, logger, { extractor: createPdfExtractor(config, { logger }) });
    contexts.push(ctx);
    return ctx;
  }

  beforeAll(async () => {
    resources = await createIsolatedResources({ prefix: 'split', shardCount: 2 });
    pdf = (await generatePdf({ pages: PAGES, seed: 7 })).bytes;
  });

  afterAll(async () => {
    await Promise.all(contexts.map((c) => closePipelineContext(c)));
    await resources?.cleanup();
  });

  async function queuedJob(ctx: PipelineContext, documentId: string, pagesPerChunk = PAGES_PER_CHUNK): Promise<Job> {
    const job = newJob(tenantId, documentId, { pages: PAGES, pagesPerChunk, sizeBytes: pdf.byteLength });
    await ctx.blobs.upload(ctx.config.UPLOADS_BUCKET, job.sourceKey, Buffer.from(pdf));
    await ctx.status.createJob(job);
    return job;
  }

  async function chunkReadyCounts(ctx: PipelineContext, documentId: string): Promise<Map<number, number>> {
    const counts = new Map<number, number>();
    for (const e of await readStreamEvents(ctx.aws, ctx.config.STREAM_NAME)) {
      if (e.type !== 'chunk.ready') continue;
      const { payload } = e as StreamEvent<'chunk.ready'>;
      if (payload.documentId === documentId) counts.set(payload.chunkIndex, (counts.get(payload.chunkIndex) ?? 0) + 1);
    }
    return counts;
  }

  it('commits the rows, writes every input and publishes each chunk once', async () => {
    const ctx = context();
    const documentId = 'doc-split-1';
    await queuedJob(ctx, documentId);
    await splitDocument(ctx, { tenantId, documentId });

    const job = await ctx.status.getJob(tenantId, documentId);
    expect(job?.status).toBe('processing');
    expect(job?.chunksTotal).toBe(PAGES / PAGES_PER_CHUNK);
    const rows = await ctx.status.listChunks(tenantId, documentId);
    expect(rows.map((r) => [r.firstPage, r.lastPage])).toEqual(
      Array.from({ length: PAGES / PAGES_PER_CHUNK }, (_, i) => [i * PAGES_PER_CHUNK + 1, (i + 1) * PAGES_PER_CHUNK]),
    );
    for (const row of rows) {
      const input = await ctx.blobs.getJson<{ pages: Array<{ page: number; text: string }> }>(
        ctx.config.UPLOADS_BUCKET,
        chunkInputKey(tenantId, documentId, row.index),
      );
      expect(input?.pages.map((p) => p.page)).toEqual(Array.from({ length: PAGES_PER_CHUNK }, (_, i) => row.firstPage + i));
      expect(input?.pages.every((p) => p.text.length > 0)).toBe(true);
    }
    const counts = await chunkReadyCounts(ctx, documentId);
    expect(counts.size).toBe(rows.length);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
  });

  it('resumes an interrupted split: rewrites exactly the missing inputs and re-publishes the pending chunks', async () => {
    const ctx = context();
    const documentId = 'doc-split-2';
    await queuedJob(ctx, documentId);
    await splitDocument(ctx, { tenantId, documentId });
    const rows = await ctx.status.listChunks(tenantId, documentId);
    const originals = new Map<number, unknown>();
    for (const row of rows) {
      originals.set(row.index, await ctx.blobs.getJson(ctx.config.UPLOADS_BUCKET, chunkInputKey(tenantId, documentId, row.index)));
    }
    // As if the splitter had died before these inputs were written (and so before their records).
    const lost = [0, 2, 9, rows.length - 1];
    for (const i of lost) {
      await ctx.aws.s3.send(new DeleteObjectCommand({ Bucket: ctx.config.UPLOADS_BUCKET, Key: chunkInputKey(tenantId, documentId, i) }));
    }
    const before = await chunkReadyCounts(ctx, documentId);

    const job = (await ctx.status.getJob(tenantId, documentId)) as Job;
    const published = await resumeSplit(ctx, job);
    expect(published).toBe(rows.length); // none was processed, so every chunk is pending
    for (const row of rows) {
      expect(await ctx.blobs.getJson(ctx.config.UPLOADS_BUCKET, chunkInputKey(tenantId, documentId, row.index))).toEqual(originals.get(row.index));
    }
    const after = await chunkReadyCounts(ctx, documentId);
    for (const row of rows) expect(after.get(row.index)).toBe((before.get(row.index) ?? 0) + 1);
    // The redelivered document.submitted goes the same way.
    await splitDocument(ctx, { tenantId, documentId });
    expect((await chunkReadyCounts(ctx, documentId)).get(1)).toBe((before.get(1) ?? 0) + 2);
  });

  it('resumes a split interrupted between its commit and its last rows: creates them, writes their inputs, publishes them', async () => {
    const ctx = context({ FAIR_SHARE_WINDOW: '1000' }); // every chunk published by the splitter (fair share: test/fair-share-protocol.test.ts)
    const documentId = 'doc-split-rows';
    await queuedJob(ctx, documentId, 1); // 120 chunks (0-119): rows 99-119 are written after the commit
    await splitDocument(ctx, { tenantId, documentId });
    const rows = await ctx.status.listChunks(tenantId, documentId);
    expect(rows).toHaveLength(PAGES);
    // As if the splitter had died right after the commit transaction.
    const pk = documentPk(tenantId, documentId);
    for (let index = 99; index < PAGES; index++) {
      await ctx.aws.doc.send(new DeleteCommand({ TableName: ctx.config.STATUS_TABLE, Key: { pk, sk: chunkSk(index) } }));
      await ctx.aws.s3.send(new DeleteObjectCommand({ Bucket: ctx.config.UPLOADS_BUCKET, Key: chunkInputKey(tenantId, documentId, index) }));
    }
    const before = await chunkReadyCounts(ctx, documentId);
    await splitDocument(ctx, { tenantId, documentId }); // the redelivered record
    const after = await ctx.status.listChunks(tenantId, documentId);
    expect(after.map((r) => [r.index, r.firstPage, r.lastPage, r.status])).toEqual(rows.map((r) => [r.index, r.firstPage, r.lastPage, 'pending']));
    for (let index = 99; index < PAGES; index++) {
      const input = await ctx.blobs.getJson<{ pages: Array<{ page: number }> }>(ctx.config.UPLOADS_BUCKET, chunkInputKey(tenantId, documentId, index));
      expect(input?.pages.map((p) => p.page)).toEqual([index + 1]);
    }
    const counts = await chunkReadyCounts(ctx, documentId);
    for (const r of rows) expect(counts.get(r.index)).toBe((before.get(r.index) ?? 0) + 1);
  });

  it('plans by tokens without pagesPerChunk: chunks packed to the target, committed after the last page with their starts, resumed from them', async () => {
    const ctx = context({ CHUNK_TARGET_TOKENS: '2000', CHUNK_MIN_COUNT: '2', FAIR_SHARE_WINDOW: '1000' });
    const documentId = 'doc-split-tokens';
    const job = newJob(tenantId, documentId, { pages: PAGES, sizeBytes: pdf.byteLength });
    delete job.pagesPerChunk;
    await ctx.blobs.upload(ctx.config.UPLOADS_BUCKET, job.sourceKey, Buffer.from(pdf));
    await ctx.status.createJob(job);
    await splitDocument(ctx, { tenantId, documentId });

    const { pages } = await extractAll();
    const expected = planChunksByTokens(
      pages.map((p) => ({ page: p.page, tokens: estimatePageTokens(p) })),
      { targetTokens: 2000, maxPages: ctx.config.CHUNK_MAX_PAGES, minChunks: 2, pagesPerChunk: ctx.config.PAGES_PER_CHUNK },
    );
    expect(expected.length).toBeGreaterThan(PAGES / ctx.config.PAGES_PER_CHUNK / 2); // tokens drive it, not the floor
    const committed = (await ctx.status.getJob(tenantId, documentId)) as Job;
    expect(committed.status).toBe('processing');
    expect(committed.chunksTotal).toBe(expected.length);
    expect(committed.chunkStarts).toEqual(expected.map((c) => c.pages[0]));
    const rows = await ctx.status.listChunks(tenantId, documentId);
    expect(rows.map((r) => [r.firstPage, r.lastPage])).toEqual(expected.map((c) => [c.pages[0], c.pages[c.pages.length - 1]]));
    const counts = await chunkReadyCounts(ctx, documentId);
    expect([...counts.keys()].sort((a, b) => a - b)).toEqual(rows.map((r) => r.index));

    // A split interrupted after its commit: rows and inputs missing; the redelivery rebuilds them from the starts.
    const pk = documentPk(tenantId, documentId);
    for (const index of [1, rows.length - 1]) {
      await ctx.aws.doc.send(new DeleteCommand({ TableName: ctx.config.STATUS_TABLE, Key: { pk, sk: chunkSk(index) } }));
      await ctx.aws.s3.send(new DeleteObjectCommand({ Bucket: ctx.config.UPLOADS_BUCKET, Key: chunkInputKey(tenantId, documentId, index) }));
    }
    await splitDocument(ctx, { tenantId, documentId });
    const after = await ctx.status.listChunks(tenantId, documentId);
    expect(after.map((r) => [r.index, r.firstPage, r.lastPage])).toEqual(rows.map((r) => [r.index, r.firstPage, r.lastPage]));
    const last = expected[expected.length - 1] as { pages: number[] };
    const input = await ctx.blobs.getJson<{ pages: Array<{ page: number }> }>(ctx.config.UPLOADS_BUCKET, chunkInputKey(tenantId, documentId, rows.length - 1));
    expect(input?.pages.map((p) => p.page)).toEqual(last.pages);
  });

  it('fails the job with the error when a later slice breaks a limit after the rows were committed', async () => {
    // Slices of 24 pages: the first slices fit, a later one passes the text limit.
    const perPage = Math.ceil(Buffer.byteLength(JSON.stringify(originalText(await extractAll()))) / PAGES);
    const ctx = context({ PDF_MAX_TEXT_BYTES: String(perPage * 60) });
    const documentId = 'doc-split-3';
    await queuedJob(ctx, documentId);
    await splitDocument(ctx, { tenantId, documentId });
    const job = await ctx.status.getJob(tenantId, documentId);
    expect(job?.status).toBe('failed');
    expect(job?.error?.code).toBe('TOO_LARGE');
  });

  async function extractAll() {
    const ctx = context();
    const file = `${process.env.TMPDIR ?? '/tmp'}/docorch-split-test-${process.pid}.pdf`;
    await writeFile(file, pdf);
    return ctx.extractor.extract(file, { maxPages: 10_000 });
  }

  function originalText(result: Awaited<ReturnType<typeof extractAll>>): string {
    return result.pages.map((p) => p.text).join('');
  }
});
