/**
 * DELETE of a document: cancels pending work and deletes stored data.
 * - queued / splitting / processing: the job becomes `cancelled` (workers see it and stop: claims
 *   and counts are conditional on `processing`), its objects and rows are deleted, and the job row
 *   stays as a tombstone so clients polling it see `cancelled`.
 * - assembling: CONFLICT (the result is moments away; retry the delete).
 * - finished: objects and every row are deleted; the document then answers 404.
 */
import { documentPrefix } from '../aws/object-keys.js';
import { DocorchError } from '../errors.js';
import { TERMINAL_STATUSES, type Job } from '../jobs/model.js';
import type { PipelineContext } from './context.js';

/** What a delete did. */
export type DeleteOutcome = { kind: 'cancelled'; job: Job } | { kind: 'deleted' };

export async function deleteDocument(ctx: PipelineContext, tenantId: string, documentId: string): Promise<DeleteOutcome> {
  const job = await ctx.status.getJob(tenantId, documentId);
  if (!job) throw new DocorchError('NOT_FOUND', `Document ${documentId} not found`);
  if (job.status === 'assembling') {
    throw new DocorchError('CONFLICT', 'The document is being assembled; retry the delete in a few seconds', { retryAfterMs: 5_000 });
  }
  let cancelled: Job | undefined;
  // A cancel or failure whose release was interrupted (see StatusTable.releaseAdmission) is finished here.
  if (TERMINAL_STATUSES.has(job.status)) await ctx.status.releaseAdmission(tenantId, documentId);
  if (!TERMINAL_STATUSES.has(job.status)) {
    cancelled = await ctx.status.transition(tenantId, documentId, 'cancelled', {
      completedAt: new Date().toISOString(),
      error: { code: 'CANCELLED', message: 'Cancelled by the client' },
    });
  }
  const prefix = documentPrefix(tenantId, documentId);
  await Promise.all([
    ctx.blobs.deletePrefix(ctx.config.UPLOADS_BUCKET, prefix),
    ctx.blobs.deletePrefix(ctx.config.RESULTS_BUCKET, prefix),
    ctx.files.deleteFile(tenantId, documentId),
    ctx.status.deleteChunks(tenantId, documentId),
  ]);
  ctx.logger.info({ tenantId, documentId, from: job.status }, cancelled ? 'document cancelled and data deleted' : 'document deleted');
  if (cancelled) return { kind: 'cancelled', job: cancelled };
  await ctx.status.deleteJob(tenantId, documentId);
  return { kind: 'deleted' };
}
