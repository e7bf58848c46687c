import { describe, expect, it } from 'vitest';
import {
  assembleResult,
  canTransition,
  failedChunkResult,
  mergeEntities,
  mergeSentiment,
  planChunks,
  progressOf,
  reduceSummaries,
  statusesLeadingTo,
  type ChunkResult,
  type SummaryReduceInput,
} from '../src/index.js';

describe('planChunks', () => {
  it('splits into consecutive chunks of at most N pages', () => {
    const pages = Array.from({ length: 25 }, (_, i) => i + 1);
    expect(planChunks(pages, 10).map((c) => c.pages.length)).toEqual([10, 10, 5]);
    expect(planChunks(pages, 10).map((c) => c.index)).toEqual([0, 1, 2]);
  });
  it('never spans a gap in the selection', () => {
    expect(planChunks([1, 2, 3, 7, 8, 20], 10).map((c) => c.pages)).toEqual([[1, 2, 3], [7, 8], [20]]);
  });
  it('covers every page exactly once, in order', () => {
    const pages = Array.from({ length: 301 }, (_, i) => i + 1);
    const plan = planChunks(pages, 7);
    expect(plan.flatMap((c) => c.pages)).toEqual(pages);
  });
  it('rejects a non-positive chunk size', () => {
    expect(() => planChunks([1], 0)).toThrow(RangeError);
  });
});

describe('job state machine', () => {
  it('allows the async and sync paths and nothing out of terminal states', () => {
    expect(canTransition('queued', 'splitting')).toBe(true);
    expect(canTransition('queued', 'processing')).toBe(true);
    expect(canTransition('processing', 'assembling')).toBe(true);
    expect(canTransition('assembling', 'completed_with_errors')).toBe(true);
    expect(canTransition('completed', 'failed')).toBe(false);
    expect(canTransition('cancelled', 'processing')).toBe(false);
    expect(canTransition('assembling', 'cancelled')).toBe(false);
    expect(statusesLeadingTo('cancelled').sort()).toEqual(['processing', 'queued', 'splitting']);
  });
  it('reports progress, 100% only when terminal', () => {
    expect(progressOf({ status: 'processing', chunksTotal: 4, chunksSucceeded: 4, chunksFailed: 0 }).percent).toBe(99);
    expect(progressOf({ status: 'processing', chunksTotal: 4, chunksSucceeded: 1, chunksFailed: 1 }).percent).toBe(50);
    expect(progressOf({ status: 'queued', chunksTotal: 0, chunksSucceeded: 0, chunksFailed: 0 }).percent).toBe(0);
    expect(progressOf({ status: 'completed', chunksTotal: 4, chunksSucceeded: 4, chunksFailed: 0 }).percent).toBe(100);
  });
});

describe('reduce', () => {
  it('merges entities by type and text with counts and pages', () => {
    const merged = mergeEntities([
      [{ text: 'Paris', type: 'LOCATION', count: 2, pages: [1, 2] }],
      [
        { text: 'paris', type: 'LOCATION', count: 1, pages: [5] },
        { text: 'Paris', type: 'PERSON', count: 1, pages: [5] },
      ],
    ]);
    expect(merged).toEqual([
      { text: 'Paris', type: 'LOCATION', count: 3, pages: [1, 2, 5] },
      { text: 'Paris', type: 'PERSON', count: 1, pages: [5] },
    ]);
  });
  it('weights sentiment by text length', () => {
    const s = mergeSentiment([
      { sentiment: { label: 'positive', score: 0.8 }, textLength: 900 },
      { sentiment: { label: 'negative', score: -0.8 }, textLength: 100 },
    ]);
    expect(s.score).toBeCloseTo(0.64, 5);
    expect(s.label).toBe('positive');
    expect(mergeSentiment([]).label).toBe('neutral');
  });
  it('reduces summaries hierarchically with bounded input per call', async () => {
    const calls: SummaryReduceInput[] = [];
    const analyzer = {
      async reduceSummaries(input: SummaryReduceInput) {
        calls.push(input);
        return { summary: input.summaries.join(' ').slice(0, 100), keyPoints: input.keyPoints.slice(0, 3), usage: { inputTokens: 1, outputTokens: 1, modelCalls: 1 } };
      },
    };
    const parts = Array.from({ length: 200 }, (_, i) => ({ summary: `Part ${i} `.repeat(20), keyPoints: [`point ${i}`] }));
    const out = await reduceSummaries(parts, analyzer, { fanIn: 8, maxInputChars: 2_000 });
    expect(out.summary.length).toBeGreaterThan(0);
    for (const call of calls) {
      expect(call.summaries.length).toBeLessThanOrEqual(8);
      const chars = call.summaries.join('').length + call.keyPoints.join('').length;
      // A single oversized part may exceed the budget alone, never a batch of several.
      if (call.summaries.length > 1) expect(chars).toBeLessThanOrEqual(2_000);
    }
    expect(out.usage.modelCalls).toBe(calls.length);
  });
  it('assembles completed_with_errors with failed pages, and failed above the ratio', async () => {
    const ok = (index: number, first: number): ChunkResult => ({
      index,
      pages: [first, first + 1],
      status: 'succeeded',
      summary: `Summary ${index}.`,
      keyPoints: [`k${index}`],
      entities: [],
      sentiment: { label: 'positive', score: 0.5 },
      textLength: 100,
      failedPages: [],
      usage: { inputTokens: 10, outputTokens: 5, modelCalls: 1 },
    });
    const analyzer = {
      name: 'test',
      async reduceSummaries(input: SummaryReduceInput) {
        return { summary: input.summaries.join(' '), keyPoints: input.keyPoints, usage: { inputTokens: 0, outputTokens: 0, modelCalls: 0 } };
      },
    };
    const partial = await assembleResult({
      documentId: 'd1',
      analyzer,
      chunks: [ok(0, 1), failedChunkResult(1, [3, 4], { code: 'SAFETY_BLOCKED', message: 'blocked' }), ok(2, 5)],
      pageCount: 6,
      pagesSelected: 6,
    });
    expect(partial.status).toBe('completed_with_errors');
    expect(partial.failedPages).toEqual([
      { page: 3, code: 'SAFETY_BLOCKED' },
      { page: 4, code: 'SAFETY_BLOCKED' },
    ]);
    expect(partial.summary).toBe('Summary 0. Summary 2.');
    expect(partial.usage).toEqual({ inputTokens: 20, outputTokens: 10, modelCalls: 2 });
    const failed = await assembleResult(
      {
        documentId: 'd2',
        analyzer,
        chunks: [ok(0, 1), failedChunkResult(1, [3, 4], { code: 'TIMEOUT', message: 't' }), failedChunkResult(2, [5, 6], { code: 'TIMEOUT', message: 't' })],
        pageCount: 6,
        pagesSelected: 6,
      },
      { maxFailedChunkRatio: 0.5 },
    );
    expect(failed.status).toBe('failed');
  });
});
