/**
 * Dead letters of the document pipeline: what happens to a record that could not be processed,
 * and how an operator brings it back (`docorch dead-letters ...`).
 *
 * A dead-lettered record's work is never left running and never silently dropped:
 * - `chunk.ready` out of attempts (a retryable failure every time, or a handler that threw three
 *   times): the chunk is *held* (`heldBy` on its row, back to `pending`, nothing re-publishes it),
 *   its document stays `processing`, and the letter is `held`;
 * - `document.submitted` that threw three times: the job is held (`heldBy` on its row) where it is;
 * - a record naming no document (undecodable): the letter is informational (`replayed`: nothing waits).
 *
 * A held item waits RECONCILE_STALE_MS for a replay; then the reconciler finishes it with the
 * letter's error (the chunk counted failed, the split's job failed), so the document reaches a
 * terminal state. A replay re-publishes the original record with its attempt reset.
 */
import { chunkRowPages } from '../aws/status-table.js';
import { deadLetterKey, type DeadLetter } from '../store/dead-letters.js';
import { DocorchError } from '../errors.js';
import { TERMINAL_STATUSES } from '../jobs/model.js';
import { failedChunkResult } from '../jobs/result.js';
import { chunkResultKey } from '../aws/object-keys.js';
import { decodeEvent, type StreamEvent } from '../stream/events.js';
import type { PipelineContext } from './context.js';
import { chunkRecordBase, publishChunks, releaseSuccessor } from './fair-share.js';
import { randomUUID } from 'node:crypto';

/** A record the stream worker gave up on. */
export interface DeadRecordInput {
  /** Record id (event id, or the sequence number of an undecodable record). */
  id: string;
  event?: StreamEvent;
  /** The raw data, base64, when the record did not decode. */
  rawBase64?: string;
  code: string;
  message: string;
  shardId?: string;
  sequenceNumber?: string;
}

/**
 * Stores a dead letter for a record the stream worker gave up on and holds its work item.
 * @param owner - the worker that held the chunk's claim (released into the hold).
 */
export async function deadLetterRecord(ctx: PipelineContext, dead: DeadRecordInput, owner?: string): Promise<DeadLetter> {
  const payload = dead.event?.payload as { tenantId?: string; documentId?: string; chunkIndex?: number } | undefined;
  const ids = payload?.tenantId && payload.documentId ? { tenantId: payload.tenantId, documentId: payload.documentId } : undefined;
  const type = dead.event?.type;
  const holdable = ids !== undefined && (type === 'chunk.ready' || type === 'document.submitted');
  const letter = await ctx.deadLetters.put({
    id: dead.id,
    ...(ids ?? {}),
    ...(type ? { type } : {}),
    ...(type === 'chunk.ready' && typeof payload?.chunkIndex === 'number' ? { chunkIndex: payload.chunkIndex } : {}),
    code: dead.code,
    message: dead.message,
    record: dead.event ?? { data: dead.rawBase64 ?? '' },
    ...(dead.shardId ? { shardId: dead.shardId } : {}),
    ...(dead.sequenceNumber ? { sequenceNumber: dead.sequenceNumber } : {}),
    disposition: holdable ? 'held' : 'replayed',
  });
  if (!holdable || !ids) return letter;
  let held = false;
  if (type === 'chunk.ready') {
    held = await ctx.status.holdChunk(ids.tenantId, ids.documentId, payload?.chunkIndex ?? -1, letter.sk, owner);
  } else {
    const job = await ctx.status.getJob(ids.tenantId, ids.documentId);
    held = job !== undefined && !TERMINAL_STATUSES.has(job.status) && (await ctx.status.setJobHold(ids.tenantId, ids.documentId, letter.sk));
  }
  if (!held) {
    // Finished or taken by someone else meanwhile: nothing waits on this letter.
    await ctx.deadLetters.setDisposition(letter, 'held', 'unheld');
    return { ...letter, disposition: 'unheld' };
  }
  ctx.logger.warn({ ...ids, chunkIndex: payload?.chunkIndex, code: dead.code, type }, 'record dead-lettered; its work is held for a replay');
  ctx.metrics.deadLetters.inc({ source: 'held', code: dead.code });
  return letter;
}

/** What a replay did. */
export interface ReplayOutcome {
  letter: DeadLetter;
  /** The event re-published (attempt reset). */
  event: { type: string; documentId?: string; chunkIndex?: number };
}

/**
 * Replays a held dead letter: releases the hold (resetting the chunk's attempt), re-publishes the
 * original record with attempt 1, and marks the letter `replayed`. CONFLICT when the letter is not
 * held (already replayed, or its work was finished by the reconciler) or its document is finished.
 */
export async function replayDeadLetter(ctx: PipelineContext, id: string): Promise<ReplayOutcome> {
  const key = deadLetterKey(id);
  const letter = await ctx.deadLetters.get(key);
  if (!letter) throw new DocorchError('NOT_FOUND', `Dead letter ${id} not found`);
  if (letter.disposition !== 'held') {
    throw new DocorchError('CONFLICT', `Dead letter ${id} is ${letter.disposition}; only held letters can be replayed`, { details: { disposition: letter.disposition } });
  }
  const event = decodeEvent(Buffer.from(JSON.stringify(letter.record)));
  const { tenantId, documentId } = event.payload as { tenantId: string; documentId: string };
  const job = await ctx.status.getJob(tenantId, documentId);
  if (!job || TERMINAL_STATUSES.has(job.status)) {
    throw new DocorchError('CONFLICT', `Document ${documentId} is ${job?.status ?? 'gone'}; nothing to replay`, { details: { documentStatus: job?.status } });
  }
  if (event.type === 'chunk.ready') {
    const p = event.payload as StreamEvent<'chunk.ready'>['payload'];
    if (!(await ctx.status.unholdChunk(tenantId, documentId, p.chunkIndex, letter.sk))) {
      throw new DocorchError('CONFLICT', `Chunk ${p.chunkIndex} of ${documentId} is no longer held by this letter`);
    }
    await publishChunks(ctx.queue, { ...chunkRecordBase(job) }, [{ index: p.chunkIndex, attempt: 1 }]);
  } else {
    if (!(await ctx.status.setJobHold(tenantId, documentId, undefined, letter.sk))) {
      throw new DocorchError('CONFLICT', `Document ${documentId} is no longer held by this letter`);
    }
    await ctx.queue.add('document.submitted', { tenantId, documentId }, { partitionKey: documentId });
  }
  await ctx.deadLetters.setDisposition(key, 'held', 'replayed');
  ctx.logger.info({ tenantId, documentId, type: event.type }, 'dead letter replayed');
  return {
    letter: { ...letter, disposition: 'replayed' },
    event: { type: event.type, documentId, ...(event.type === 'chunk.ready' ? { chunkIndex: (event.payload as { chunkIndex: number }).chunkIndex } : {}) },
  };
}

/** Deletes a dead letter that nothing waits on. CONFLICT for a held one (replay it, or let the reconciler finish it). */
export async function purgeDeadLetter(ctx: PipelineContext, id: string): Promise<void> {
  const key = deadLetterKey(id);
  const letter = await ctx.deadLetters.get(key);
  if (!letter) throw new DocorchError('NOT_FOUND', `Dead letter ${id} not found`);
  if (letter.disposition === 'held') {
    throw new DocorchError('CONFLICT', `Dead letter ${id} holds its document's work; replay it, or let the reconciler fail it after RECONCILE_STALE_MS`);
  }
  await ctx.deadLetters.delete(key);
}

/**
 * The reconciler's end of a hold: finishes the held work with the letter's error, once the letter
 * is `minAgeMs` old (the operator's time to replay). A held chunk is
 * claimed, given a failed result and counted failed (its fair-share successor released); a held
 * split fails its job. Returns whether anything was finished.
 */
export async function finishHeld(
  ctx: PipelineContext,
  tenantId: string,
  documentId: string,
  heldBy: string,
  chunkIndex: number | undefined,
  owner: string,
  /** A letter younger than this still waits for its replay. @defaultValue 0 */
  minAgeMs = 0,
): Promise<boolean> {
  const letter = await ctx.deadLetters.get({ pk: `${tenantId}#${documentId}`, sk: heldBy });
  if (letter?.disposition === 'held' && Date.now() - Date.parse(letter.deadAt) < minAgeMs) return false;
  const error = { code: letter?.code ?? 'DEAD_LETTERED', message: `Dead-lettered and not replayed within RECONCILE_STALE_MS: ${letter?.message ?? 'letter missing'}` };
  // The letter first: of a replay and this, whichever moves the letter out of `held` goes on.
  // (A crash after this leaves the letter `failed` and the work held: the next sweep finishes it.)
  if (letter?.disposition === 'replayed' || letter?.disposition === 'unheld') return false;
  if (letter?.disposition === 'held' && !(await ctx.deadLetters.setDisposition(letter, 'held', 'failed'))) return false;
  if (chunkIndex === undefined) {
    try {
      await ctx.status.transition(tenantId, documentId, 'failed', { error, completedAt: new Date().toISOString() });
    } catch (err) {
      if (err instanceof DocorchError && (err.code === 'CONFLICT' || err.code === 'NOT_FOUND')) return false;
      throw err;
    }
  } else {
    const row = await ctx.status.claimHeldChunk(tenantId, documentId, chunkIndex, heldBy, owner);
    if (!row) return false;
    const pages = chunkRowPages(row);
    const resultKey = chunkResultKey(tenantId, documentId, chunkIndex, randomUUID());
    await ctx.blobs.putJson(ctx.config.RESULTS_BUCKET, resultKey, failedChunkResult(chunkIndex, pages, error));
    const counted = await ctx.status.completeChunk(tenantId, documentId, chunkIndex, { owner, counter: row.claimCounter }, { status: 'failed', error, resultKey }, undefined, pages.length);
    if (!counted) return false;
    const job = await ctx.status.getJob(tenantId, documentId);
    if (job) await releaseSuccessor(ctx, { ...chunkRecordBase(job), chunkIndex, attempt: Math.max(1, row.attempt) }, { nextReleased: false });
  }
  return true;
}
