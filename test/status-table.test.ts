/**
 * The status table's transactional transitions on DynamoDB Local, under the concurrency the fleet
 * produces:
 *
 * - Many chunks of one document claimed and completed at once (every one of those transactions
 *   touches the job row): each completion counts exactly once and none is lost.
 * - A second commit of the same document's chunks (a redelivered `document.submitted` split
 *   again) is refused and does not reset rows the fleet already finished, including the rows
 *   written outside the final transaction (documents over 99 chunks).
 * - Which transaction cancellations are retried: conflicts and throttling, never a failed condition.
 */
import { TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  closePipelineContext,
  createLogger,
  createPipelineContext,
  isTransientTransactionError,
  loadConfig,
  planChunks,
  unavailableExtractor,
  type Job,
  type PipelineContext,
} from '@docorch/core';
import { createIsolatedResources, type IsolatedResources } from '@docorch/testkit';
import { newJob } from './helpers.js';

describe('status table under concurrency', () => {
  let resources: IsolatedResources;
  let ctx: PipelineContext;
  const tenantId = 'tstatus';

  beforeAll(async () => {
    resources = await createIsolatedResources({ prefix: 'status', shardCount: 1 });
    const config = loadConfig({ ...process.env, ...resources.names, LOG_LEVEL: 'silent' });
    ctx = createPipelineContext(config, createLogger({ service: 'status-test', level: 'silent' }), {
      extractor: unavailableExtractor('not used'),
    });
  });

  afterAll(async () => {
    if (ctx) await closePipelineContext(ctx);
    await resources?.cleanup();
  });

  async function job(documentId: string, pages: number, status: Job['status']): Promise<void> {
    await ctx.status.createJob(newJob(tenantId, documentId, { pages, status, analyses: ['summary'] }));
  }

  const pagesOf = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

  it('counts every one of many concurrent completions exactly once', async () => {
    const documentId = 'doc-concurrent';
    const n = 60;
    await job(documentId, n, 'queued');
    const plan = planChunks(pagesOf(n), 1);
    await ctx.status.commitChunks(tenantId, documentId, plan, { chunksTotal: n }, 'queued');
    const outcomes = await Promise.all(
      plan.map(async (chunk) => {
        const claim = await ctx.status.claimChunk(tenantId, documentId, chunk.index, `w${chunk.index % 4}`, 1);
        if (claim.kind !== 'claimed') return `claim ${claim.kind}`;
        const ok = await ctx.status.completeChunk(
          tenantId,
          documentId,
          chunk.index,
          { owner: `w${chunk.index % 4}`, counter: claim.row.claimCounter },
          chunk.index % 10 === 0
            ? { status: 'failed', error: { code: 'BAD_PDF', message: 'x' }, resultKey: `r/${chunk.index}` }
            : { status: 'succeeded', resultKey: `r/${chunk.index}` },
        );
        return ok ? 'counted' : 'refused';
      }),
    );
    expect(outcomes.filter((o) => o === 'counted')).toHaveLength(n);
    // Each row names the object of the claim that was counted.
    expect((await ctx.status.listChunks(tenantId, documentId)).every((r) => r.resultKey === `r/${r.index}`)).toBe(true);
    const row = await ctx.status.getJob(tenantId, documentId);
    expect(row?.chunksSucceeded).toBe(n - n / 10);
    expect(row?.chunksFailed).toBe(n / 10);
    // A second completion of the same claim is refused and counts nothing.
    expect(await ctx.status.completeChunk(tenantId, documentId, 1, { owner: 'w1', counter: 1 }, { status: 'succeeded' })).toBe(false);
    expect((await ctx.status.getJob(tenantId, documentId))?.chunksSucceeded).toBe(n - n / 10);
  });

  it('a second commit of the same chunks is refused and resets no row, inside or outside the transaction', async () => {
    const documentId = 'doc-recommit';
    const n = 150; // the first 51 rows are written outside the final transaction
    await job(documentId, n, 'splitting');
    const plan = planChunks(pagesOf(n), 1);
    await ctx.status.commitChunks(tenantId, documentId, plan, { chunksTotal: n });
    for (const index of [1, 140]) {
      const claim = await ctx.status.claimChunk(tenantId, documentId, index, 'w', 1);
      if (claim.kind !== 'claimed') throw new Error(`claim ${claim.kind}`);
      expect(await ctx.status.completeChunk(tenantId, documentId, index, { owner: 'w', counter: claim.row.claimCounter }, { status: 'succeeded' })).toBe(true);
    }
    await expect(ctx.status.commitChunks(tenantId, documentId, plan, { chunksTotal: n })).rejects.toMatchObject({ code: 'CONFLICT' });
    const rows = await ctx.status.listChunks(tenantId, documentId);
    expect(rows).toHaveLength(n);
    expect(rows.filter((r) => r.status === 'succeeded').map((r) => r.index)).toEqual([1, 140]);
    expect((await ctx.status.getJob(tenantId, documentId))?.chunksSucceeded).toBe(2);
  });

  it('retries transaction conflicts and throttling, never a failed condition', () => {
    const cancelled = (...codes: string[]) =>
      new TransactionCanceledException({ message: 'cancelled', $metadata: {}, CancellationReasons: codes.map((Code) => ({ Code })) });
    expect(isTransientTransactionError(cancelled('None', 'TransactionConflict'))).toBe(true);
    expect(isTransientTransactionError(cancelled('ThrottlingError', 'None'))).toBe(true);
    expect(isTransientTransactionError(cancelled('ConditionalCheckFailed', 'TransactionConflict'))).toBe(false);
    expect(isTransientTransactionError(cancelled('ConditionalCheckFailed', 'None'))).toBe(false);
    expect(isTransientTransactionError(new Error('other'))).toBe(false);
  });
});
