/**
 * `chunk.ready` (DESIGN.md section 2, step 2): claim the chunk, analyse it under the worker's
 * concurrency cap, write its result to S3, and mark it done while counting it on the job, in one
 * transaction. Failures are classified: retryable ones are retried with backoff here, then the
 * chunk is handed back and re-published with `attempt + 1`; after `maxAttempts`, or at once for
 * a terminal error, the chunk is marked failed with its error code and the record dead-lettered.
 * Only `retry`-class errors are retried here: a `bounded-retry` error (INVALID_MODEL_OUTPUT) has
 * had its bounded retries in the analyzer (GEMINI_MAX_INVALID_OUTPUT_RETRIES), so it fails the chunk.
 *
 * Usage: the chunk's `usage` is every billed model answer of this delivery, including those of
 * failed analyses (their usage rides on the error's `details.usage`), so that the result and the
 * tenant's monthly usage match what the model billed.
 *
 * The chunk claim (claims/chunk-claim.ts, docs/claims.md) makes one delivery at a time analyse a
 * chunk and exactly one count it: a killed worker's chunks are picked up again, and a paused
 * (zombie) worker can never count a chunk twice.
 */
import { chunkRowPages } from '../aws/status-table.js';
import { randomUUID } from 'node:crypto';
import type { RecordedError } from '../jobs/model.js';
import { chunkInputKey, chunkResultKey } from '../aws/object-keys.js';
import type { CircuitBreaker } from '../analysis/circuit-breaker.js';
import { addUsage, ZERO_USAGE, type Usage } from '../analysis/types.js';
import { DocorchError, toDocorchError } from '../errors.js';
import { chunkResultFrom, failedChunkResult, type ChunkResult } from '../jobs/result.js';
import { sleep, withRetry, type BackoffPolicy } from '../retry/backoff.js';
import { acquireChunkClaim, holdChunkClaim } from '../claims/chunk-claim.js';
import { systemClock, type Clock } from '../stream/leases/clock.js';
import type { EventPayload, StreamEvent } from '../stream/events.js';
import type { PipelineContext } from './context.js';
import type { FairLimit } from '../resilience/fair-queue.js';
import type { ChunkInputObject } from './split.js';
import { analysisCost, publishChunks, releaseSuccessor, releaseSuccessorEarly } from './fair-share.js';
import { deadLetterRecord } from './dead-letter.js';

/** Options of {@link processChunk}. */
export interface ChunkProcessorOptions {
  /** This worker's id (claim owner). */
  workerId: string;
  /**
   * The worker's analysis cap: every analysis runs inside it, served by tenant weight
   * (resilience/fair-queue.ts), each costing its share of the model quota.
   */
  limit: FairLimit;
  /** A claim whose counter stands still this long is taken over. @defaultValue 30000 */
  claimTimeoutMs?: number;
  /** Deliveries of a chunk before it is failed and dead-lettered. @defaultValue 3 */
  maxAttempts?: number;
  /** Retries of a retryable failure within one delivery. @defaultValue 3 attempts, 500 ms base, 10 s cap */
  retry?: Partial<BackoffPolicy>;
  /** Monotonic clock for claim expiry. @defaultValue systemClock */
  clock?: Clock;
  /** Shutdown: stops waiting and aborts the analysis (the chunk is handed back). */
  signal?: AbortSignal;
  /**
   * A graceful hand-off of the shard: while the analysis has not begun (waiting for the claim, a
   * slot of `limit`, the breaker or a retry's backoff) the chunk is handed back for the next
   * owner; an analysis under way runs on and is recorded. @defaultValue none
   */
  handBack?: AbortSignal;
  /**
   * The model's circuit breaker. While it refuses calls, analyses wait here (the record stays in
   * flight, unacknowledged, so the stream keeps the rest) and failures do not use up attempts;
   * the breaker's half-open probes decide when work resumes. @defaultValue none
   */
  breaker?: Pick<CircuitBreaker, 'canRequest' | 'retryAfterMs' | 'state'>;
  /** Observes each analysis (metrics, tests). */
  onAnalysis?: (event: { phase: 'start' | 'end'; documentId: string; chunkIndex: number; ok?: boolean }) => void;
}

/** What happened to the record. */
export type ChunkOutcome = 'succeeded' | 'failed' | 'requeued' | 'held' | 'skipped';

/** Chunks being processed in this process (per context, by claim owner and chunk). */
const active = new WeakMap<PipelineContext, Map<string, Promise<ChunkOutcome>>>();

/**
 * Handles one `chunk.ready` record. Resolves when the record may be checkpointed.
 *
 * A second record of a chunk this process is already working on (a duplicate in the stream: a
 * resumed split re-publishes what it cannot know was published; a hand-back re-publishes the
 * chunk it gives up) waits for that work, then goes through the claim like any delivery: the
 * claim is re-entrant for its owner (so a retried handler can resume it), and two deliveries in
 * one worker running at once would both analyse the chunk. It is not simply skipped: the work it
 * waited for may have been aborted (a lost lease, a shutdown) and handed the chunk back, and then
 * this record, whose handling would otherwise be checkpointed, is the only one left to deliver it.
 */
export async function processChunk(
  ctx: PipelineContext,
  event: StreamEvent<'chunk.ready'>,
  options: ChunkProcessorOptions,
): Promise<ChunkOutcome> {
  const p = event.payload;
  let running = active.get(ctx);
  if (!running) active.set(ctx, (running = new Map()));
  const key = `${options.workerId}\u0000${p.tenantId}\u0000${p.documentId}\u0000${p.chunkIndex}`;
  if (running.has(key)) {
    ctx.logger.info({ tenantId: p.tenantId, documentId: p.documentId, chunkIndex: p.chunkIndex }, 'duplicate record of a chunk in progress here; handled after it');
    // Several may wait: each takes its turn (the map is set synchronously after the loop).
    for (let current = running.get(key); current; current = running.get(key)) await current.catch(() => undefined);
  }
  const work = processOnce(ctx, event, options);
  running.set(key, work);
  try {
    return await work;
  } finally {
    running.delete(key);
  }
}

async function processOnce(ctx: PipelineContext, event: StreamEvent<'chunk.ready'>, options: ChunkProcessorOptions): Promise<ChunkOutcome> {
  const p = event.payload;
  const log = ctx.logger.child({ tenantId: p.tenantId, documentId: p.documentId, chunkIndex: p.chunkIndex, attempt: p.attempt });
  const claimTimeoutMs = options.claimTimeoutMs ?? 30_000;
  const clock = options.clock ?? systemClock;
  const maxAttempts = options.maxAttempts ?? 3;

  const arriving = options.signal && options.handBack ? AbortSignal.any([options.signal, options.handBack]) : (options.signal ?? options.handBack);
  const acquired = await acquireChunkClaim(ctx.status, p, {
    owner: options.workerId,
    attempt: p.attempt,
    timeoutMs: claimTimeoutMs,
    clock,
    ...(arriving ? { signal: arriving } : {}),
  });
  if (acquired?.done) {
    // Finished by an earlier delivery, which may have died before publishing the successor.
    await releaseSuccessor(ctx, p, acquired.done);
    return 'skipped';
  }
  const row = acquired?.claimed;
  if (!row) return 'skipped';

  // Heartbeat while we work; losing the claim aborts the analysis (someone else owns it now).
  const held = holdChunkClaim(ctx.status, p, { owner: options.workerId, counter: row.claimCounter }, { timeoutMs: claimTimeoutMs, log });
  const lost = held.lost;
  const signal = options.signal ? AbortSignal.any([options.signal, lost]) : lost;
  // Aborts waiting only: a model call, once made, is never cut off by a hand-off.
  const waiting = options.handBack ? AbortSignal.any([signal, options.handBack]) : signal;

  // Billed usage of failed analyses of this delivery (see the file comment).
  let spent: Usage = { ...ZERO_USAGE };
  /** Pages of the chunk, charged as analysed when it is counted (the page quota's `used`). */
  let pageCount = 0;
  try {
    let result: ChunkResult;
    try {
      const input = await ctx.blobs.getJson<ChunkInputObject>(ctx.config.UPLOADS_BUCKET, chunkInputKey(p.tenantId, p.documentId, p.chunkIndex));
      if (!input) throw new DocorchError('INTERNAL', 'chunk input missing from S3');
      const pages = input.pages.map((pg) => pg.page);
      pageCount = pages.length;
      const share = {
        flow: p.tenantId,
        weight: p.weight ?? 1,
        cost: analysisCost(ctx.config, input.pages.reduce((n, pg) => n + pg.text.length, 0)),
      };
      const analyzeOnce = () =>
        options.limit(share, async () => {
          waiting.throwIfAborted();
          options.onAnalysis?.({ phase: 'start', documentId: p.documentId, chunkIndex: p.chunkIndex });
          let ok = false;
          try {
            const out = await ctx.analyzer.analyzeChunk(
              { tenantId: p.tenantId, documentId: p.documentId, chunkIndex: p.chunkIndex, pages: input.pages, analyses: p.analyses },
              { signal },
            );
            ok = true;
            return out;
          } catch (err) {
            spent = addUsage(spent, usageOfError(err));
            throw err;
          } finally {
            options.onAnalysis?.({ phase: 'end', documentId: p.documentId, chunkIndex: p.chunkIndex, ok });
          }
        }, waiting);
      let analysis;
      for (;;) {
        await waitForBreaker(options.breaker, waiting);
        try {
          analysis = await withRetry(analyzeOnce, {
            policy: { maxAttempts: 3, baseMs: 500, capMs: 10_000, ...options.retry },
            shouldRetry: (err) => !waiting.aborted && toDocorchError(err).retry === 'retry' && !breakerOpen(options.breaker),
            retryAfterMs: (err) => toDocorchError(err).retryAfterMs,
            onRetry: (err, attempt, delayMs) => log.warn({ err, attempt, delayMs }, 'chunk analysis failed; retrying'),
            signal: waiting,
          });
          break;
        } catch (err) {
          // The model is down for everyone: wait with the breaker instead of burning attempts.
          if (!waiting.aborted && breakerOpen(options.breaker) && toDocorchError(err).retry === 'retry') continue;
          throw err;
        }
      }
      result = chunkResultFrom(p.chunkIndex, pages, { ...analysis, usage: addUsage(spent, analysis.usage) });
    } catch (err) {
      if (lost.aborted) {
        // Another delivery took the claim over (this one stood still too long): the chunk is
        // its now, and this record has nothing left to do.
        log.warn('chunk claim taken over; leaving the chunk to its new holder');
        return 'skipped';
      }
      if (waiting.aborted) {
        // Shutdown, a lost lease, or a hand-off before the analysis began: hand the chunk back
        // untouched. Re-publish it first (same attempt): the shard's next owner may already have
        // seen this record while the chunk was claimed here, skipped it and checkpointed past it,
        // and then nothing would deliver the chunk again (a document stalled one chunk short). A
        // duplicate record is harmless: the claim admits one analysis.
        // Only a chunk whose new record is out is handed back: if the publish fails, the claim
        // stays and stands still, and this record (not checkpointed) is delivered again to the
        // shard's next owner, which takes the claim over after CHUNK_CLAIM_TIMEOUT_MS. Handing it
        // back without a record would leave a pending chunk nothing delivers.
        const claim = await held.settle();
        if (claim) {
          const republished = await publishChunks(ctx.queue, p, [{ index: p.chunkIndex, attempt: p.attempt }]).then(
            () => true,
            (publishErr: unknown) => {
              log.warn({ err: publishErr }, 'could not re-publish a handed-back chunk; leaving its claim to expire');
              return false;
            },
          );
          if (republished) await ctx.status.releaseChunk(p.tenantId, p.documentId, p.chunkIndex, claim, p.attempt).catch(() => false);
          if (!signal.aborted) log.info('chunk handed back with its shard (its analysis had not begun)');
        }
        throw waiting.reason ?? err;
      }
      const e = toDocorchError(err);
      if (e.retry === 'retry' && p.attempt < maxAttempts) {
        // Re-publish, then hand back: another delivery (maybe another worker) tries again later.
        // In this order a crash or a failed publish in between leaves a claim that the next
        // delivery takes over, never a pending chunk whose only record is already done.
        const claim = await held.settle();
        if (!claim) return 'skipped';
        await publishChunks(ctx.queue, p, [{ index: p.chunkIndex, attempt: p.attempt + 1 }]);
        await ctx.status.releaseChunk(p.tenantId, p.documentId, p.chunkIndex, claim, p.attempt + 1);
        log.warn({ code: e.code, err: e }, 'chunk re-published for another attempt');
        return 'requeued';
      }
      if (e.retry === 'retry') {
        // Out of attempts on a failure that might pass (the model or a dependency down for
        // longer than the retries): hold the chunk for a replay instead of failing it for good.
        const claim = await held.settle();
        if (!claim) return 'skipped';
        log.error({ code: e.code, err: e }, 'chunk out of attempts; dead-lettered and held');
        await deadLetterRecord(ctx, { id: event.id, event, code: e.code, message: e.message }, claim.owner);
        return 'held';
      }
      log.error({ code: e.code, err: e }, 'chunk failed');
      const inputPages = await chunkPages(ctx, p);
      result = { ...failedChunkResult(p.chunkIndex, inputPages, { code: e.code, message: e.message }), usage: spent };
      await ctx.deadLetters.put({
        id: event.id,
        tenantId: p.tenantId,
        documentId: p.documentId,
        type: event.type,
        chunkIndex: p.chunkIndex,
        code: e.code,
        message: e.message,
        record: event,
        disposition: 'failed',
      });
    }
    // A claim already known lost must not overwrite its new holder's result.
    if (lost.aborted) {
      log.warn('chunk finished but its claim was taken over; not counted');
      return 'skipped';
    }
    // Deletion: no write for a document that stopped meanwhile (cancelled, failed, deleted). A
    // DELETE landing between this check and the count is caught by the count's condition (the
    // object is removed again below) or, failing that, by the reconciler's purge of the tombstone.
    const live = await ctx.status.getJob(p.tenantId, p.documentId);
    if (live?.status !== 'processing') {
      log.info({ status: live?.status ?? 'gone' }, 'document no longer processing; chunk result not written');
      return 'skipped';
    }
    const resultKey = chunkResultKey(p.tenantId, p.documentId, p.chunkIndex, randomUUID());
    await ctx.blobs.putJson(ctx.config.RESULTS_BUCKET, resultKey, result);
    // Fair share: the successor goes out before this chunk is counted when it is ready now, so
    // the completion records that in the same write; otherwise it is looked for after the count.
    const nextReleased = await releaseSuccessorEarly(ctx, p);
    const claim = await held.settle();
    if (!claim) {
      log.warn('chunk finished but its claim was taken over; not counted');
      return 'skipped';
    }
    const counted = await ctx.status.completeChunk(
      p.tenantId,
      p.documentId,
      p.chunkIndex,
      claim,
      { ...chunkOutcome(result), resultKey, nextReleased },
      result.usage,
      pageCount,
    );
    if (!counted) {
      await ctx.blobs.deleteObject(ctx.config.RESULTS_BUCKET, resultKey).catch(() => undefined);
      log.warn('chunk finished but its claim or job moved on; not counted');
      return 'skipped';
    }
    if (!nextReleased) await releaseSuccessor(ctx, p, { nextReleased });
    return result.status;
  } finally {
    held.stop();
  }
}

/** The chunk row's outcome for a chunk result. */
export function chunkOutcome(result: ChunkResult): { status: 'succeeded' } | { status: 'failed'; error: RecordedError } {
  return result.status === 'succeeded' ? { status: 'succeeded' } : { status: 'failed', error: result.error ?? { code: 'INTERNAL', message: '' } };
}

/** The chunk's page numbers from its row (used when the input itself is unreadable). */
async function chunkPages(ctx: PipelineContext, p: EventPayload<'chunk.ready'>): Promise<number[]> {
  const row = await ctx.status.getChunk(p.tenantId, p.documentId, p.chunkIndex);
  if (!row) return [];
  return chunkRowPages(row);
}

/** Billed usage an analyzer attached to its error (`details.usage`), zero when none. */
function usageOfError(err: unknown): Usage {
  const u = err instanceof DocorchError ? err.details?.usage : undefined;
  if (typeof u !== 'object' || u === null) return ZERO_USAGE;
  const { inputTokens, outputTokens, modelCalls } = u as Partial<Usage>;
  return { inputTokens: Number(inputTokens) || 0, outputTokens: Number(outputTokens) || 0, modelCalls: Number(modelCalls) || 0 };
}

function breakerOpen(breaker: ChunkProcessorOptions['breaker']): boolean {
  return breaker !== undefined && breaker.state !== 'closed';
}

/** Waits while the breaker refuses calls (checking at least every second). */
async function waitForBreaker(breaker: ChunkProcessorOptions['breaker'], signal: AbortSignal): Promise<void> {
  while (breaker && !breaker.canRequest()) {
    await sleep(Math.min(1_000, Math.max(50, breaker.retryAfterMs())), signal);
  }
}
