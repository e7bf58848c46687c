/**
 * The async path's front half (DESIGN.md section 2): the upload is streamed to S3, the metadata
 * and job rows are written, and `document.submitted` is published. The API validates the PDF
 * (inspect) first, so a bad file is a 4xx in the request rather than a failed job later.
 */
import { toDocorchError } from '../errors.js';
import type { Job } from '../jobs/model.js';
import type { PdfInfo } from '../pdf/types.js';
import type { PipelineContext } from './context.js';
import { createDocument, newDocumentId, type Submission } from './submission.js';

/** Stores the upload and queues it for the worker fleet; returns the queued job. */
export async function submitAsync(
  ctx: PipelineContext,
  sub: Submission,
  info: PdfInfo & { pagesSelected: number },
  options: { documentId?: string } = {},
): Promise<Job> {
  const documentId = options.documentId ?? newDocumentId();
  const log = ctx.logger.child({ tenantId: sub.tenantId, documentId });
  const job = await createDocument(ctx, sub, {
    documentId,
    mode: 'async',
    status: 'queued',
    pageCount: info.pageCount,
    pagesSelected: info.pagesSelected,
    chunksTotal: 0,
  });
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
