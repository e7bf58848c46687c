/**
 * Final assembly (DESIGN.md section 2, aggregator): when every chunk of a job is counted, claim
 * the assembly with a conditional update, reduce the chunk results into the document result,
 * write it under its deterministic key, and finish the job with a conditional update.
 *
 * Timeline of the claim (Powertools' idempotency record, in one conditional write):
 *   processing --claim(owner, at)--> assembling --finish--> completed | completed_with_errors | failed
 * A second delivery, or a parallel invocation, finds `assembling` with another owner and backs
 * off (reported as a retryable failure so the event source retries it later); it takes over only
 * when the claim is older than `staleAfterMs` (the owner died). A finished job is never touched.
 */
import { chunkRowPages } from '../aws/status-table.js';
import pLimit from 'p-limit';
import { chunkResultKey, resultKey } from '../aws/object-keys.js';
import { addUsage, type Usage } from '../analysis/types.js';
import { isDocorchError } from '../errors.js';
import { holdAssembly, takeAssemblyClaim, type HeldAssembly } from '../claims/assembly-claim.js';
import { assembleResult, type AssembleOptions } from '../jobs/assemble.js';
import type { Job } from '../jobs/model.js';
import { failedChunkResult, type ChunkResult, type DocumentResult } from '../jobs/result.js';
import type { PipelineContext } from './context.js';

/** Options of {@link assembleJob}. */
export interface AssembleJobOptions extends AssembleOptions {
  /** Who claims: {@link assemblyOwnerFor} the ready job row, or the reconciler's own name. */
  owner: string;
  /**
   * A claim not heartbeated this long (wall clock, across hosts) may be taken over; a failed
   * assembler releases its claim at once. @defaultValue config ASSEMBLY_CLAIM_TIMEOUT_MS (60 s)
   */
  staleAfterMs?: number;
}

/** What {@link assembleJob} did. */
export type AssembleOutcome =
  | { kind: 'assembled'; result: DocumentResult }
  /** Not ready (chunks outstanding), or already finished: nothing to do. */
  | { kind: 'not-ready' | 'finished' };

export { assemblyOwnerFor } from '../claims/assembly-claim.js';

/** True when every chunk of a processing job has been counted. */
export function isReadyToAssemble(job: Pick<Job, 'status' | 'chunksTotal' | 'chunksSucceeded' | 'chunksFailed'>): boolean {
  return job.status === 'processing' && job.chunksTotal > 0 && job.chunksSucceeded + job.chunksFailed >= job.chunksTotal;
}

/**
 * Assembles a job if it is ready. Throws DocorchError('CONFLICT') while another owner's fresh
 * claim is in progress, so the caller reports the record for a later retry.
 */
export async function assembleJob(
  ctx: PipelineContext,
  tenantId: string,
  documentId: string,
  options: AssembleJobOptions,
): Promise<AssembleOutcome> {
  const log = ctx.logger.child({ tenantId, documentId, owner: options.owner });
  const job = await ctx.status.getJob(tenantId, documentId);
  if (!job) return { kind: 'finished' };
  const timeoutMs = options.staleAfterMs ?? ctx.config.ASSEMBLY_CLAIM_TIMEOUT_MS;
  let claim;
  if (job.status === 'assembling') {
    claim = await takeAssemblyClaim(ctx.status, job, options.owner, timeoutMs);
    log.warn({ previousOwner: job.assemblyOwner ?? '(released)', epoch: claim.epoch }, 'took over an assembly claim');
  } else if (isReadyToAssemble(job)) {
    try {
      await ctx.status.transition(tenantId, documentId, 'assembling', {
        assemblyOwner: options.owner,
        assemblyClaimedAt: new Date().toISOString(),
        assemblyEpoch: (job.assemblyEpoch ?? 0) + 1,
      });
      claim = { owner: options.owner, epoch: (job.assemblyEpoch ?? 0) + 1 };
    } catch (err) {
      // Someone else claimed (or finished) it between our read and write.
      if (isDocorchError(err, 'CONFLICT')) return assembleJob(ctx, tenantId, documentId, options);
      throw err;
    }
  } else {
    return { kind: TERMINAL.has(job.status) ? 'finished' : 'not-ready' };
  }
  const held = holdAssembly(ctx.status, { tenantId, documentId }, claim, timeoutMs);
  try {
    return await assembleClaimed(ctx, job, held, options, log);
  } catch (err) {
    // Give the claim back so the retry (the same record again, or the reconciler) starts at once.
    await held.release();
    throw err;
  } finally {
    await held.stop();
  }
}

async function assembleClaimed(
  ctx: PipelineContext,
  job: Job,
  held: HeldAssembly,
  options: AssembleJobOptions,
  log: PipelineContext['logger'],
): Promise<AssembleOutcome> {
  const { tenantId, documentId } = job;
  const t0 = performance.now();
  const chunks = await loadChunkResults(ctx, job);
  const loadedMs = Math.round(performance.now() - t0);
  const result = await assembleResult(
    {
      documentId,
      analyzer: ctx.analyzer,
      chunks,
      pageCount: job.pageCount ?? 0,
      pagesSelected: job.pagesSelected ?? 0,
      ...(job.pageSelection !== undefined ? { pageSelection: job.pageSelection } : {}),
    },
    options,
  );
  const key = resultKey(tenantId, documentId);
  await ctx.blobs.putJson(ctx.config.RESULTS_BUCKET, key, result);
  held.lost.throwIfAborted();
  await held.stop();
  const finished = await ctx.status.finishAssembly(tenantId, documentId, held.claim, result.status, {
    resultKey: key,
    completedAt: new Date().toISOString(),
    ...(result.status === 'failed'
      ? { error: { code: 'ANALYSIS_FAILED', message: `${job.chunksFailed} of ${job.chunksTotal} chunks failed; see failedPages in the result` } }
      : {}),
  });
  if (!finished) {
    // Another holder of this claim (a duplicate delivery, the same owner) finished first.
    log.info('assembly finished by another delivery of the same claim');
    return { kind: 'finished' };
  }
  // Logged as soon as the job is finished (a client polling it sees the line's effect at once).
  log.info({ status: result.status, chunks: chunks.length, ms: { loaded: loadedMs, total: Math.round(performance.now() - t0) } }, 'document assembled');
  // The reduce's model calls are metered here (once: only by the write that finished the job);
  // the chunks' were metered as each completed.
  const reduceUsage = subtractUsage(result.usage, addUsage(...chunks.map((c) => c.usage)));
  await ctx.usage.addUsage(tenantId, reduceUsage).catch((err: unknown) => log.error({ err }, 'could not meter usage'));
  return { kind: 'assembled', result };
}

function subtractUsage(a: Usage, b: Usage): Usage {
  return {
    inputTokens: Math.max(0, a.inputTokens - b.inputTokens),
    outputTokens: Math.max(0, a.outputTokens - b.outputTokens),
    modelCalls: Math.max(0, a.modelCalls - b.modelCalls),
  };
}

const TERMINAL = new Set(['completed', 'completed_with_errors', 'failed', 'cancelled']);

/** Reads every chunk's result; a missing one (should not happen) counts as a failed chunk. */
async function loadChunkResults(ctx: PipelineContext, job: Job): Promise<ChunkResult[]> {
  const rows = await ctx.status.listChunks(job.tenantId, job.documentId);
  const limit = pLimit(32);
  return Promise.all(
    rows.map((row) =>
      limit(async () => {
        const key = row.resultKey ?? chunkResultKey(job.tenantId, job.documentId, row.index);
        const stored = await ctx.blobs.getJson<ChunkResult>(ctx.config.RESULTS_BUCKET, key);
        if (stored) return stored;
        const pages = chunkRowPages(row);
        return failedChunkResult(row.index, pages, { code: 'INTERNAL', message: 'chunk result missing' });
      }),
    ),
  );
}
