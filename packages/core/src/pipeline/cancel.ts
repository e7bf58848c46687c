/**
 * DELETE of a document: cancels pending work and deletes stored data.
 * - queued / splitting / processing: the job becomes `cancelled` (workers see it and stop: claims
 *   and counts are conditional on `processing`, and writers check before each write), its objects
 *   and rows are deleted, and the job row stays as a tombstone so clients polling it see
 *   `cancelled`. After DELETED_RETENTION_MS the reconciler purges the document again, removing
 *   whatever a writer racing the DELETE left behind, then the tombstone itself.
 * - assembling: CONFLICT (the result is moments away; retry the delete).
 * - finished: objects and every row are deleted; the document then answers 404.
 * Deleted with the document: the upload, chunk inputs, chunk results and result (every version
 * the application wrote: see README "Deletion"), the file row, the Idempotency-Key binding, chunk
 * rows, dead letters and the job row.
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
  await deleteData(ctx, cancelled ?? job);
  ctx.logger.info({ tenantId, documentId, from: job.status }, cancelled ? 'document cancelled and data deleted' : 'document deleted');
  if (cancelled) return { kind: 'cancelled', job: cancelled };
  await ctx.status.deleteJob(tenantId, documentId);
  return { kind: 'deleted' };
}

/** Everything of a document but its job row. */
async function deleteData(ctx: PipelineContext, job: Job): Promise<void> {
  const { tenantId, documentId } = job;
  const prefix = documentPrefix(tenantId, documentId);
  await Promise.all([
    ctx.blobs.deletePrefix(ctx.config.UPLOADS_BUCKET, prefix),
    ctx.blobs.deletePrefix(ctx.config.RESULTS_BUCKET, prefix),
    ctx.files.deleteFile(tenantId, documentId),
    job.idempotencyKey ? ctx.files.releaseIdempotencyKey(tenantId, job.idempotencyKey, documentId) : undefined,
    ctx.status.deleteChunks(tenantId, documentId),
    ctx.deadLetters.deleteDocument(tenantId, documentId),
  ]);
}

/**
 * The reconciler's final sweep of a deleted document: deletes everything again (what a writer
 * racing the DELETE created after it), then the tombstone, only if it is still `cancelled`.
 * Returns whether the tombstone was removed.
 */
export async function purgeDocument(ctx: PipelineContext, tenantId: string, documentId: string, options: { onlyCancelled?: boolean } = {}): Promise<boolean> {
  const job = await ctx.status.getJob(tenantId, documentId);
  if (!job || (options.onlyCancelled && job.status !== 'cancelled')) return false;
  await ctx.status.releaseAdmission(tenantId, documentId);
  await deleteData(ctx, job);
  if (!(await ctx.status.deleteJobIf(tenantId, documentId, job.status))) return false;
  ctx.logger.info({ tenantId, documentId }, 'deleted document purged');
  return true;
}
