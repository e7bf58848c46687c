/**
 * The reconciler: a periodic sweep that finds documents whose progress stopped and drives them
 * on with the pipeline's own idempotent steps, so every admitted document reaches a terminal
 * state whatever dies when (docs/reconciler.md).
 *
 * It finds candidates without scanning: the status table's sparse `byOpenStatus` index holds
 * only non-terminal jobs (and cancelled tombstones), keyed by status and the time of their last
 * transition (`openAt`; chunk counts do not write the index). For each candidate, re-read
 * strongly consistently: a job counted recently is alive (its `openAt` is moved up to its last
 * progress); a job not updated for RECONCILE_STALE_MS is stale:
 * - older than DOCUMENT_DEADLINE_MS: failed with DEADLINE_EXCEEDED;
 * - `queued` / `splitting`: `document.submitted` re-published (the API died before publishing,
 *   or the split died, or its record was lost); a split held by a dead letter is failed with it;
 * - `processing`, sync, no chunk rows, past SYNC_TIMEOUT_MS + the staleness time: the API died
 *   before its hand-off or its terminal write; the job is fenced (the sync path's own writes are
 *   refused from then on), then finished from its stored result if it has one, else resumed as a
 *   split (pages extracted again, chunks published);
 * - `processing`, every chunk counted: assembled here (the aggregator's record was lost);
 * - `processing` with held (dead-lettered) chunks: those are finished as failed with their error;
 * - `processing` otherwise: `document.submitted` (recover) re-published, which re-creates missing
 *   rows and inputs and re-publishes pending and claimed chunks;
 * - `assembling`: the assembly claim is taken over (its holder stopped) and assembled;
 * - `cancelled` for DELETED_RETENTION_MS: purged (everything a racing writer left, then the tombstone).
 *
 * Safe beside the live pipeline: each action is claimed with a conditional write on the job row as
 * read (status and updatedAt unchanged), which also restarts its staleness clock; re-published
 * records are absorbed by the chunk claims (one analysis, one count per chunk); the assembly
 * claim admits one finisher. One process runs the sweep at a time (a {@link TaskLease}), but two
 * at once would still be correct.
 */
import pLimit from 'p-limit';
import { DocorchError } from '../errors.js';
import { TERMINAL_STATUSES, type Job, type JobStatus } from '../jobs/model.js';
import type { TaskLease } from '../claims/task-lease.js';
import type { DocumentResult } from '../jobs/result.js';
import { assembleJob, isReadyToAssemble } from './assemble-job.js';
import { assembleOptionsFrom } from '../jobs/assemble.js';
import { purgeDocument } from './cancel.js';
import type { PipelineContext } from './context.js';
import { finishHeld } from './dead-letter.js';
import { resultKey } from '../aws/object-keys.js';
import { syncTerminalPatch } from './sync.js';

/** Options of {@link reconcileOnce}. */
export interface ReconcileOptions {
  /** Claim owner of the reconciler's own assemblies and held-chunk failures. */
  owner: string;
  /** @defaultValue config.RECONCILE_STALE_MS */
  staleMs?: number;
  /** @defaultValue config.DOCUMENT_DEADLINE_MS */
  deadlineMs?: number;
  /** @defaultValue config.DELETED_RETENTION_MS */
  deletedRetentionMs?: number;
  /** Most documents examined per status per sweep. @defaultValue 200 */
  batch?: number;
}

/** What one sweep did. */
export interface ReconcileReport {
  examined: number;
  /** Documents driven on, by `status:action`. */
  actions: Record<string, number>;
  expired: number;
  purged: number;
}

const OPEN: readonly JobStatus[] = ['queued', 'splitting', 'processing', 'assembling'];

/** One sweep over every open status. */
export async function reconcileOnce(ctx: PipelineContext, options: ReconcileOptions): Promise<ReconcileReport> {
  const staleMs = options.staleMs ?? ctx.config.RECONCILE_STALE_MS;
  const report: ReconcileReport = { examined: 0, actions: {}, expired: 0, purged: 0 };
  const limit = pLimit(4);
  const now = Date.now();
  for (const status of OPEN) {
    const keys = await ctx.status.listStale(status, new Date(now - staleMs).toISOString(), options.batch ?? 200);
    await Promise.all(
      keys.map((key) =>
        limit(async () => {
          report.examined++;
          try {
            const action = await reconcileJob(ctx, key.tenantId, key.documentId, { ...options, staleMs });
            if (!action) return;
            report.actions[`${status}:${action}`] = (report.actions[`${status}:${action}`] ?? 0) + 1;
            if (action === 'expired') {
              report.expired++;
              ctx.metrics.documentsExpired.inc({ status });
            } else ctx.metrics.reconciled.inc({ status, action });
          } catch (err) {
            ctx.logger.warn({ err, ...key, status }, 'reconciler could not drive a document on; next sweep retries');
          }
        }),
      ),
    );
  }
  const retention = options.deletedRetentionMs ?? ctx.config.DELETED_RETENTION_MS;
  const tombstones = await ctx.status.listStale('cancelled', new Date(now - retention).toISOString(), options.batch ?? 200);
  await Promise.all(
    tombstones.map((key) =>
      limit(async () => {
        try {
          if (await purgeDocument(ctx, key.tenantId, key.documentId, { onlyCancelled: true })) report.purged++;
        } catch (err) {
          ctx.logger.warn({ err, ...key }, 'could not purge a cancelled document; next sweep retries');
        }
      }),
    ),
  );
  if (report.purged > 0) ctx.metrics.reconciled.inc({ status: 'cancelled', action: 'purged' }, report.purged);
  if (Object.keys(report.actions).length > 0 || report.purged > 0) ctx.logger.info({ ...report }, 'reconciler sweep');
  return report;
}

/** The action taken on one stale document, or undefined when it needed none (it moved meanwhile). */
export type ReconcileAction = 'expired' | 'republished' | 'sync-resumed' | 'assembled' | 'held-failed' | 'reassembled';

/** Drives one document on if it is (still) stale. */
export async function reconcileJob(
  ctx: PipelineContext,
  tenantId: string,
  documentId: string,
  options: ReconcileOptions & { staleMs: number },
): Promise<ReconcileAction | undefined> {
  const job = await ctx.status.getJob(tenantId, documentId);
  if (!job || TERMINAL_STATUSES.has(job.status)) return undefined;
  const now = Date.now();
  if (now - Date.parse(job.updatedAt) < options.staleMs) {
    // Alive (chunks counted since its last transition): out of the sweep until it stands still.
    await ctx.status.markSeen(job);
    return undefined;
  }
  const log = ctx.logger.child({ tenantId, documentId, status: job.status });
  const deadlineMs = options.deadlineMs ?? ctx.config.DOCUMENT_DEADLINE_MS;
  if (now - Date.parse(job.createdAt) > deadlineMs) {
    try {
      await ctx.status.transition(tenantId, documentId, 'failed', {
        error: { code: 'DEADLINE_EXCEEDED', message: `The document did not finish within ${Math.round(deadlineMs / 1000)} s (it was ${job.status})` },
        completedAt: new Date().toISOString(),
      });
    } catch (err) {
      if (err instanceof DocorchError && (err.code === 'CONFLICT' || err.code === 'NOT_FOUND')) return undefined;
      throw err;
    }
    log.warn('document past its deadline; failed with DEADLINE_EXCEEDED');
    return 'expired';
  }
  switch (job.status) {
    case 'queued':
    case 'splitting':
      if (job.heldBy) return (await finishHeld(ctx, tenantId, documentId, job.heldBy, undefined, options.owner, options.staleMs)) ? 'held-failed' : undefined;
      return republish(ctx, job);
    case 'processing':
      return reconcileProcessing(ctx, job, options);
    case 'assembling': {
      // A sync run that died after storing its result: finish from it (its chunk results were
      // only in that process's memory).
      if (job.mode === 'sync' && job.resultKey && job.assemblyEpoch === undefined) return (await finishSyncFromResult(ctx, job)) ? 'reassembled' : undefined;
      return (await assembleHere(ctx, job, options.owner)) ? 'reassembled' : undefined;
    }
    default:
      return undefined;
  }
}

async function reconcileProcessing(ctx: PipelineContext, job: Job, options: ReconcileOptions & { staleMs: number }): Promise<ReconcileAction | undefined> {
  const { tenantId, documentId } = job;
  if (isReadyToAssemble(job)) {
    return (await assembleHere(ctx, job, options.owner)) ? 'assembled' : undefined;
  }
  const rows = await ctx.status.listChunks(tenantId, documentId);
  if (job.mode === 'sync' && rows.length === 0) {
    // A sync request still inside its budget is alive; past it (plus the staleness time) its API
    // process died before the hand-off. The fence makes sure it cannot come back and write.
    if (Date.now() - Date.parse(job.createdAt) < ctx.config.SYNC_TIMEOUT_MS + options.staleMs) return undefined;
    if (!job.syncFenced && !(await ctx.status.fenceSyncJob(tenantId, documentId))) return undefined;
    // It may have died after storing its result (before its terminal write): finish from that.
    if (await finishSyncFromResult(ctx, { ...job, resultKey: resultKey(tenantId, documentId) })) return 'reassembled';
    await ctx.queue.add('document.submitted', { tenantId, documentId, recover: true }, { partitionKey: documentId });
    ctx.logger.warn({ tenantId, documentId }, 'sync job orphaned before its hand-off; resumed on the async path');
    return 'sync-resumed';
  }
  const held = rows.filter((r) => r.heldBy !== undefined && r.status === 'pending');
  if (held.length > 0) {
    // Held chunks wait RECONCILE_STALE_MS from their dead letter for a replay, then are failed.
    let finished = 0;
    for (const row of held) if (await finishHeld(ctx, tenantId, documentId, row.heldBy as string, row.index, options.owner, options.staleMs)) finished++;
    // Until then the document waits as it is (re-publishing would only restart its staleness).
    return finished > 0 ? 'held-failed' : undefined;
  }
  return republish(ctx, job);
}

/**
 * Finishes a sync job whose run died after storing its result (pipeline/sync.ts): fenced in
 * `processing`, or left `assembling` by an older version. Metered as the sync path would have.
 * False when no result is stored (or the job moved meanwhile).
 */
async function finishSyncFromResult(ctx: PipelineContext, job: Job): Promise<boolean> {
  const result = await ctx.blobs.getJson<DocumentResult>(ctx.config.RESULTS_BUCKET, job.resultKey as string);
  if (!result) return false;
  try {
    await ctx.status.transition(job.tenantId, job.documentId, result.status, syncTerminalPatch(result, job.resultKey as string, job.pagesSelected ?? 0), { meter: { usage: result.usage, chunks: job.chunksTotal, pages: job.pagesSelected ?? 0 } });
  } catch (err) {
    if (err instanceof DocorchError && (err.code === 'CONFLICT' || err.code === 'NOT_FOUND')) return false;
    throw err;
  }
  ctx.logger.warn({ tenantId: job.tenantId, documentId: job.documentId, status: result.status }, 'sync job finished from its stored result');
  return true;
}

/**
 * Assembles a job whose assembler is gone (the aggregator's record lost, or its claim not
 * heartbeated for ASSEMBLY_CLAIM_TIMEOUT_MS). A live claim is left alone (false).
 */
async function assembleHere(ctx: PipelineContext, job: Job, owner: string): Promise<boolean> {
  try {
    const outcome = await assembleJob(ctx, job.tenantId, job.documentId, { owner, ...assembleOptionsFrom(ctx.config) });
    return outcome.kind === 'assembled';
  } catch (err) {
    if (err instanceof DocorchError && err.code === 'CONFLICT') return false;
    throw err;
  }
}

/** Re-publishes `document.submitted` (recover) after claiming the action on the job row as read. */
async function republish(ctx: PipelineContext, job: Job): Promise<ReconcileAction | undefined> {
  if (!(await ctx.status.touchForRecovery(job))) return undefined;
  await ctx.queue.add('document.submitted', { tenantId: job.tenantId, documentId: job.documentId, recover: true }, { partitionKey: job.documentId });
  ctx.logger.warn({ tenantId: job.tenantId, documentId: job.documentId, status: job.status, recoveries: (job.recoveries ?? 0) + 1 }, 'stale document re-published');
  return 'republished';
}

/** Lifecycle of a {@link Reconciler}. */
export type ReconcilerState = 'idle' | 'standby' | 'sweeping' | 'stopping' | 'stopped';

/** Options of {@link Reconciler}. */
export interface ReconcilerOptions extends ReconcileOptions {
  /** The fleet-wide lease of the sweep. */
  lease: TaskLease;
  /** @defaultValue config.RECONCILE_INTERVAL_MS */
  intervalMs?: number;
}

/**
 * Runs {@link reconcileOnce} every interval while holding the fleet's reconciler lease (every
 * worker runs one; one sweeps, the others stand by and take over when its lease stops moving).
 */
export class Reconciler {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();
  private current: ReconcilerState = 'idle';
  /** The last sweep's report. */
  last: ReconcileReport | undefined;

  constructor(
    private readonly ctx: PipelineContext,
    private readonly options: ReconcilerOptions,
  ) {}

  get state(): ReconcilerState {
    return this.current;
  }

  start(): void {
    if (this.current !== 'idle') return;
    this.current = 'standby';
    this.schedule(0);
  }

  private schedule(delayMs: number): void {
    if (this.current === 'stopping' || this.current === 'stopped') return;
    this.timer = setTimeout(() => {
      this.running = this.tick().finally(() => this.schedule(this.options.intervalMs ?? this.ctx.config.RECONCILE_INTERVAL_MS));
    }, delayMs);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    try {
      if (!(await this.options.lease.acquire())) {
        this.current = 'standby';
        return;
      }
      this.current = 'sweeping';
      this.last = await reconcileOnce(this.ctx, this.options);
    } catch (err) {
      this.ctx.logger.warn({ err }, 'reconciler sweep failed; next interval retries');
    } finally {
      if (this.current === 'sweeping') this.current = 'standby';
    }
  }

  /** Stops sweeping, waits for a sweep in progress, and gives the lease up. */
  async stop(): Promise<void> {
    if (this.current === 'stopped') return;
    this.current = 'stopping';
    clearTimeout(this.timer);
    await this.running;
    await this.options.lease.release().catch(() => undefined);
    this.current = 'stopped';
  }
}
