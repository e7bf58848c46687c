/**
 * The synchronous path (DESIGN.md section 2): extract in a worker thread, plan chunks, analyse
 * under the concurrency cap, reduce, persist (metadata row, job row, source and result in S3),
 * and return the result. A sync job is stored like any other, so GET works for it later.
 */
import { createReadStream } from 'node:fs';
import { DocorchError, toDocorchError } from '../errors.js';
import { resultKey, sourceKey } from '../aws/object-keys.js';
import { assembleResult } from '../jobs/assemble.js';
import type { Job } from '../jobs/model.js';
import { planChunks } from '../jobs/planner.js';
import type { DocumentResult } from '../jobs/result.js';
import type { ExtractionResult } from '../pdf/types.js';
import { analyzeChunks } from './analyze-chunks.js';
import type { PipelineContext } from './context.js';
import { newDocumentId, type Submission } from './submission.js';

/** Options of {@link runSync}. */
export interface RunSyncOptions {
  /** Aborts the request's work (client gone, time budget). */
  signal?: AbortSignal;
  /** Document id to use (tests); a new one by default. */
  documentId?: string;
}

/** Extracts the submission's pages (validates the PDF); throws BAD_PDF, ENCRYPTED_PDF, ... */
export async function extractSubmission(ctx: PipelineContext, sub: Submission, signal?: AbortSignal): Promise<ExtractionResult> {
  return ctx.extractor.extract(sub.filePath, {
    maxPages: ctx.config.MAX_PAGES,
    ...(sub.pages !== undefined ? { pages: sub.pages } : {}),
    ...(signal ? { signal } : {}),
  });
}

/**
 * Runs a document through the whole pipeline in-process and returns its result.
 * Validation errors (4xx) are thrown before anything is stored.
 */
export async function runSync(ctx: PipelineContext, sub: Submission, options: RunSyncOptions = {}): Promise<DocumentResult> {
  const { signal } = options;
  const extraction = await extractSubmission(ctx, sub, signal);
  const documentId = options.documentId ?? newDocumentId();
  const log = ctx.logger.child({ tenantId: sub.tenantId, documentId });
  const plan = planChunks(
    extraction.pages.map((p) => p.page),
    sub.pagesPerChunk,
  );
  const now = new Date().toISOString();
  const job: Job = {
    tenantId: sub.tenantId,
    documentId,
    status: 'processing',
    mode: 'sync',
    filename: sub.filename,
    contentType: sub.contentType,
    sizeBytes: sub.sizeBytes,
    sha256: sub.sha256,
    pageCount: extraction.info.pageCount,
    pagesSelected: extraction.pages.length,
    pagesPerChunk: sub.pagesPerChunk,
    analyses: sub.analyses,
    chunksTotal: plan.length,
    chunksSucceeded: 0,
    chunksFailed: 0,
    sourceKey: sourceKey(sub.tenantId, documentId),
    analyzer: ctx.analyzer.name,
    createdAt: now,
    updatedAt: now,
    ...(sub.pages !== undefined ? { pageSelection: sub.pages } : {}),
    ...(sub.webhookUrl !== undefined ? { webhookUrl: sub.webhookUrl } : {}),
  };

  // Store the source first: a job row never points at an object that does not exist.
  await ctx.blobs.upload(ctx.config.UPLOADS_BUCKET, job.sourceKey, createReadStream(sub.filePath), {
    contentType: 'application/pdf',
  });
  await ctx.files.putFile({
    tenantId: sub.tenantId,
    documentId,
    filename: sub.filename,
    contentType: sub.contentType,
    sizeBytes: sub.sizeBytes,
    sha256: sub.sha256,
    bucket: ctx.config.UPLOADS_BUCKET,
    key: job.sourceKey,
    createdAt: now,
  });
  await ctx.status.createJob(job);
  log.info({ pages: extraction.pages.length, chunks: plan.length }, 'sync job started');

  try {
    const pageText = new Map(extraction.pages.map((p) => [p.page, p.text]));
    const chunks = await analyzeChunks(
      ctx.analyzer,
      {
        tenantId: sub.tenantId,
        documentId,
        plan,
        pageText,
        analyses: sub.analyses,
        concurrency: ctx.config.ANALYSIS_CONCURRENCY,
        ...(signal ? { signal } : {}),
      },
      log,
    );
    const succeeded = chunks.filter((c) => c.status === 'succeeded').length;
    await ctx.status.transition(sub.tenantId, documentId, 'assembling', {
      chunksSucceeded: succeeded,
      chunksFailed: chunks.length - succeeded,
    });
    const result = await assembleResult(
      {
        documentId,
        analyzer: ctx.analyzer,
        chunks,
        pageCount: extraction.info.pageCount,
        pagesSelected: extraction.pages.length,
        ...(sub.pages !== undefined ? { pageSelection: sub.pages } : {}),
      },
      signal ? { signal } : {},
    );
    const key = resultKey(sub.tenantId, documentId);
    await ctx.blobs.putJson(ctx.config.RESULTS_BUCKET, key, result);
    await ctx.status.transition(sub.tenantId, documentId, result.status, {
      resultKey: key,
      completedAt: new Date().toISOString(),
      ...(result.status === 'failed'
        ? { error: { code: 'ANALYSIS_FAILED', message: 'Too many chunks failed; see the result for failed pages' } }
        : {}),
    });
    log.info({ status: result.status }, 'sync job finished');
    return result;
  } catch (err) {
    const e = toDocorchError(err);
    log.error({ err: e, code: e.code }, 'sync job failed');
    await ctx.status
      .transition(sub.tenantId, documentId, 'failed', {
        error: { code: e.code, message: e.message },
        completedAt: new Date().toISOString(),
      })
      .catch((markErr: unknown) => log.error({ err: markErr }, 'could not mark job failed'));
    throw e instanceof DocorchError ? e : toDocorchError(err);
  }
}
