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
 * The claim is a small lease (BullMQ's job lock, KCL's lease): the holder heartbeats by bumping
 * `claimCounter`; a redelivered record that finds a claim waits, and takes it over only after the
 * counter stood still for `claimTimeoutMs` on its own monotonic clock. A killed worker's chunks
 * are therefore picked up again, and a paused (zombie) worker can never count a chunk twice.
 */
import { randomUUID } from 'node:crypto';
import type { RecordedError } from '../jobs/model.js';
import { chunkInputKey, chunkResultKey } from '../aws/object-keys.js';
import type { ChunkRow } from '../aws/status-table.js';
import type { CircuitBreaker } from '../analysis/circuit-breaker.js';
import { addUsage, ZERO_USAGE, type Usage } from '../analysis/types.js';
import { DocorchError, toDocorchError } from '../errors.js';
import { chunkResultFrom, failedChunkResult, type ChunkResult } from '../jobs/result.js';
import { backoffPolicy, sleep, withRetry, type BackoffPolicy } from '../retry/backoff.js';
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
 * resumed split re-publishes what it cannot know was published) waits for that work and is then
 * skipped: the claim is re-entrant for its owner (so a retried handler can resume it), and two
 * deliveries in one worker would otherwise both analyse the chunk.
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
  const current = running.get(key);
  if (current) {
    ctx.logger.info({ tenantId: p.tenantId, documentId: p.documentId, chunkIndex: p.chunkIndex }, 'duplicate record of a chunk in progress here; skipped after it');
    await current.catch(() => undefined);
    return 'skipped';
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

  const acquired = await acquire(ctx, p, options.workerId, claimTimeoutMs, clock, options.signal);
  if (acquired?.done) {
    // Finished by an earlier delivery, which may have died before publishing the successor.
    await releaseSuccessor(ctx, p, acquired.done);
    return 'skipped';
  }
  const row = acquired?.claimed;
  if (!row) return 'skipped';

  // Heartbeat while we work; losing the claim aborts the analysis (someone else owns it now).
  const held = holdClaim(ctx, p, { owner: options.workerId, counter: row.claimCounter }, claimTimeoutMs, log);
  const lost = held.lost;
  const signal = options.signal ? AbortSignal.any([options.signal, lost]) : lost;

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
          signal.throwIfAborted();
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
        }, signal);
      let analysis;
      for (;;) {
        await waitForBreaker(options.breaker, signal);
        try {
          analysis = await withRetry(analyzeOnce, {
            policy: { maxAttempts: 3, baseMs: 500, capMs: 10_000, ...options.retry },
            shouldRetry: (err) => !signal.aborted && toDocorchError(err).retry === 'retry' && !breakerOpen(options.breaker),
            retryAfterMs: (err) => toDocorchError(err).retryAfterMs,
            onRetry: (err, attempt, delayMs) => log.warn({ err, attempt, delayMs }, 'chunk analysis failed; retrying'),
            signal,
          });
          break;
        } catch (err) {
          // The model is down for everyone: wait with the breaker instead of burning attempts.
          if (!signal.aborted && breakerOpen(options.breaker) && toDocorchError(err).retry === 'retry') continue;
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
      if (signal.aborted) {
        // Shutdown or a lost lease: hand the chunk back untouched. Re-publish it first (same
        // attempt): the shard's next owner may already have seen this record while the chunk was
        // claimed here, skipped it and checkpointed past it, and then nothing would deliver the
        // chunk again (a document stalled one chunk short). A duplicate record is harmless: the
        // claim admits one analysis.
        const claim = await held.settle();
        if (claim) {
          await publishChunks(ctx.queue, p, [{ index: p.chunkIndex, attempt: p.attempt }])
            .catch((publishErr: unknown) => log.warn({ err: publishErr }, 'could not re-publish a handed-back chunk'));
          await ctx.status.releaseChunk(p.tenantId, p.documentId, p.chunkIndex, claim, p.attempt).catch(() => false);
        }
        throw signal.reason ?? err;
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

/** A chunk claim kept alive by heartbeats. */
export interface HeldClaim {
  /** The claim as of the last heartbeat (owner and counter for conditional writes). */
  current(): { owner: string; counter: number };
  /** Aborted when a heartbeat finds the claim taken over. */
  lost: AbortSignal;
  /**
   * Stops heartbeating and resolves once no heartbeat is in flight, with the claim to condition
   * the final write (complete or release) on, or undefined when the claim was lost. A final
   * write must use this, never {@link HeldClaim.current} while heartbeats run: a heartbeat that
   * lands first moves the counter, the final write's condition fails, and the chunk is left
   * `processing` under a live-looking claim with no record left to finish it.
   */
  settle(): Promise<{ owner: string; counter: number } | undefined>;
  /** Stops heartbeating (a heartbeat in flight still completes). */
  stop(): void;
}

/**
 * Heartbeats a claim every `claimTimeoutMs / 3` until stopped or lost. Heartbeats never
 * overlap (the next is scheduled when the previous one has answered): two heartbeats sent with
 * the same counter would make the second fail its condition and report a live claim as lost.
 */
export function holdClaim(
  ctx: PipelineContext,
  key: { tenantId: string; documentId: string; chunkIndex: number },
  claim: { owner: string; counter: number },
  claimTimeoutMs: number,
  log: PipelineContext['logger'],
): HeldClaim {
  let current = claim;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let beating: Promise<void> = Promise.resolve();
  const lost = new AbortController();
  const everyMs = Math.max(50, Math.floor(claimTimeoutMs / 3));
  const beat = async (): Promise<void> => {
    try {
      const counter = await ctx.status.heartbeatChunk(key.tenantId, key.documentId, key.chunkIndex, current.owner, current.counter);
      if (counter !== undefined) {
        current = { ...current, counter };
        return;
      }
      log.warn('chunk claim lost; abandoning the analysis');
      lost.abort(new DocorchError('CONFLICT', 'chunk claim lost'));
    } catch (err) {
      // Transient (network, throttling): the next heartbeat retries with the same counter.
      log.warn({ err }, 'chunk heartbeat failed');
    }
  };
  const schedule = (): void => {
    if (stopped || lost.signal.aborted) return;
    timer = setTimeout(() => {
      timer = undefined;
      beating = beat().finally(schedule);
    }, everyMs);
    timer.unref();
  };
  const stop = (): void => {
    stopped = true;
    clearTimeout(timer);
  };
  schedule();
  return {
    current: () => current,
    lost: lost.signal,
    async settle() {
      stop();
      await beating;
      return lost.signal.aborted ? undefined : current;
    },
    stop,
  };
}

/** The chunk's page numbers from its row (used when the input itself is unreadable). */
async function chunkPages(ctx: PipelineContext, p: EventPayload<'chunk.ready'>): Promise<number[]> {
  const row = await ctx.status.getChunk(p.tenantId, p.documentId, p.chunkIndex);
  if (!row) return [];
  return Array.from({ length: row.lastPage - row.firstPage + 1 }, (_, i) => row.firstPage + i);
}

/**
 * Claims the chunk, waiting out another worker's live claim. Returns the claimed row, the row of
 * a chunk already finished, or undefined when there is nothing to do (job inactive, a later
 * delivery owns the chunk).
 */
async function acquire(
  ctx: PipelineContext,
  p: EventPayload<'chunk.ready'>,
  workerId: string,
  claimTimeoutMs: number,
  clock: Clock,
  signal: AbortSignal | undefined,
): Promise<{ claimed?: ChunkRow; done?: ChunkRow } | undefined> {
  let seen: { counter: number; since: number } | undefined;
  const poll = backoffPolicy({ baseMs: Math.max(20, Math.floor(claimTimeoutMs / 10)), capMs: Math.max(20, Math.floor(claimTimeoutMs / 3)) });
  for (;;) {
    const takeOver = seen && clock.nowMs() - seen.since >= claimTimeoutMs ? seen.counter : undefined;
    const outcome = await ctx.status.claimChunk(p.tenantId, p.documentId, p.chunkIndex, workerId, p.attempt, takeOver);
    switch (outcome.kind) {
      case 'claimed':
        return { claimed: outcome.row };
      case 'done':
        return { done: outcome.row };
      case 'job-inactive':
        return undefined;
      case 'busy': {
        if (outcome.row.attempt > p.attempt) return undefined; // a later delivery owns it
        if (outcome.row.status === 'pending') continue; // released meanwhile: claim it now
        if (!seen || seen.counter !== outcome.row.claimCounter) seen = { counter: outcome.row.claimCounter, since: clock.nowMs() };
        await sleep(poll.capMs, signal);
      }
    }
  }
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
