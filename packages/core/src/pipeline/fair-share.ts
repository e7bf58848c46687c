/**
 * Fair share of the worker fleet: credit-based flow control over the stream.
 *
 * Kinesis hands records out in order per shard, so a document whose 2,000 chunk records were all
 * published at once sits in front of every chunk published after it. Instead, a document has at
 * most `window` (FAIR_SHARE_WINDOW) chunk records on the stream ahead of their completions:
 *
 * - the splitter publishes chunks `0 .. window-1` itself, as their inputs are written;
 * - chunk `i + window` is published when chunk `i` is finished (succeeded or failed): its
 *   successor in a fixed lane, so which record releases which never depends on timing;
 * - the window is fixed on the job row at the split's commit and travels on every chunk record;
 *   it is FAIR_SHARE_WINDOW times the tenant's weight (see {@link documentWindow}).
 *
 * A tenant therefore has at most `window x concurrent documents` (its plan) chunk records on the
 * stream, and each worker reads far enough ahead (STREAM_RECORDS_IN_FLIGHT) to hold several
 * tenants' records, which its fair queue (resilience/fair-queue.ts) serves by plan weight.
 * Each lane stays on one shard (lane `i mod window`, offset by the document, dealt over the open
 * shards in the same order by every process), so a document's lanes are spread evenly over the
 * shards and, with balanced leases, over the workers: every worker sees every busy tenant's work,
 * and the local weighted shares add up to the fleet's.
 *
 * Why nothing stalls: a successor is published by whoever sees both of its preconditions, the
 * predecessor finished and the successor's input written (`inputReady` on its row). The finisher
 * writes "finished" and then reads the successor's row; the splitter writes `inputReady` and then
 * reads the predecessor's row (both strongly consistent, one item each), so at least one of them
 * sees the other's write and publishes (Dekker's argument; both may: a duplicate record is
 * harmless, the claim admits one analysis). A finisher that crashes before publishing has not
 * had its record checkpointed: the redelivery finds the chunk done without `nextReleased` and
 * publishes the successor then. A chunk handed back or retried keeps its record alive until it is
 * finished. Only a record that the worker dead-letters without finishing its chunk (three
 * handler crashes) ends its lane, and its document cannot complete anyway; the reconciler of
 * issue 10 re-publishes the pending chunks of such a stale job.
 */
import type { Config } from '../config.js';
import type { ChunkRow } from '../aws/status-table.js';
import type { Job } from '../jobs/model.js';
import { resolvePlan } from '../store/tenants.js';
import type { EventPayload } from '../stream/events.js';
import type { Queue } from '../stream/queue.js';
import type { PipelineContext } from './context.js';

/** Partition key of a chunk's events: distinct per chunk, so one document uses every shard. */
export function chunkPartitionKey(documentId: string, index: number): string {
  return `${documentId}#${index}`;
}

/** What a chunk record carries besides its index. */
export type ChunkRecordBase = Pick<EventPayload<'chunk.ready'>, 'tenantId' | 'documentId' | 'analyses' | 'window' | 'weight'>;

/** The common part of a job's chunk records. */
export function chunkRecordBase(job: Pick<Job, 'tenantId' | 'documentId' | 'analyses' | 'window' | 'weight'>): ChunkRecordBase {
  return {
    tenantId: job.tenantId,
    documentId: job.documentId,
    analyses: job.analyses,
    ...(job.window !== undefined ? { window: job.window } : {}),
    ...(job.weight !== undefined ? { weight: job.weight } : {}),
  };
}

/** Publishes `chunk.ready` for these chunks (spread over the shards). */
export async function publishChunks(
  queue: Queue,
  base: ChunkRecordBase,
  chunks: ReadonlyArray<{ index: number; attempt?: number }>,
): Promise<void> {
  if (chunks.length === 0) return;
  const offset = base.window !== undefined ? laneOffset(base.documentId) : undefined;
  await queue.addBulk(
    chunks.map((c) => ({
      type: 'chunk.ready' as const,
      payload: { ...base, chunkIndex: c.index, attempt: Math.max(1, c.attempt ?? 1) },
      partitionKey: chunkPartitionKey(base.documentId, c.index),
      ...(offset !== undefined && base.window !== undefined ? { slot: offset + (c.index % base.window) } : {}),
    })),
    { spread: true },
  );
}

/** A document's first lane's shard slot: documents start their lanes on different shards. */
function laneOffset(documentId: string): number {
  let h = 0;
  for (let i = 0; i < documentId.length; i++) h = (h * 31 + documentId.charCodeAt(i)) >>> 0;
  return h % 1024;
}

/** True when a chunk is published by the splitter itself (inside the first window). */
export function inFirstWindow(index: number, window: number | undefined): boolean {
  return window === undefined || index < window;
}

/** A chunk row is finished (its successor may go). */
export function isFinished(row: Pick<ChunkRow, 'status'> | undefined): boolean {
  return row?.status === 'succeeded' || row?.status === 'failed';
}

/** A successor row that may be published now: pending, its input written, not held by a dead letter. */
function publishable(row: ChunkRow | undefined): row is ChunkRow {
  return row !== undefined && row.status === 'pending' && row.inputReady === true && row.heldBy === undefined;
}

/**
 * Before a chunk is counted: publishes its successor if that one is ready now. Returns whether
 * it did, so the completion can record `nextReleased` in the same write that finishes the chunk.
 */
export async function releaseSuccessorEarly(ctx: PipelineContext, p: EventPayload<'chunk.ready'>): Promise<boolean> {
  if (p.window === undefined) return false;
  const next = await ctx.status.getChunk(p.tenantId, p.documentId, p.chunkIndex + p.window);
  if (!publishable(next)) return false;
  await publishChunks(ctx.queue, p, [{ index: next.index, attempt: next.attempt }]);
  return true;
}

/**
 * After a chunk was finished (by this delivery, or found finished by a redelivery): publishes its
 * successor unless that was done already, reading the successor's row only now (the finisher's
 * half of the handshake in the module comment).
 */
export async function releaseSuccessor(ctx: PipelineContext, p: EventPayload<'chunk.ready'>, finished: Pick<ChunkRow, 'nextReleased'>): Promise<void> {
  if (p.window === undefined || finished.nextReleased === true) return;
  const next = await ctx.status.getChunk(p.tenantId, p.documentId, p.chunkIndex + p.window);
  if (publishable(next)) {
    await publishChunks(ctx.queue, p, [{ index: next.index, attempt: next.attempt }]);
    ctx.logger.debug({ tenantId: p.tenantId, documentId: p.documentId, chunkIndex: p.chunkIndex, next: next.index }, 'published the successor after the chunk finished');
  }
  await ctx.status.markNextReleased(p.tenantId, p.documentId, p.chunkIndex);
}

/**
 * The splitter's half of the handshake, for chunks beyond the first window whose inputs are
 * written and marked ready: publishes those whose predecessor is already finished.
 */
export async function publishIfPredecessorFinished(ctx: PipelineContext, job: Job, indexes: readonly number[]): Promise<number> {
  const window = job.window;
  if (window === undefined || indexes.length === 0) return 0;
  const ready: Array<{ index: number }> = [];
  await Promise.all(
    indexes.map(async (index) => {
      const predecessor = await ctx.status.getChunk(job.tenantId, job.documentId, index - window);
      if (isFinished(predecessor)) ready.push({ index });
    }),
  );
  await publishChunks(ctx.queue, chunkRecordBase(job), ready);
  return ready.length;
}

/**
 * Pending chunks that are released (first window, or predecessor finished), from a full list of
 * a job's rows: what a resumed split, or the reconciler, publishes.
 */
export function releasedPending(rows: readonly ChunkRow[], window: number | undefined): ChunkRow[] {
  const byIndex = new Map(rows.map((r) => [r.index, r]));
  return rows.filter((r) => r.status === 'pending' && r.heldBy === undefined && (inFirstWindow(r.index, window) || isFinished(byIndex.get(r.index - (window as number)))));
}

/**
 * A document's window: FAIR_SHARE_WINDOW scaled by its tenant's weight (at most 8 times), so a
 * tenant entitled to three times the share also has the records on the stream to use it.
 */
export function documentWindow(baseWindow: number, weight: number): number {
  return Math.max(1, Math.round(baseWindow * Math.min(8, Math.max(weight, 1 / baseWindow))));
}

/** The tenant's share weight (its plan, or the config default). */
export async function tenantWeight(ctx: PipelineContext, tenantId: string): Promise<number> {
  const tenant = await ctx.tenants.getTenant(tenantId).catch(() => undefined);
  return resolvePlan(tenant?.plan ?? {}, ctx.config).weight;
}

/**
 * Cost of one chunk analysis in the fair queue, in units of the model quota: the larger of its
 * share of a minute's requests and its share of a minute's input tokens (dominant resource
 * fairness over GEMINI_RPM and GEMINI_TPM), scaled so a typical request costs about 1. Without
 * a request quota every analysis costs 1.
 */
export function analysisCost(config: Pick<Config, 'GEMINI_RPM' | 'GEMINI_TPM'>, textChars: number): number {
  if (config.GEMINI_RPM <= 0) return 1;
  const tokensPerRequest = config.GEMINI_TPM / config.GEMINI_RPM;
  return Math.max(1, Math.ceil(textChars / 4) / tokensPerRequest);
}
