/**
 * `document.submitted` (DESIGN.md section 2, step 1): download, open the PDF, plan the chunks
 * from the selected pages and commit the job's chunksTotal with the first chunk rows, then extract
 * the page text once (the PDF worker processes stream pages back as they go); as soon as a chunk's
 * pages are in, write its input to S3, create its row if it was not in the commit, and publish its
 * `chunk.ready`, keyed so the chunks spread over every shard. The fleet starts on the first chunks
 * while later pages are still being read.
 *
 * Fair share (./fair-share.ts): only the first FAIR_SHARE_WINDOW chunks are published here; the
 * others get their row marked `inputReady` and are published by their finished predecessor (or
 * here, when the predecessor finished before the input was written).
 *
 * Invariant: a `chunk.ready` is published only after the chunk's row and its input object exist.
 * Safe to run again for the same document (redelivery, a crash half-way): each step is
 * deterministic or conditional, and a job already committed has its missing rows and the inputs of
 * its pending chunks written again, then those chunks re-published ({@link resumeSplit}).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pLimit from 'p-limit';
import type { PageText } from '../analysis/types.js';
import { chunkInputKey } from '../aws/object-keys.js';
import type { ChunkRow } from '../aws/status-table.js';
import { DocorchError, isDocorchError, toDocorchError } from '../errors.js';
import type { ChunkPlan, Job } from '../jobs/model.js';
import { chunkStarts, estimatePageTokens, planChunks, planFromStarts, TokenChunker, tokenPlanOptions, type TokenPlanOptions } from '../jobs/planner.js';
import { parsePageRange } from '../pdf/page-range.js';
import type { ExtractedPage, ExtractOptions, PdfInfo } from '../pdf/types.js';
import type { EventPayload } from '../stream/events.js';
import { toPageText } from './analyze-chunks.js';
import type { PipelineContext } from './context.js';
import { chunkRecordBase, documentWindow, inFirstWindow, publishChunks, publishIfPredecessorFinished, releasedPending, tenantWeight } from './fair-share.js';

export { chunkPartitionKey } from './fair-share.js';

/** Chunk rows committed in one transaction with the job row (DynamoDB's 100 items, less the job row). */
const FIRST_ROWS = 99;

/** A chunk's input object in the uploads bucket. */
export interface ChunkInputObject {
  pages: PageText[];
}

/** Handles `document.submitted`. */
export async function splitDocument(ctx: PipelineContext, event: EventPayload<'document.submitted'>): Promise<void> {
  const { tenantId, documentId } = event;
  const log = ctx.logger.child({ tenantId, documentId });
  let job = await ctx.status.getJob(tenantId, documentId);
  if (!job) {
    log.warn('document.submitted for an unknown document; ignored');
    return;
  }
  if (job.status === 'processing') {
    // Split before, possibly crashed before publishing: finish what is still pending.
    await resumeSplit(ctx, job, { recover: event.recover === true });
    return;
  }
  if (job.status !== 'queued' && job.status !== 'splitting') {
    log.info({ status: job.status }, 'document.submitted redelivered for a job past splitting; ignored');
    return;
  }
  if (job.status === 'queued') job = await ctx.status.transition(tenantId, documentId, 'splitting');
  // The window and weight are fixed at the commit and travel on every chunk record.
  const weight = await tenantWeight(ctx, tenantId);
  const splitting: Job = { ...job, window: documentWindow(ctx.config.FAIR_SHARE_WINDOW, weight), weight };

  const dir = await mkdtemp(path.join(os.tmpdir(), 'docorch-split-'));
  const t0 = performance.now();
  const ms: Record<string, number> = {};
  const lap = (name: string) => (ms[name] ??= Math.round(performance.now() - t0));
  // The commit: the job row with chunksTotal and the first chunk rows, in one transaction.
  // Every publish waits for it; the rows beyond the first transaction are created per chunk,
  // just before each is published.
  let committed: Promise<void> | undefined;
  let published = 0;
  // Stops the extraction when the job stops being ours (cancelled by DELETE, failed): a large
  // split must not go on writing inputs for a document nobody will analyse.
  const stop = new AbortController();
  try {
    const file = path.join(dir, 'source.pdf');
    await ctx.blobs.downloadToFile(ctx.config.UPLOADS_BUCKET, job.sourceKey, file);
    lap('downloaded');
    const writer = new ChunkInputWriter(
      ctx,
      splitting,
      () => committed ?? byTokens?.commitGate ?? Promise.reject(new DocorchError('INTERNAL', 'chunk pages delivered before the document was opened')),
      () => lap('firstPublished'),
      stop,
    );
    const commit = (plan: readonly ChunkPlan[], info: PdfInfo, selected: number, starts?: number[]) =>
      ctx.status
        .commitChunks(tenantId, documentId, plan.slice(0, FIRST_ROWS), {
          chunksTotal: plan.length,
          pageCount: info.pageCount,
          pagesSelected: selected,
          window: splitting.window as number,
          weight: splitting.weight as number,
          ...(starts ? { chunkStarts: starts } : {}),
        })
        .then(() => void lap('committed'));
    const tokenPlan = tokenPlanOptions(ctx.config, job.pagesPerChunk);
    // Token plan: chunks are closed page by page as the text comes in (their inputs written at
    // once), and the job is committed when the last page is in: only then is chunksTotal known.
    let byTokens: TokenSplit | undefined;
    let opened: { info: PdfInfo; selected: readonly number[] } | undefined;
    let extraction;
    try {
      extraction = await ctx.extractor.extract(file, {
        maxPages: ctx.config.MAX_PAGES,
        share: { flow: tenantId, weight: splitting.weight ?? 1 },
        signal: stop.signal,
        ...(job.pageSelection !== undefined ? { pages: job.pageSelection } : {}),
        onOpen: (info, selected) => {
          lap('opened');
          opened = { info, selected };
          if (tokenPlan) {
            byTokens = new TokenSplit(selected, tokenPlan, writer);
            return;
          }
          const plan = planChunks(selected, splitting.pagesPerChunk ?? ctx.config.PAGES_PER_CHUNK);
          writer.plan(plan);
          committed = commit(plan, info, selected.length);
          committed.catch(() => undefined); // awaited below; not an unhandled rejection meanwhile
        },
        onPages: (pages) => {
          lap('firstPages');
          writer.add(pages);
          byTokens?.add(pages);
        },
      });
      if (byTokens && opened) {
        const plan = byTokens.finish();
        committed = commit(plan, opened.info, opened.selected.length, chunkStarts(plan));
        committed.catch(() => undefined);
        byTokens.committed(committed);
      }
    } catch (err) {
      byTokens?.abandon(err);
      await committed?.catch(() => undefined);
      await writer.settled();
      if (stop.signal.aborted) {
        log.info({ reason: (stop.signal.reason as Error | undefined)?.message }, 'split stopped: the job is no longer processing');
        return;
      }
      if (isDocorchError(err) && err.retry === 'terminal') {
        log.warn({ code: err.code, err }, 'document cannot be split; failing the job');
        await ctx.status.transition(tenantId, documentId, 'failed', {
          error: { code: err.code, message: err.message },
          completedAt: new Date().toISOString(),
        });
        return;
      }
      throw err;
    }
    lap('extracted');
    published = await writer.finish();
    lap('published');
    log.info({ chunks: published, pages: extraction.pages.length, ms }, 'document split');
  } catch (err) {
    const e = toDocorchError(err);
    if (e.code === 'CONFLICT') {
      // Committed meanwhile, by a second splitter of a redelivered record, or by this very
      // commit when its transaction landed and a retry of it was refused: finish what is pending
      // (inputs are deterministic, duplicate records harmless).
      const current = await ctx.status.getJob(tenantId, documentId);
      if (current?.status === 'processing') {
        const resumed = await resumeSplit(ctx, current);
        log.info({ published: resumed }, 'chunks committed by another attempt; published the pending ones');
        return;
      }
      log.info({ err: e, status: current?.status }, 'job changed while splitting (cancelled?); stopping');
      return;
    }
    throw err;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Collects extracted pages; when every page of a chunk is in, writes the chunk's input and, once
 * the rows are committed, publishes its `chunk.ready` (batched per delivery of pages).
 */
class ChunkInputWriter {
  private readonly chunkOf = new Map<number, ChunkPlan>();
  private readonly missing = new Map<number, number>();
  private readonly pages = new Map<number, PageText>();
  private readonly writes = pLimit(16);
  private readonly work: Promise<void>[] = [];
  private chunks = 0;
  private written = 0;
  private checkedAt = 0;

  constructor(
    private readonly ctx: PipelineContext,
    private readonly job: Job,
    /** Resolves once the job is committed (rejects if the commit failed). */
    private readonly committed: () => Promise<void>,
    private readonly onPublished: () => void = () => undefined,
    /** Aborted here when the job is found no longer processing (the extraction stops). */
    private readonly stop: AbortController = new AbortController(),
  ) {}

  /** At most once a second: is the job still processing? If not, stops the split. */
  private async checkActive(): Promise<void> {
    if (Date.now() - this.checkedAt < 1_000) return;
    this.checkedAt = Date.now();
    const current = await this.ctx.status.getJob(this.job.tenantId, this.job.documentId);
    if (current?.status !== 'processing') {
      const reason = new DocorchError('CONFLICT', `Document ${this.job.documentId} is ${current?.status ?? 'gone'}; split stopped`);
      this.stop.abort(reason);
      throw reason;
    }
  }

  /** Adds chunks to the plan (all at the open on a page plan, one by one on a token plan). */
  plan(plan: readonly ChunkPlan[]): void {
    this.chunks += plan.length;
    const complete: ChunkPlan[] = [];
    for (const chunk of plan) {
      let missing = 0;
      for (const page of chunk.pages) {
        this.chunkOf.set(page, chunk);
        if (!this.pages.has(page)) missing += 1;
      }
      this.missing.set(chunk.index, missing);
      if (missing === 0) complete.push(chunk);
    }
    this.schedule(complete);
  }

  /** Takes extracted pages; a page of no planned chunk yet waits for its chunk. */
  add(pages: readonly ExtractedPage[]): void {
    const complete: ChunkPlan[] = [];
    for (const page of pages) {
      if (this.pages.has(page.page)) continue;
      this.pages.set(page.page, toPageText(page));
      const chunk = this.chunkOf.get(page.page);
      if (!chunk) continue;
      const left = (this.missing.get(chunk.index) ?? 0) - 1;
      this.missing.set(chunk.index, left);
      if (left === 0) complete.push(chunk);
    }
    this.schedule(complete);
  }

  private schedule(complete: readonly ChunkPlan[]): void {
    if (complete.length === 0) return;
    const work = this.flush(complete);
    work.catch(() => undefined); // awaited in finish()/settled()
    this.work.push(work);
  }

  private async flush(chunks: readonly ChunkPlan[]): Promise<void> {
    const { tenantId, documentId } = this.job;
    if (this.stop.signal.aborted) return;
    if (this.written > 0) await this.checkActive();
    await Promise.all(
      chunks.map((chunk) =>
        this.writes(async () => {
          await this.ctx.blobs.putJson(this.ctx.config.UPLOADS_BUCKET, chunkInputKey(tenantId, documentId, chunk.index), {
            pages: chunk.pages.map((page) => this.pages.get(page) as PageText),
          } satisfies ChunkInputObject);
          // The text lives in S3 now; keep memory flat on large documents.
          for (const page of chunk.pages) this.pages.delete(page);
        }),
      ),
    );
    await this.committed();
    // Rows beyond the commit's transaction are created here, each just before its chunk is
    // published (a chunk.ready never exists without its row), marked inputReady: the input is in.
    const later = chunks.filter((c) => c.index >= FIRST_ROWS);
    if (later.length > 0) await this.ctx.status.createChunkRows(tenantId, documentId, later, { inputReady: true });
    const window = this.job.window;
    const first = chunks.filter((c) => inFirstWindow(c.index, window));
    const beyond = chunks.filter((c) => !inFirstWindow(c.index, window));
    await publishChunks(this.ctx.queue, chunkRecordBase(this.job), first);
    if (beyond.length > 0) {
      // The splitter's half of the fair-share handshake: mark the input ready, then look at the
      // predecessor (it may have finished before this input was written).
      const committedRows = beyond.filter((c) => c.index < FIRST_ROWS).map((c) => c.index);
      await this.ctx.status.markInputsReady(tenantId, documentId, committedRows);
      await publishIfPredecessorFinished(this.ctx, this.job, beyond.map((c) => c.index));
    }
    if (first.length > 0) this.onPublished();
    this.written += chunks.length;
  }

  /** Waits for every write and publish; the first failure is thrown. Returns the chunks written. */
  async finish(): Promise<number> {
    await this.committed();
    await Promise.all(this.work);
    if (this.written !== this.chunks) {
      throw new DocorchError('INTERNAL', `split wrote ${this.written} of ${this.chunks} chunks: pages missing from the extraction`);
    }
    return this.written;
  }

  /** Waits for the writes in flight without throwing (before failing the job). */
  async settled(): Promise<void> {
    await Promise.allSettled(this.work);
  }
}

/**
 * The token plan of a split: pages come in batches, not always in page order (two PDF workers);
 * each selected page is fed to the {@link TokenChunker} in order, and every chunk it closes goes
 * to the writer, whose input is written at once. Publishing waits for the commit, which comes
 * after the last page ({@link TokenSplit.commitGate}).
 */
class TokenSplit {
  private readonly chunker: TokenChunker;
  private readonly tokens = new Map<number, number>();
  private next = 0;
  private settle: { resolve: (p: Promise<void>) => void; reject: (err: unknown) => void } | undefined;
  /** Resolves once the job is committed: what the writer's publishes wait for meanwhile. */
  readonly commitGate: Promise<void>;

  constructor(
    private readonly selected: readonly number[],
    options: TokenPlanOptions,
    private readonly writer: ChunkInputWriter,
  ) {
    this.chunker = new TokenChunker(selected.length, options);
    this.commitGate = new Promise<void>((resolve, reject) => (this.settle = { resolve, reject }));
    this.commitGate.catch(() => undefined); // an abandoned split: the error is handled by the caller
  }

  add(pages: readonly ExtractedPage[]): void {
    for (const page of pages) this.tokens.set(page.page, estimatePageTokens(page));
    for (let page = this.selected[this.next]; page !== undefined && this.tokens.has(page); page = this.selected[this.next]) {
      this.next += 1;
      const closed = this.chunker.add(page, this.tokens.get(page) as number);
      this.tokens.delete(page);
      if (closed) this.writer.plan([closed]);
    }
  }

  /** After the last page: closes the last chunk; returns the whole plan. */
  finish(): ChunkPlan[] {
    if (this.next !== this.selected.length) {
      throw new DocorchError('INTERNAL', `split planned ${this.next} of ${this.selected.length} pages: pages missing from the extraction`);
    }
    const last = this.chunker.finish();
    if (last) this.writer.plan([last]);
    return [...this.chunker.chunks()];
  }

  committed(commit: Promise<void>): void {
    this.settle?.resolve(commit);
  }

  abandon(err: unknown): void {
    this.settle?.reject(err);
  }
}

/**
 * Finishes an interrupted split of a job already committed (`processing`): creates the rows the
 * split had not written yet (planning again: it is deterministic), writes the input of every
 * pending chunk whose input object is missing (extracting just those pages again), then
 * re-publishes `chunk.ready` for every pending chunk (duplicates of records that already exist are
 * harmless: claims and the worker's in-progress check keep each analysis single). Returns how
 * many were published.
 */
export async function resumeSplit(ctx: PipelineContext, job: Job, options: { recover?: boolean } = {}): Promise<number> {
  const { tenantId, documentId } = job;
  let rows = await ctx.status.listChunks(tenantId, documentId);
  if (rows.length < job.chunksTotal) {
    // Interrupted between the commit and the last rows: plan again (deterministic) and create them.
    const selected = parsePageRange(job.pageSelection, job.pageCount ?? 0);
    const plan = job.chunkStarts ? planFromStarts(selected, job.chunkStarts) : planChunks(selected, job.pagesPerChunk ?? ctx.config.PAGES_PER_CHUNK);
    await ctx.status.createChunkRows(tenantId, documentId, plan);
    rows = await ctx.status.listChunks(tenantId, documentId);
  }
  // Held chunks (dead-lettered) wait for a replay or the reconciler, not for a re-publish.
  const pending = rows.filter((c) => c.status === 'pending' && c.heldBy === undefined);
  // The reconciler's recovery also re-publishes claimed chunks: a claim whose holder died after its
  // record was checkpointed (dead-lettered, or a lost hand-back) has no record left to take it over.
  const claimed = options.recover ? rows.filter((c) => c.status === 'processing') : [];
  if (claimed.length > 0) await publishChunks(ctx.queue, chunkRecordBase(job), claimed.map((c) => ({ index: c.index, attempt: Math.max(1, c.attempt) })));
  if (pending.length === 0) return claimed.length;
  const limit = pLimit(16);
  const present = await Promise.all(
    pending.map((c) => limit(() => ctx.blobs.exists(ctx.config.UPLOADS_BUCKET, chunkInputKey(tenantId, documentId, c.index)))),
  );
  const missing = pending.filter((_, i) => !present[i]);
  if (missing.length > 0) await rewriteInputs(ctx, job, missing);
  // Every pending input exists now: mark the rows beyond the first window ready, then publish
  // what is released (first window, or predecessor finished); the rest follow their predecessors.
  const unmarked = pending.filter((c) => !inFirstWindow(c.index, job.window) && c.inputReady !== true).map((c) => c.index);
  await ctx.status.markInputsReady(tenantId, documentId, unmarked);
  const released = releasedPending(await ctx.status.listChunks(tenantId, documentId), job.window);
  await publishChunks(ctx.queue, chunkRecordBase(job), released.map((c) => ({ index: c.index, attempt: Math.max(1, c.attempt) })));
  ctx.logger.info({ tenantId, documentId, published: released.length, claimed: claimed.length, pending: pending.length, rewritten: missing.length }, 'resumed an interrupted split');
  return released.length + claimed.length;
}

async function rewriteInputs(ctx: PipelineContext, job: Job, rows: readonly ChunkRow[]): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'docorch-split-'));
  try {
    const file = path.join(dir, 'source.pdf');
    await ctx.blobs.downloadToFile(ctx.config.UPLOADS_BUCKET, job.sourceKey, file);
    const selected = new Set(parsePageRange(job.pageSelection, job.pageCount ?? 0));
    const ranges = rows.map((r) => (r.firstPage === r.lastPage ? `${r.firstPage}` : `${r.firstPage}-${r.lastPage}`)).join(',');
    const options: ExtractOptions = { maxPages: ctx.config.MAX_PAGES, pages: ranges, share: { flow: job.tenantId, weight: job.weight ?? 1 } };
    const { pages } = await ctx.extractor.extract(file, options);
    const byPage = new Map(pages.map((p) => [p.page, toPageText(p)]));
    const limit = pLimit(16);
    await Promise.all(
      rows.map((row) =>
        limit(() => {
          const chunkPages: PageText[] = [];
          for (let p = row.firstPage; p <= row.lastPage; p++) {
            const page = byPage.get(p);
            if (page && selected.has(p)) chunkPages.push(page);
          }
          return ctx.blobs.putJson(ctx.config.UPLOADS_BUCKET, chunkInputKey(job.tenantId, job.documentId, row.index), {
            pages: chunkPages,
          } satisfies ChunkInputObject);
        }),
      ),
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
