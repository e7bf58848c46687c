/**
 * /v1/documents: upload (sync path), status, result, list. Thin: validation of the request
 * shape and presentation; the work is core's pipeline.
 */
import { Router, type Request, type Response } from 'express';
import { rm } from 'node:fs/promises';
import { z } from 'zod';
import {
  ANALYSIS_KINDS,
  DocorchError,
  TERMINAL_STATUSES,
  deleteDocument,
  discardStaged,
  idempotencyRequestHash,
  inspectSubmission,
  runIdempotent,
  TenantSlots,
  parsePageRange,
  progressOf,
  runSync,
  sleep,
  stageSource,
  submitAsync,
  wholeLocalCopy,
  type AnalysisKind,
  type Job,
  type PipelineContext,
  type Submission,
} from '@docorch/core';
import { principalOf, tenantIdOf } from '../auth.js';
import { problem } from '../problem.js';
import { pdfUpload, storedUpload, type SourceStaging } from '../upload.js';
import { eventsHandler } from './events.js';
import { addDeliveryRoutes } from './deliveries.js';
import { uploadFields, type AcceptedView, type DocumentView } from '../contract/schemas.js';

const DOCUMENT_ID = /^[A-Za-z0-9_-]{8,64}$/;

/** The 202 body. */
function accepted(job: Job): AcceptedView {
  return { id: job.documentId, status: job.status, links: linksOf(job.documentId) };
}
/** Longest `?wait=` accepted, in seconds (below common proxy idle timeouts). */
const MAX_WAIT_SECONDS = 30;
const LONG_POLL_INTERVAL_MS = 500;

/** The public view of a job (the spec's `Document`). */
export function jobView(job: Job): DocumentView {
  return {
    id: job.documentId,
    status: job.status,
    mode: job.mode,
    filename: job.filename,
    sizeBytes: job.sizeBytes,
    pages: { total: job.pageCount ?? null, selected: job.pagesSelected ?? null, selection: job.pageSelection ?? 'all' },
    analyses: job.analyses,
    progress: progressOf(job),
    analyzer: job.analyzer ?? null,
    error: job.error ?? null,
    createdAt: job.createdAt,
    updatedAt: job.updatedAt,
    completedAt: job.completedAt ?? null,
    links: linksOf(job.documentId),
  };
}

/** A document's links. */
export function linksOf(documentId: string): DocumentView['links'] {
  const base = `/v1/documents/${documentId}`;
  return { self: base, result: `${base}/result`, events: `${base}/events` };
}

/** Loads the request's document (`:id`) of the request's tenant, or 404. */
export async function loadJob(ctx: PipelineContext, req: Request): Promise<Job> {
  const id = String(req.params.id ?? '');
  // A malformed id and a foreign tenant's id both answer 404: never reveal another tenant's data.
  const job = DOCUMENT_ID.test(id) ? await ctx.status.getJob(tenantIdOf(req), id) : undefined;
  if (!job) throw problem('NOT_FOUND', `Document ${id} not found`);
  return job;
}

/** The documents router. */
/**
 * @param options.handOff - aborted at shutdown: running sync requests hand off to the async path (202).
 * @param options.drain - aborted when draining starts: event streams end.
 */
export function documentsRouter(ctx: PipelineContext, options: { handOff?: AbortSignal; drain?: AbortSignal } = {}): Router {
  const router = Router();
  const schema = uploadFields();
  const pdfSlots = new TenantSlots(ctx.config.TENANT_PDF_TASKS, ctx.config.TENANT_PDF_QUEUE);

  /** Admits and runs one upload: 202 on the async path, 200 with the result when answered in the request. */
  async function submit(sub: Submission, mode: 'auto' | 'sync' | 'async', res: Response, documentId?: string): Promise<void> {
    await pdfSlots.run(sub.tenantId, () => submitInSlot(sub, mode, res, documentId));
  }

  async function submitInSlot(sub: Submission, mode: 'auto' | 'sync' | 'async', res: Response, documentId?: string): Promise<void> {
    if (mode !== 'sync') {
      // Validate before choosing a path, so a bad file is a 4xx now rather than a failed job later.
      const inspected = await inspectSubmission(ctx, sub, { share: { flow: sub.tenantId } });
      const info = inspected.info;
      sub = inspected.sub;
      const maxPages = sub.limits?.maxPages ?? ctx.config.MAX_PAGES;
      if (info.pageCount > maxPages) {
        throw new DocorchError('TOO_MANY_PAGES', `The PDF has ${info.pageCount} pages; the limit is ${maxPages}`, {
          details: { pageCount: info.pageCount, maxPages },
        });
      }
      const pagesSelected = parsePageRange(sub.pages, info.pageCount).length;
      const small = sub.sizeBytes <= ctx.config.SYNC_MAX_BYTES && pagesSelected <= ctx.config.SYNC_MAX_PAGES;
      if (mode === 'async' || !small) {
        const job = await submitAsync(ctx, sub, { ...info, pagesSelected }, documentId ? { documentId } : {});
        res.setHeader('Location', `/v1/documents/${job.documentId}`);
        res.status(202).json(accepted(job));
        return;
      }
    }
    // The sync path extracts every page: the whole file on disk.
    const outcome = await runSync(ctx, await wholeLocalCopy(ctx, sub), {
      budgetMs: ctx.config.SYNC_TIMEOUT_MS,
      ...(options.handOff ? { handOff: options.handOff } : {}),
      ...(documentId ? { documentId } : {}),
    });
    res.setHeader('Location', `/v1/documents/${outcome.documentId}`);
    if (outcome.kind === 'completed') {
      res.status(200).json(outcome.result);
    } else {
      // The time budget ran out: the same job continues on the async path.
      res.status(202).json(accepted(outcome.job));
    }
  }

  /** The answer of a request replayed by its Idempotency-Key: the original document, no new work. */
  async function replay(job: Job, res: Response): Promise<void> {
    res.setHeader('Location', `/v1/documents/${job.documentId}`);
    res.setHeader('Idempotent-Replayed', 'true');
    if (job.mode === 'sync' && job.resultKey && TERMINAL_STATUSES.has(job.status)) {
      res.status(200).json(await ctx.blobs.getJson(ctx.config.RESULTS_BUCKET, job.resultKey));
      return;
    }
    res.status(202).json(accepted(job));
  }

  // The file goes to the uploads bucket as it arrives, not copied there after it is inspected.
  const staging: SourceStaging = {
    start: (req, body) => stageSource(ctx, tenantIdOf(req), body),
    discard: (req, staged) => discardStaged(ctx, tenantIdOf(req), staged),
  };

  router.post(
    '/',
    // A file answered in the request (up to SYNC_MAX_BYTES) is kept whole on disk; a larger one, only its ends.
    pdfUpload({ maxBytes: ctx.config.MAX_UPLOAD_BYTES, dir: ctx.config.UPLOAD_TMP_DIR, staging, wholeBytes: Math.max(ctx.config.SYNC_MAX_BYTES, 1 << 20) }),
    async (req: Request, res: Response) => {
      const upload = storedUpload(req);
      let keepStaged = false;
      try {
        if (!upload) throw problem('INVALID_REQUEST', 'No file: send the PDF in a multipart part named "file"');
        const parsed = schema.safeParse(req.body ?? {});
        if (!parsed.success) {
          const issue = parsed.error.issues[0];
          throw problem('INVALID_REQUEST', `Invalid field ${String(issue?.path[0] ?? '')}: ${issue?.message ?? ''}`, {
            field: String(issue?.path[0] ?? ''),
          });
        }
        const opts = parsed.data;
        // Server-side request forgery: the target must resolve to public addresses (checked again
        // at each delivery, after resolution).
        if (opts.webhookUrl !== undefined) await ctx.webhookGuard.vet(opts.webhookUrl);
        const { limits } = principalOf(req);
        // The plan's size limit (multer enforces MAX_UPLOAD_BYTES, the ceiling, while streaming).
        if (upload.size > limits.maxFileBytes) {
          throw new DocorchError('TOO_LARGE', `The file is ${upload.size} bytes; your plan allows ${limits.maxFileBytes}`, {
            details: { sizeBytes: upload.size, maxBytes: limits.maxFileBytes },
          });
        }
        const sub: Submission = {
          tenantId: tenantIdOf(req),
          filePath: upload.path,
          filename: upload.originalname.slice(0, 255),
          contentType: 'application/pdf',
          sizeBytes: upload.size,
          sha256: upload.sha256,
          ...(opts.pagesPerChunk !== undefined ? { pagesPerChunk: opts.pagesPerChunk } : {}),
          analyses: (opts.analyses ?? [...ANALYSIS_KINDS]) as AnalysisKind[],
          limits,
          ...(opts.pages !== undefined ? { pages: opts.pages } : {}),
          ...(opts.webhookUrl !== undefined ? { webhookUrl: opts.webhookUrl } : {}),
          ...(upload.staged ? { staged: upload.staged } : {}),
          ...(upload.gap ? { gap: upload.gap } : {}),
        };
        const documentId = upload.staged?.documentId;
        const idempotencyKey = req.get('Idempotency-Key');
        if (idempotencyKey === undefined) {
          await submit(sub, opts.mode, res, documentId);
          keepStaged = true;
          return;
        }
        const hash = idempotencyRequestHash(upload.sha256, { ...opts, analyses: sub.analyses });
        const outcome = await runIdempotent(ctx, sub.tenantId, idempotencyKey, hash, (id) => submit({ ...sub, idempotencyKey }, opts.mode, res, id), documentId ? { documentId } : {});
        if (outcome.kind === 'replay') await replay(outcome.job, res);
        else keepStaged = true;
      } finally {
        if (upload) await rm(upload.path, { force: true });
        // Refused, failed before its document was created, or a replay: the staged copy is nobody's.
        if (upload?.staged && !keepStaged) await staging.discard(req, upload.staged).catch((err: unknown) => ctx.logger.warn({ err, tenantId: tenantIdOf(req), documentId: upload.staged?.documentId }, 'could not delete a staged upload'));
      }
    },
  );

  router.get('/', async (req: Request, res: Response) => {
    const limit = z.coerce.number().int().min(1).max(100).default(20).safeParse(req.query.limit);
    if (!limit.success) throw problem('INVALID_REQUEST', 'limit must be an integer from 1 to 100');
    const cursor = typeof req.query.cursor === 'string' ? req.query.cursor : undefined;
    const page = await ctx.status.listJobs(tenantIdOf(req), { limit: limit.data, ...(cursor ? { cursor } : {}) });
    res.json({
      documents: page.jobs.map(jobView),
      ...(page.nextCursor ? { next: `/v1/documents?limit=${limit.data}&cursor=${page.nextCursor}` } : {}),
    });
  });

  router.get('/:id', async (req: Request, res: Response) => {
    const wait = z.coerce.number().min(0).max(MAX_WAIT_SECONDS).default(0).safeParse(req.query.wait);
    if (!wait.success) throw problem('INVALID_REQUEST', `wait must be a number of seconds from 0 to ${MAX_WAIT_SECONDS}`);
    let job = await loadJob(ctx, req);
    // Long-poll: answer when the job is finished or the wait is over (or the client left).
    const deadline = Date.now() + wait.data * 1000;
    while (!TERMINAL_STATUSES.has(job.status) && Date.now() < deadline && !req.socket.destroyed) {
      await sleep(Math.min(LONG_POLL_INTERVAL_MS, Math.max(0, deadline - Date.now())));
      job = (await ctx.status.getJob(job.tenantId, job.documentId)) ?? job;
    }
    res.json(jobView(job));
  });

  router.delete('/:id', async (req: Request, res: Response) => {
    const job = await loadJob(ctx, req);
    const outcome = await deleteDocument(ctx, job.tenantId, job.documentId);
    if (outcome.kind === 'cancelled') res.status(200).json(jobView(outcome.job));
    else res.status(204).end();
  });

  router.get('/:id/events', eventsHandler(ctx, options.drain));
  addDeliveryRoutes(router, ctx);

  router.get('/:id/result', async (req: Request, res: Response) => {
    const job = await loadJob(ctx, req);
    if (!job.resultKey) {
      throw new DocorchError('RESULT_NOT_READY', `The result of document ${job.documentId} is not ready (status ${job.status})`, {
        details: { documentStatus: job.status, progress: progressOf(job) },
      });
    }
    const result = await ctx.blobs.getJson(ctx.config.RESULTS_BUCKET, job.resultKey);
    if (!result) throw new DocorchError('INTERNAL', `Result object missing for ${job.documentId}`);
    res.json(result);
  });

  return router;
}
