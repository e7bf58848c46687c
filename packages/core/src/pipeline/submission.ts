/** A validated upload, as the API hands it to the pipeline, and the creation of its document. */
import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { AnalysisKind } from '../analysis/types.js';
import { sourceKey } from '../aws/object-keys.js';
import type { Job, JobMode, JobStatus } from '../jobs/model.js';
import { DocorchError } from '../errors.js';
import type { QuotaLimits } from '../store/usage-meter.js';
import { currentTraceparent } from '../telemetry/tracing.js';
import type { PipelineContext } from './context.js';

export interface Submission {
  tenantId: string;
  /** Path of the uploaded file on local disk (removed by the caller afterwards). */
  filePath: string;
  filename: string;
  contentType: string;
  sizeBytes: number;
  sha256: string;
  /** Page selection, e.g. `1-3,7`; all pages when absent. */
  pages?: string;
  /** Pages per chunk; absent: chunks planned by tokens (CHUNK_TARGET_TOKENS). */
  pagesPerChunk?: number;
  analyses: AnalysisKind[];
  webhookUrl?: string;
  /** The Idempotency-Key the request carried (kept on the job, deleted with the document). */
  idempotencyKey?: string;
  /**
   * The tenant's plan limits (store/tenants.ts resolvePlan). When given, the document is admitted
   * against them before anything is stored: more pages than `maxPages` is 422 TOO_MANY_PAGES, and
   * the in-flight slot and the pages are reserved atomically (429 CONCURRENCY_LIMIT,
   * QUOTA_PAGES_EXCEEDED, QUOTA_TOKENS_EXCEEDED). @defaultValue no admission (internal callers)
   */
  limits?: QuotaLimits & { maxPages: number };
}

/** New document id: time-ordered prefix (sortable in logs) + 96 random bits. */
export function newDocumentId(now = Date.now()): string {
  return `${now.toString(36).padStart(9, '0')}${randomUUID().replaceAll('-', '').slice(0, 24)}`;
}

/** What the path creating a document knows about it. */
export interface NewDocument {
  documentId: string;
  mode: JobMode;
  status: Extract<JobStatus, 'queued' | 'processing'>;
  pageCount: number;
  pagesSelected: number;
  chunksTotal: number;
  /** First page of each chunk of a token plan (jobs/planner.ts chunkStarts). */
  chunkStarts?: number[];
}

/**
 * Creates a document: admission against the tenant's plan (nothing is stored before it), the
 * source in the uploads bucket (streamed from disk), its metadata row, then its job row. The source
 * goes first, so a job row never points at a missing object. An admission whose document could not
 * be created is given back.
 */
export async function createDocument(ctx: PipelineContext, sub: Submission, doc: NewDocument): Promise<Job> {
  let admission;
  if (sub.limits) {
    if (doc.pageCount > sub.limits.maxPages) {
      throw new DocorchError('TOO_MANY_PAGES', `The PDF has ${doc.pageCount} pages; your plan allows ${sub.limits.maxPages}`, {
        details: { pageCount: doc.pageCount, maxPages: sub.limits.maxPages },
      });
    }
    admission = await ctx.usage.admit(sub.tenantId, doc.pagesSelected, sub.limits);
  }
  try {
    return await storeDocument(ctx, sub, doc, admission ? { month: admission.month, pages: admission.pages } : undefined);
  } catch (err) {
    if (admission) await ctx.usage.cancelAdmission(admission).catch(() => undefined);
    throw err;
  }
}

async function storeDocument(ctx: PipelineContext, sub: Submission, doc: NewDocument, admission: Job['admission']): Promise<Job> {
  const now = new Date().toISOString();
  const traceparent = currentTraceparent();
  const job: Job = {
    tenantId: sub.tenantId,
    documentId: doc.documentId,
    status: doc.status,
    mode: doc.mode,
    filename: sub.filename,
    contentType: sub.contentType,
    sizeBytes: sub.sizeBytes,
    sha256: sub.sha256,
    pageCount: doc.pageCount,
    pagesSelected: doc.pagesSelected,
    ...(sub.pagesPerChunk !== undefined ? { pagesPerChunk: sub.pagesPerChunk } : {}),
    analyses: sub.analyses,
    chunksTotal: doc.chunksTotal,
    ...(doc.chunkStarts !== undefined ? { chunkStarts: doc.chunkStarts } : {}),
    chunksSucceeded: 0,
    chunksFailed: 0,
    sourceKey: sourceKey(sub.tenantId, doc.documentId),
    analyzer: ctx.analyzer.name,
    createdAt: now,
    updatedAt: now,
    ...(sub.pages !== undefined ? { pageSelection: sub.pages } : {}),
    ...(sub.webhookUrl !== undefined ? { webhookUrl: sub.webhookUrl } : {}),
    ...(sub.idempotencyKey !== undefined ? { idempotencyKey: sub.idempotencyKey } : {}),
    ...(traceparent ? { traceparent } : {}),
    ...(admission ? { admission, pagesDone: 0 } : {}),
  };
  await ctx.blobs.upload(ctx.config.UPLOADS_BUCKET, job.sourceKey, createReadStream(sub.filePath), { contentType: 'application/pdf' });
  await ctx.files.putFile({
    tenantId: sub.tenantId,
    documentId: doc.documentId,
    filename: sub.filename,
    contentType: sub.contentType,
    sizeBytes: sub.sizeBytes,
    sha256: sub.sha256,
    bucket: ctx.config.UPLOADS_BUCKET,
    key: job.sourceKey,
    createdAt: now,
  });
  await ctx.status.createJob(job);
  ctx.metrics.documents.inc({ mode: doc.mode });
  return job;
}
