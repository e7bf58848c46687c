/**
 * processChunk with the model's errors (issue 4), on an in-memory context: INVALID_MODEL_OUTPUT
 * (already retried within bounds by the analyzer) fails the chunk at once instead of being
 * multiplied by the worker's retries and re-publishes; the billed usage of failed analyses
 * (the error's `details.usage`) stays in the chunk's usage, for failed and succeeded chunks alike.
 * Also how a delivery meets its shard's graceful hand-off (`handBack`): handed back while it waits
 * for an analysis slot, left to finish once its analysis is under way.
 */
import { describe, expect, it } from 'vitest';
import type { Analyzer, ChunkAnalysis, Usage } from '../src/analysis/types.js';
import type { ChunkRow } from '../src/aws/status-table.js';
import { loadConfig } from '../src/config.js';
import { DocorchError } from '../src/errors.js';
import type { ChunkResult } from '../src/jobs/result.js';
import type { PipelineContext } from '../src/pipeline/context.js';
import { processChunk, type ChunkProcessorOptions } from '../src/pipeline/process-chunk.js';
import { FairQueue } from '../src/resilience/fair-queue.js';
import type { StreamEvent } from '../src/stream/events.js';
import { createLogger } from '../src/telemetry/logger.js';

const USAGE_A: Usage = { inputTokens: 100, outputTokens: 20, modelCalls: 3 };
const USAGE_B: Usage = { inputTokens: 40, outputTokens: 10, modelCalls: 1 };

function analysis(usage: Usage): ChunkAnalysis {
  return { summary: 's', keyPoints: [], entities: [], sentiment: { label: 'neutral', score: 0 }, textLength: 10, failedPages: [], usage };
}

/** An answer that comes only when the analysis is aborted (then it is the abort), or later. */
type Step = ChunkAnalysis | Error | 'until-aborted' | Promise<ChunkAnalysis>;

/**
 * A context whose tables, bucket and stream are in memory; `steps` are the analyzer's answers in
 * order. The chunk row keeps its state: claimed, released (pending) or done.
 */
function harness(steps: Step[]) {
  const calls = { analyze: 0, republished: 0, deadLetters: 0, claims: 0 };
  const completed: Array<{ outcome: unknown; usage: Usage | undefined }> = [];
  const stored: ChunkResult[] = [];
  const row: ChunkRow = { index: 0, firstPage: 1, lastPage: 2, status: 'processing', attempt: 1, claimCounter: 1, claimOwner: 'w', updatedAt: '' };
  const analyzer: Pick<Analyzer, 'analyzeChunk'> = {
    async analyzeChunk(_input, options) {
      const step = steps[calls.analyze++];
      if (!step) throw new Error('unexpected analysis');
      if (step === 'until-aborted') {
        const signal = options?.signal as AbortSignal;
        await new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }));
      }
      if (step instanceof Error) throw step;
      return await (step as ChunkAnalysis | Promise<ChunkAnalysis>);
    },
  };
  const ctx = {
    config: loadConfig({}),
    logger: createLogger({ service: 'test', level: 'silent' }),
    analyzer,
    blobs: {
      async getJson() {
        return { pages: [{ page: 1, text: 'one' }, { page: 2, text: 'two' }] };
      },
      async putJson(_bucket: string, _key: string, value: ChunkResult) {
        stored.push(value);
      },
    },
    status: {
      async getJob() {
        return { status: 'processing' };
      },
      async claimChunk() {
        calls.claims++;
        if (row.status === 'succeeded' || row.status === 'failed') return { kind: 'done', row };
        Object.assign(row, { status: 'processing', claimOwner: 'w' });
        return { kind: 'claimed', row };
      },
      async heartbeatChunk() {
        return 2;
      },
      async getChunk() {
        return row;
      },
      async releaseChunk() {
        Object.assign(row, { status: 'pending', claimOwner: undefined });
        return true;
      },
      async completeChunk(_t: string, _d: string, _i: number, _claim: unknown, outcome: { status: ChunkRow['status'] }, usage?: Usage) {
        completed.push({ outcome, usage });
        row.status = outcome.status;
        return true;
      },
    },
    queue: {
      async add() {
        calls.republished++;
      },
      async addBulk() {
        calls.republished++;
      },
    },
    deadLetters: {
      async put() {
        calls.deadLetters++;
      },
    },
  } as unknown as PipelineContext;
  const event: StreamEvent<'chunk.ready'> = {
    v: 1,
    id: 'e1',
    type: 'chunk.ready',
    createdAt: new Date().toISOString(),
    payload: { tenantId: 't', documentId: 'd', chunkIndex: 0, attempt: 1, analyses: ['summary'] },
  };
  const run = (signal?: AbortSignal, more: Partial<ChunkProcessorOptions> = {}) =>
    processChunk(ctx, event, { workerId: 'w', limit: new FairQueue(1).run, retry: { baseMs: 1, capMs: 1 }, ...(signal ? { signal } : {}), ...more });
  return { run, calls, completed, stored, row };
}

describe('processChunk and the model errors', () => {
  it('fails the chunk at once on INVALID_MODEL_OUTPUT, keeping the billed usage of the rejected answers', async () => {
    const h = harness([new DocorchError('INVALID_MODEL_OUTPUT', 'bad JSON (after 3 answers)', { details: { usage: USAGE_A } })]);
    expect(await h.run()).toBe('failed');
    expect(h.calls).toEqual({ analyze: 1, republished: 0, deadLetters: 1, claims: 1 });
    expect(h.completed).toEqual([
      { outcome: expect.objectContaining({ status: 'failed', error: { code: 'INVALID_MODEL_OUTPUT', message: 'bad JSON (after 3 answers)' } }), usage: USAGE_A },
    ]);
    expect(h.stored[0]?.usage).toEqual(USAGE_A);
    expect(h.stored[0]?.failedPages).toEqual([
      { page: 1, code: 'INVALID_MODEL_OUTPUT' },
      { page: 2, code: 'INVALID_MODEL_OUTPUT' },
    ]);
  });

  it('keeps the usage of a safety-blocked answer on the failed chunk', async () => {
    const h = harness([new DocorchError('SAFETY_BLOCKED', 'blocked', { details: { usage: USAGE_B } })]);
    expect(await h.run()).toBe('failed');
    expect(h.calls.analyze).toBe(1);
    expect(h.stored[0]?.usage).toEqual(USAGE_B);
  });

  it('adds the usage of a failed, retried analysis to the chunk that then succeeds', async () => {
    const h = harness([new DocorchError('UPSTREAM_UNAVAILABLE', '503 after an invalid answer', { details: { usage: USAGE_A } }), analysis(USAGE_B)]);
    expect(await h.run()).toBe('succeeded');
    expect(h.calls.analyze).toBe(2);
    const sum = { inputTokens: 140, outputTokens: 30, modelCalls: 4 };
    expect(h.completed).toEqual([{ outcome: expect.objectContaining({ status: 'succeeded' }), usage: sum }]);
    expect(h.stored[0]?.usage).toEqual(sum);
  });

  it('analyses a chunk once when two of its records reach this worker at the same time', async () => {
    // The claim is re-entrant for its owner; a duplicate record (a resumed split re-publishes
    // pending chunks) must wait for the delivery in progress, not analyse again.
    const h = harness([analysis(USAGE_B)]);
    const [first, second] = await Promise.all([h.run(), h.run()]);
    expect([first, second]).toEqual(['succeeded', 'skipped']);
    expect(h.calls.analyze).toBe(1);
    expect(h.completed).toHaveLength(1);
    // The duplicate went through the claim after the first (which found the chunk done).
    expect(h.calls.claims).toBe(2);
  });

  it('claims a chunk that the delivery it waited for handed back (a lost lease), instead of skipping its record', async () => {
    // The fault-kill stall: a worker's handlers are aborted (its lease lost), each re-publishes
    // its chunk and releases it; the re-published record reaches the same worker while the
    // aborted handler still runs. Skipped "as a duplicate", it was checkpointed, and the released
    // chunk had no record left: the document stalled one lane short.
    const h = harness(['until-aborted', analysis(USAGE_B)]);
    const lease = new AbortController();
    const first = h.run(lease.signal);
    while (h.calls.analyze === 0) await new Promise((r) => setTimeout(r, 1));
    const second = h.run();
    lease.abort(new Error('lease lost'));
    await expect(first).rejects.toThrow('lease lost');
    expect(h.calls.republished).toBe(1); // handed back: re-published, then released
    expect(await second).toBe('succeeded');
    expect(h.calls.analyze).toBe(2);
    expect(h.completed).toHaveLength(1);
    expect(h.row.status).toBe('succeeded');
  });

  it('hands a chunk back with its shard (a graceful hand-off) while it waits for an analysis slot: never analysed here', async () => {
    const h = harness([analysis(USAGE_B)]);
    const slots = new FairQueue(1);
    let free!: () => void;
    const busy = slots.run({ flow: 'other' }, () => new Promise<void>((r) => (free = r)));
    const handBack = new AbortController();
    const waiting = h.run(undefined, { limit: slots.run, handBack: handBack.signal });
    while (h.calls.claims === 0) await new Promise((r) => setTimeout(r, 1));
    handBack.abort(new Error('shard handed off'));
    await expect(waiting).rejects.toThrow('shard handed off');
    expect(h.calls.analyze).toBe(0);
    expect(h.calls.republished).toBe(1); // as any hand-back: re-published, then released
    expect(h.row.status).toBe('pending');
    free();
    await busy;
  });

  it('lets an analysis under way finish when its shard is handed off: recorded, not handed back', async () => {
    let answer!: (a: ChunkAnalysis) => void;
    const h = harness([new Promise<ChunkAnalysis>((r) => (answer = r))]);
    const handBack = new AbortController();
    const running = h.run(undefined, { handBack: handBack.signal });
    while (h.calls.analyze === 0) await new Promise((r) => setTimeout(r, 1));
    handBack.abort(new Error('shard handed off'));
    answer(analysis(USAGE_B));
    expect(await running).toBe('succeeded');
    expect(h.calls.republished).toBe(0);
    expect(h.completed).toHaveLength(1);
    expect(h.row.status).toBe('succeeded');
  });

  it('still retries and re-publishes retryable errors', async () => {
    const unavailable = () => new DocorchError('UPSTREAM_UNAVAILABLE', '503');
    const h = harness([unavailable(), unavailable(), unavailable()]);
    expect(await h.run()).toBe('requeued');
    expect(h.calls).toEqual({ analyze: 3, republished: 1, deadLetters: 0, claims: 1 });
  });
});
