/**
 * The async path's front half (DESIGN.md section 2): the upload is streamed to S3, the metadata
 * and job rows are written, and `document.submitted` is published. The API validates the PDF
 * (inspect) first, so a bad file is a 4xx in the request rather than a failed job later.
 */
import { createReadStream } from 'node:fs';
import { sourceKey } from '../aws/object-keys.js';
import { toDocorchError } from '../errors.js';
import type { Job } from '../jobs/model.js';
import type { PdfInfo } from '../pdf/types.js';
import type { PipelineContext } from './context.js';
import { newDocumentId, type Submission } from './submission.js';

/** Stores the upload and queues it for the worker fleet; returns the queued job. */
export async function submitAsync(
  ctx: PipelineContext,
  sub: Submission,
  info: PdfInfo & { pagesSelected: number },
  options: { documentId?: string } = {},
): Promise<Job> {
  const documentId = options.documentId ?? newDocumentId();
  const log = ctx.logger.child({ tenantId: sub.tenantId, documentId });
  const now = new Date().toISOString();
  const job: Job = {
    tenantId: sub.tenantId,
    documentId,
    status: 'queued',
    mode: 'async',
    filename: sub.filename,
    contentType: sub.contentType,
    sizeBytes: sub.sizeBytes,
    sha256: sub.sha256,
    pageCount: info.pageCount,
    pagesSelected: info.pagesSelected,
    pagesPerChunk: sub.pagesPerChunk,
    analyses: sub.analyses,
    chunksTotal: 0,
    chunksSucceeded: 0,
    chunksFailed: 0,
    sourceKey: sourceKey(sub.tenantId, documentId),
    analyzer: ctx.analyzer.name,
    createdAt: now,
    updatedAt: now,
    ...(sub.pages !== undefined ? { pageSelection: sub.pages } : {}),
    ...(sub.webhookUrl !== undefined ? { webhookUrl: sub.webhookUrl } : {}),
  };
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
  try {
    await ctx.queue.add('document.submitted', { tenantId: sub.tenantId, documentId }, { partitionKey: documentId });
  } catch (err) {
    // Without its event the job would sit in `queued` forever: fail it visibly, and let the
    // client retry the upload (the API answers 503).
    const e = toDocorchError(err);
    log.error({ err: e }, 'could not publish document.submitted');
    await ctx.status
      .transition(sub.tenantId, documentId, 'failed', { error: { code: e.code, message: 'Could not queue the document' } })
      .catch(() => undefined);
    throw e;
  }
  log.info({ pages: info.pagesSelected, sizeBytes: sub.sizeBytes }, 'document queued');
  return job;
}
