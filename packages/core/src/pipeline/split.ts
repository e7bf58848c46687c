/**
 * `document.submitted` (DESIGN.md section 2, step 1): download, extract the page text once, plan
 * the chunks, write each chunk's input to S3, commit the chunk rows with the job's chunksTotal,
 * then publish one `chunk.ready` per chunk, keyed so the chunks spread over every shard.
 *
 * Safe to run again for the same document (redelivery, a crash half-way): each step is
 * deterministic or conditional, and a job already split only has its pending chunks re-published.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pLimit from 'p-limit';
import type { PageText } from '../analysis/types.js';
import { chunkInputKey } from '../aws/object-keys.js';
import { isDocorchError, toDocorchError } from '../errors.js';
import type { ChunkPlan } from '../jobs/model.js';
import { planChunks } from '../jobs/planner.js';
import type { EventPayload } from '../stream/events.js';
import type { Queue } from '../stream/queue.js';
import type { PipelineContext } from './context.js';

/** A chunk's input object in the uploads bucket. */
export interface ChunkInputObject {
  pages: PageText[];
}

/** Partition key of a chunk's events: distinct per chunk, so one document uses every shard. */
export function chunkPartitionKey(documentId: string, index: number): string {
  return `${documentId}#${index}`;
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
    // Split before, possibly crashed before publishing: publish what is still pending.
    await publishPending(ctx, job.tenantId, job.documentId, job.analyses);
    return;
  }
  if (job.status !== 'queued' && job.status !== 'splitting') {
    log.info({ status: job.status }, 'document.submitted redelivered for a job past splitting; ignored');
    return;
  }
  if (job.status === 'queued') job = await ctx.status.transition(tenantId, documentId, 'splitting');

  const dir = await mkdtemp(path.join(os.tmpdir(), 'docorch-split-'));
  try {
    const file = path.join(dir, 'source.pdf');
    await ctx.blobs.downloadToFile(ctx.config.UPLOADS_BUCKET, job.sourceKey, file);
    let extraction;
    try {
      extraction = await ctx.extractor.extract(file, {
        maxPages: ctx.config.MAX_PAGES,
        ...(job.pageSelection !== undefined ? { pages: job.pageSelection } : {}),
      });
    } catch (err) {
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
    const text = new Map(extraction.pages.map((p) => [p.page, p.text]));
    const plan = planChunks(
      extraction.pages.map((p) => p.page),
      job.pagesPerChunk,
    );
    const limit = pLimit(16);
    await Promise.all(
      plan.map((chunk) =>
        limit(() =>
          ctx.blobs.putJson(ctx.config.UPLOADS_BUCKET, chunkInputKey(tenantId, documentId, chunk.index), {
            pages: chunk.pages.map((page) => ({ page, text: text.get(page) ?? '' })),
          } satisfies ChunkInputObject),
        ),
      ),
    );
    await ctx.status.commitChunks(tenantId, documentId, plan, {
      chunksTotal: plan.length,
      pageCount: extraction.info.pageCount,
      pagesSelected: extraction.pages.length,
    });
    await publish(ctx.queue, tenantId, documentId, plan, job.analyses);
    log.info({ chunks: plan.length, pages: extraction.pages.length }, 'document split');
  } catch (err) {
    const e = toDocorchError(err);
    if (e.code === 'CONFLICT') {
      // Committed meanwhile, by a second splitter of a redelivered record, or by this very
      // commit when its transaction landed and a retry of it was refused: its chunk.ready
      // records may not exist yet, so publish what is pending (duplicates are harmless).
      const current = await ctx.status.getJob(tenantId, documentId);
      if (current?.status === 'processing') {
        const published = await publishPending(ctx, tenantId, documentId, current.analyses);
        log.info({ published }, 'chunks committed by another attempt; published the pending ones');
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

async function publish(
  queue: Queue,
  tenantId: string,
  documentId: string,
  chunks: ReadonlyArray<Pick<ChunkPlan, 'index'> & { attempt?: number }>,
  analyses: EventPayload<'chunk.ready'>['analyses'],
): Promise<void> {
  await queue.addBulk(
    chunks.map((c) => ({
      type: 'chunk.ready' as const,
      payload: { tenantId, documentId, chunkIndex: c.index, attempt: Math.max(1, c.attempt ?? 1), analyses },
      partitionKey: chunkPartitionKey(documentId, c.index),
    })),
    { spread: true },
  );
}

/** Re-publishes `chunk.ready` for every chunk still pending (recovery of an interrupted split). */
export async function publishPending(
  ctx: PipelineContext,
  tenantId: string,
  documentId: string,
  analyses: EventPayload<'chunk.ready'>['analyses'],
): Promise<number> {
  const pending = (await ctx.status.listChunks(tenantId, documentId)).filter((c) => c.status === 'pending');
  if (pending.length > 0) await publish(ctx.queue, tenantId, documentId, pending, analyses);
  return pending.length;
}
