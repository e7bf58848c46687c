/**
 * The synchronous path (DESIGN.md section 2): extract in a worker thread, plan chunks, analyse
 * under the concurrency cap, reduce, persist (metadata row, job row, source and result in S3),
 * and return the result. A sync job is stored like any other, so GET works for it later.
 *
 * When the time budget runs out, the same job continues on the async path with nothing thrown
 * away or done twice: finished chunks are stored and counted, chunks being analysed stay claimed
 * by this process (heartbeated) and are completed when their analysis ends, the rest become
 * pending chunks published to the stream, and the caller answers 202 with the job.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import pLimit from 'p-limit';
import { chunkInputKey, chunkResultKey, resultKey } from '../aws/object-keys.js';
import { addUsage, type PageText } from '../analysis/types.js';
import { toDocorchError } from '../errors.js';
import { assembleOptionsFrom, assembleResult } from '../jobs/assemble.js';
import type { ChunkPlan, ChunkStatus, Job } from '../jobs/model.js';
import type { JobPatch } from '../aws/status-table.js';
import { planExtractedPages } from '../jobs/planner.js';
import type { ChunkResult, DocumentResult } from '../jobs/result.js';
import type { ExtractionResult } from '../pdf/types.js';
import { analyzeChunk, chunkPagesOf, toPageText } from './analyze-chunks.js';
import type { PipelineContext } from './context.js';
import { chunkOutcome } from './process-chunk.js';
import { holdChunkClaim } from '../claims/chunk-claim.js';
import type { ChunkInputObject } from './split.js';
import { chunkRecordBase, publishChunks } from './fair-share.js';
import { admitDocument, newDocumentId, type Submission } from './submission.js';

/** Options of {@link runSync}. */
export interface RunSyncOptions {
  /** Time budget in ms; past it the job continues asynchronously. @defaultValue no budget */
  budgetMs?: number;
  /** Document id to use (tests); a new one by default. */
  documentId?: string;
  /** Aborted when the process shuts down: the job hands off to the async path at once, as if its budget ran out. */
  handOff?: AbortSignal;
}

/** How a sync request ended. */
export type SyncOutcome =
  | { kind: 'completed'; documentId: string; result: DocumentResult }
  | { kind: 'continued'; documentId: string; job: Job };

/** Extracts the submission's pages (validates the PDF); throws BAD_PDF, ENCRYPTED_PDF, ... */
export async function extractSubmission(ctx: PipelineContext, sub: Submission): Promise<ExtractionResult> {
  return ctx.extractor.extract(sub.filePath, {
    maxPages: ctx.config.MAX_PAGES,
    share: { flow: sub.tenantId },
    ...(sub.pages !== undefined ? { pages: sub.pages } : {}),
  });
}

/**
 * Runs a document through the pipeline in-process. Validation errors (4xx) are thrown before
 * anything is stored.
 */
export async function runSync(ctx: PipelineContext, sub: Submission, options: RunSyncOptions = {}): Promise<SyncOutcome> {
  const deadline = options.budgetMs === undefined ? Number.POSITIVE_INFINITY : Date.now() + options.budgetMs;
  const extraction = await extractSubmission(ctx, sub);
  const documentId = options.documentId ?? newDocumentId();
  const log = ctx.logger.child({ tenantId: sub.tenantId, documentId });
  const { plan, chunkStarts } = planExtractedPages(ctx.config, extraction.pages, sub.pagesPerChunk);
  const admitted = await admitDocument(ctx, sub, {
    documentId,
    mode: 'sync',
    status: 'processing',
    pageCount: extraction.info.pageCount,
    pagesSelected: extraction.pages.length,
    chunksTotal: plan.length,
    ...(chunkStarts ? { chunkStarts } : {}),
  });
  // Admitted (slot held, quotas checked): the document is stored while its analyses start, since
  // the model calls need no row and only the end of the run (its terminal write, or a hand-off)
  // needs the job. If storing fails (a page reservation lost to a race with another upload), the
  // analyses stop and the request fails with nothing stored, as before.
  const stored = admitted.store();
  const storeFailed = new AbortController();

  // Scanned pages carry their image to the analyzer (and, on a hand-off, into the chunk inputs).
  const pages = new Map(extraction.pages.map((p) => [p.page, toPageText(p)]));
  const doc = { tenantId: sub.tenantId, documentId, pages, analyses: sub.analyses, signal: storeFailed.signal };
  const done = new Map<number, ChunkResult>();
  const running = new Map<number, Promise<ChunkResult>>();
  /** Set when the rest is left to the async path (or the run stopped): queued chunks do not start. */
  let handedOff = false;
  const limit = pLimit(ctx.config.ANALYSIS_CONCURRENCY);
  const all = Promise.all(
    plan.map((chunk) =>
      limit(async () => {
        if (handedOff) return; // left for the async path
        const analysis = analyzeChunk(ctx.analyzer, doc, chunk, log);
        running.set(chunk.index, analysis);
        const result = await analysis;
        running.delete(chunk.index);
        if (!handedOff) done.set(chunk.index, result);
      }),
    ),
  );

  let job: Job;
  try {
    job = await stored;
  } catch (err) {
    handedOff = true;
    limit.clearQueue();
    storeFailed.abort(err);
    all.catch(() => undefined);
    throw err;
  }
  log.info({ pages: extraction.pages.length, chunks: plan.length }, 'sync job started');

  try {
    const timedOut = await raceDeadline(all, deadline, options.handOff);
    if (timedOut) {
      handedOff = true;
      limit.clearQueue();
      return { kind: 'continued', documentId, job: await handOff(ctx, job, plan, pages, done, running) };
    }
    const chunks = plan.map((c) => done.get(c.index) as ChunkResult);
    const result = await assembleResult(
      {
        documentId,
        analyzer: ctx.analyzer,
        chunks,
        pageCount: extraction.info.pageCount,
        pagesSelected: extraction.pages.length,
        ...(sub.pages !== undefined ? { pageSelection: sub.pages } : {}),
      },
      assembleOptionsFrom(ctx.config),
    );
    const key = resultKey(sub.tenantId, documentId);
    await ctx.blobs.putJson(ctx.config.RESULTS_BUCKET, key, result);
    // The result is stored (at the document's result key) before the job leaves `processing`: a
    // process that dies in between leaves a job the reconciler finishes from the stored result
    // (the chunk results of a sync run live only in this process). Refused once the reconciler
    // took the job over (this process was presumed dead): see the catch. Metered in the same
    // write (exactly once), which starts from the job as created.
    await ctx.status.transition(
      sub.tenantId,
      documentId,
      result.status,
      syncTerminalPatch(result, key, extraction.pages.length),
      { unlessFenced: true, seen: job, meter: { usage: result.usage, chunks: chunks.length, pages: extraction.pages.length } },
    );
    log.info({ status: result.status }, 'sync job finished');
    return { kind: 'completed', documentId, result };
  } catch (err) {
    const e = toDocorchError(err);
    if (e.code === 'CONFLICT') {
      // The reconciler fenced this job and continues it on the async path: answer as a hand-off.
      const current = await ctx.status.getJob(sub.tenantId, documentId).catch(() => undefined);
      if (current?.syncFenced) {
        log.warn('sync job was taken over by the reconciler; continuing asynchronously');
        return { kind: 'continued', documentId, job: current };
      }
    }
    log.error({ err: e, code: e.code }, 'sync job failed');
    await ctx.status
      .transition(sub.tenantId, documentId, 'failed', { error: { code: e.code, message: e.message }, completedAt: new Date().toISOString() })
      .catch((markErr: unknown) => log.error({ err: markErr }, 'could not mark job failed'));
    throw e;
  }
}

/**
 * The fields a sync run's terminal transition writes from its result: chunk counts (from the
 * chunk results it was assembled from), result key, pages done and, when failed, the error.
 * Written by the run itself, or by the reconciler finishing a dead run from its stored result.
 */
export function syncTerminalPatch(result: DocumentResult, key: string, pagesDone: number): JobPatch {
  const succeeded = result.chunks.filter((c) => c.status === 'succeeded').length;
  return {
    chunksSucceeded: succeeded,
    chunksFailed: result.chunks.length - succeeded,
    resultKey: key,
    completedAt: new Date().toISOString(),
    pagesDone,
    ...(result.status === 'failed' ? { error: { code: 'ANALYSIS_FAILED', message: 'Too many chunks failed; see failedPages in the result' } } : {}),
  };
}

/** Resolves true when the deadline passes (or `handOff` aborts) first, false when `work` settles first. */
async function raceDeadline(work: Promise<unknown>, deadline: number, handOff?: AbortSignal): Promise<boolean> {
  if (handOff?.aborted) return true;
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const expired = new Promise<true>((resolve) => {
    if (Number.isFinite(deadline)) timer = setTimeout(() => resolve(true), Math.max(0, deadline - Date.now()));
    onAbort = () => resolve(true);
    handOff?.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([work.then(() => false as const), expired]);
  } finally {
    clearTimeout(timer);
    if (onAbort) handOff?.removeEventListener('abort', onAbort);
  }
}

/**
 * Moves a sync job onto the async path: inputs and finished results to S3, chunk rows committed
 * (finished ones counted, running ones claimed by this process, the rest pending), `chunk.ready`
 * published for every unfinished chunk, and running analyses completed in the background.
 */
async function handOff(
  ctx: PipelineContext,
  job: Job,
  plan: readonly ChunkPlan[],
  pages: ReadonlyMap<number, PageText>,
  done: ReadonlyMap<number, ChunkResult>,
  running: ReadonlyMap<number, Promise<ChunkResult>>,
): Promise<Job> {
  const { tenantId, documentId } = job;
  const log = ctx.logger.child({ tenantId, documentId });
  const owner = `sync-${process.pid}-${randomBytes(4).toString('hex')}`;
  const finished = new Map(done);
  const inFlight = new Map(running);
  const io = pLimit(16);
  await Promise.all(
    plan.map((chunk) =>
      io(async () => {
        const result = finished.get(chunk.index);
        if (result) await ctx.blobs.putJson(ctx.config.RESULTS_BUCKET, chunkResultKey(tenantId, documentId, chunk.index), result);
        else {
          await ctx.blobs.putJson(ctx.config.UPLOADS_BUCKET, chunkInputKey(tenantId, documentId, chunk.index), {
            pages: chunkPagesOf(chunk, pages),
          } satisfies ChunkInputObject);
        }
      }),
    ),
  );
  const statusOf = (index: number): { status: ChunkStatus; claimOwner?: string } => {
    const result = finished.get(index);
    if (result) return { status: result.status };
    if (inFlight.has(index)) return { status: 'processing', claimOwner: owner };
    return { status: 'pending' };
  };
  const succeeded = [...finished.values()].filter((r) => r.status === 'succeeded').length;
  const finishedPages = plan.filter((c) => finished.has(c.index)).reduce((n, c) => n + c.pages.length, 0);
  const committed = await ctx.status.commitChunks(
    tenantId,
    documentId,
    plan.map((c) => ({ ...c, ...statusOf(c.index) })),
    { chunksTotal: plan.length, chunksSucceeded: succeeded, chunksFailed: finished.size - succeeded, pagesDone: finishedPages },
    'processing',
  );
  const unfinished = plan.filter((c) => !finished.has(c.index));
  // Running chunks are published too: should this process die, a worker takes their claims over.
  await publishChunks(ctx.queue, chunkRecordBase(job), unfinished);
  await ctx.usage.addUsage(tenantId, addUsage(...[...finished.values()].map((r) => r.usage)), finished.size, finishedPages);
  log.info({ finished: finished.size, running: inFlight.size, pending: unfinished.length - inFlight.size }, 'sync budget spent; continuing asynchronously');
  for (const [index, analysis] of inFlight) {
    const held = holdChunkClaim(ctx.status, { tenantId, documentId, chunkIndex: index }, { owner, counter: 1 }, { timeoutMs: ctx.config.CHUNK_CLAIM_TIMEOUT_MS, log });
    void analysis
      .then(async (result) => {
        if (held.lost.aborted) return;
        const key = chunkResultKey(tenantId, documentId, index, randomUUID());
        await ctx.blobs.putJson(ctx.config.RESULTS_BUCKET, key, result);
        const claim = await held.settle();
        if (!claim) return;
        const chunkPages = plan.find((c) => c.index === index)?.pages.length ?? 0;
        await ctx.status.completeChunk(tenantId, documentId, index, claim, { ...chunkOutcome(result), resultKey: key }, result.usage, chunkPages);
      })
      .catch((err: unknown) => log.error({ err, chunkIndex: index }, 'could not complete a handed-off chunk; a worker will take it over'))
      .finally(() => held.stop());
  }
  return committed;
}
