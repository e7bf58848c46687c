/** A validated upload, as the API hands it to the pipeline, and the creation of its document. */
import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import type { AnalysisKind } from '../analysis/types.js';
import { sourceKey } from '../aws/object-keys.js';
import type { Job, JobMode, JobStatus } from '../jobs/model.js';
import { DocorchError } from '../errors.js';
import type { FileGap } from '../pdf/types.js';
import type { Admission, PendingAdmission, QuotaLimits } from '../store/usage-meter.js';
import { currentTraceparent } from '../telemetry/tracing.js';
import type { PipelineContext } from './context.js';

export interface Submission {
  tenantId: string;
  /** Path of the uploaded file on local disk (removed by the caller afterwards). */
  filePath: string;
  /**
   * Bytes of `filePath` not on disk: only the ends of a large upload are kept locally, its whole
   * copy being `staged` (./local-copy.ts). Only an inspection reads such a file; extraction fills
   * the gap first. @defaultValue none (the whole file)
   */
  gap?: FileGap;
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
  /**
   * The source, already streaming to the uploads bucket while the request was received
   * ({@link stageSource}). The document then takes its id, and creating it waits for the object
   * instead of uploading the file. @defaultValue uploaded from `filePath` when the document is created
   */
  staged?: StagedSource;
}

/**
 * A source streamed to the uploads bucket as it arrives, under the source key of the document id
 * it will have: the API tees the request body to disk (for the PDF workers) and to S3, so a large
 * upload costs one pass instead of a receive and then a copy.
 */
export interface StagedSource {
  documentId: string;
  /** Settles when the object is stored; rejects when the upload failed or its body was destroyed. */
  done: Promise<void>;
}

/**
 * Starts streaming `body` to the source key of a new document id. Until a document is created with
 * that id, the object belongs to nobody: {@link discardStaged} deletes it on every path that creates
 * none (and the uploads bucket's lifecycle expiry covers a process that died in between).
 */
export function stageSource(ctx: Pick<PipelineContext, 'blobs' | 'config'>, tenantId: string, body: Readable): StagedSource {
  const documentId = newDocumentId();
  // 8 MiB parts, 2 in flight: about 24 MiB held per upload while it streams. Measured with
  // bench:upload against 5 MiB x 4: as fast or faster (fewer requests), and no more memory.
  const done = ctx.blobs.upload(ctx.config.UPLOADS_BUCKET, sourceKey(tenantId, documentId), body, { contentType: 'application/pdf', partSize: 8 * 1024 * 1024, queueSize: 2 });
  // Awaited by whoever creates the document or discards it; never an unhandled rejection meanwhile.
  done.catch(() => undefined);
  return { documentId, done };
}

/** Deletes a staged source unless a document was created for it (a refused, failed or replayed request). */
export async function discardStaged(ctx: Pick<PipelineContext, 'blobs' | 'config' | 'status'>, tenantId: string, staged: StagedSource): Promise<void> {
  await staged.done.catch(() => undefined);
  if (await ctx.status.getJob(tenantId, staged.documentId)) return;
  await ctx.blobs.deleteObject(ctx.config.UPLOADS_BUCKET, sourceKey(tenantId, staged.documentId));
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
 * Creates a document: admission against the tenant's plan (its in-flight slot taken and its quotas
 * checked before anything is stored, but a staged source, deleted by the caller when refused),
 * the reservation of its pages (refused when they no longer fit), the source in the uploads bucket
 * (streamed from disk, or the staged upload awaited), then one transaction with its job row and
 * its metadata row. The source goes first, so a job row never points at a missing object. An
 * admission whose document could not be created is given back.
 */
export async function createDocument(ctx: PipelineContext, sub: Submission, doc: NewDocument): Promise<Job> {
  return (await admitDocument(ctx, sub, doc)).store();
}

/** A document admitted against its tenant's plan and not stored yet ({@link admitDocument}). */
export interface AdmittedDocument {
  /** Stores it as {@link createDocument} does; the slot is given back when that fails. */
  store(): Promise<Job>;
}

/**
 * The first half of {@link createDocument}: the admission (throws TOO_MANY_PAGES,
 * CONCURRENCY_LIMIT, QUOTA_*), with the document stored by the `store` it returns. The sync path
 * starts its analyses between the two, so storing overlaps the model calls.
 */
export async function admitDocument(ctx: PipelineContext, sub: Submission, doc: NewDocument): Promise<AdmittedDocument> {
  let pending: PendingAdmission | undefined;
  if (sub.limits) {
    if (doc.pageCount > sub.limits.maxPages) {
      throw new DocorchError('TOO_MANY_PAGES', `The PDF has ${doc.pageCount} pages; your plan allows ${sub.limits.maxPages}`, {
        details: { pageCount: doc.pageCount, maxPages: sub.limits.maxPages },
      });
    }
    pending = await ctx.usage.takeSlot(sub.tenantId, doc.pagesSelected, sub.limits);
  }
  return {
    store: async () => {
      // Refused (the slot given back) when another upload took the pages since the row was read.
      const admission = pending ? await ctx.usage.reservePages(pending) : undefined;
      try {
        return await storeDocument(ctx, sub, doc, admission);
      } catch (err) {
        if (admission) await ctx.usage.cancelAdmission(admission).catch(() => undefined);
        throw err;
      }
    },
  };
}

async function storeDocument(ctx: PipelineContext, sub: Submission, doc: NewDocument, admission: Admission | undefined): Promise<Job> {
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
    ...(admission ? { admission: { month: admission.month, pages: admission.pages }, pagesDone: 0 } : {}),
  };
  if (sub.staged) {
    if (sub.staged.documentId !== doc.documentId) throw new Error(`staged source of ${sub.staged.documentId} given to document ${doc.documentId}`);
    await sub.staged.done;
  } else {
    if (sub.gap) throw new DocorchError('INTERNAL', 'A local copy with a gap cannot be uploaded');
    await ctx.blobs.upload(ctx.config.UPLOADS_BUCKET, job.sourceKey, createReadStream(sub.filePath), { contentType: 'application/pdf' });
  }
  const file = ctx.files.putItem({
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
  await ctx.status.createJob(job, {
    file,
    ...(sub.idempotencyKey !== undefined ? { binding: ctx.files.bindingCheck(sub.tenantId, sub.idempotencyKey, doc.documentId) } : {}),
  });
  ctx.metrics.documents.inc({ mode: doc.mode });
  return job;
}
