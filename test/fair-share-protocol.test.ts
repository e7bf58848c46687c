/**
 * The fair-share window (core pipeline/fair-share.ts) on the real emulators, step by step:
 *
 * - The splitter publishes only the first FAIR_SHARE_WINDOW chunks; every other chunk has its
 *   input written and its row marked `inputReady`; the job records the window.
 * - A finished chunk publishes its successor (`index + window`) exactly once, recorded on its row.
 * - A finisher that died after counting and before publishing: the redelivery of its record
 *   publishes the successor; a second redelivery publishes nothing more.
 * - The handshake: a predecessor that finished before its successor's input was ready is found
 *   by the splitter's half; a resumed split publishes exactly the released pending chunks.
 * - Driving every record to the end completes the document: no chunk is left behind.
 */
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  chunkSk,
  closePipelineContext,
  createLogger,
  createPdfExtractor,
  createPipelineContext,
  documentPk,
  FairQueue,
  loadConfig,
  processChunk,
  publishIfPredecessorFinished,
  releaseSuccessor,
  resumeSplit,
  splitDocument,
  type Analyzer,
  type ChunkAnalysis,
  type Job,
  type PipelineContext,
  type StreamEvent,
} from '@docorch/core';
import { createIsolatedResources, generatePdf, type IsolatedResources } from '@docorch/testkit';
import { newJob, readStreamEvents } from './helpers.js';

const PAGES = 40;
const WINDOW = 8;

/** An analyzer that answers at once (the protocol, not the analysis, is under test). */
const instant: Analyzer = {
  name: 'instant',
  model: 'instant',
  promptVersion: 'test',
  async analyzeChunk(input) {
    return {
      summary: `pages ${input.pages.map((p) => p.page).join(',')}`,
      keyPoints: [],
      entities: [],
      sentiment: { label: 'neutral', score: 0 },
      textLength: input.pages.reduce((n, p) => n + p.text.length, 0),
      failedPages: [],
      usage: { inputTokens: 1, outputTokens: 1, modelCalls: 1 },
    } satisfies ChunkAnalysis;
  },
  async reduceSummaries(input) {
    return { summary: input.summaries.join(' '), keyPoints: [], usage: { inputTokens: 0, outputTokens: 0, modelCalls: 0 } };
  },
  async close() {},
};

describe('fair-share window protocol', () => {
  let resources: IsolatedResources;
  let ctx: PipelineContext;
  const tenantId = 'tfair';
  let pdf: Uint8Array;
  const limit = new FairQueue(4).run;

  beforeAll(async () => {
    resources = await createIsolatedResources({ prefix: 'fairp', shardCount: 2 });
    const config = loadConfig({ ...process.env, ...resources.names, LOG_LEVEL: 'silent', FAIR_SHARE_WINDOW: String(WINDOW) });
    const logger = createLogger({ service: 'fair-share-test', level: 'silent' });
    ctx = createPipelineContext(config, logger, { extractor: createPdfExtractor(config, { logger }), analyzer: instant });
    pdf = (await generatePdf({ pages: PAGES, seed: 3 })).bytes;
  });

  afterAll(async () => {
    if (ctx) await closePipelineContext(ctx);
    await resources?.cleanup();
  });

  async function splitJob(documentId: string): Promise<Job> {
    const job = newJob(tenantId, documentId, { pages: PAGES, pagesPerChunk: 1, sizeBytes: pdf.byteLength });
    await ctx.blobs.upload(ctx.config.UPLOADS_BUCKET, job.sourceKey, Buffer.from(pdf));
    await ctx.status.createJob(job);
    await splitDocument(ctx, { tenantId, documentId });
    return (await ctx.status.getJob(tenantId, documentId)) as Job;
  }

  /** The chunk.ready records of a document on the stream so far, in order. */
  async function records(documentId: string): Promise<Array<StreamEvent<'chunk.ready'>>> {
    return (await readStreamEvents(ctx.aws, ctx.config.STREAM_NAME)).filter(
      (e): e is StreamEvent<'chunk.ready'> => e.type === 'chunk.ready' && (e as StreamEvent<'chunk.ready'>).payload.documentId === documentId,
    );
  }

  function countByIndex(events: ReadonlyArray<StreamEvent<'chunk.ready'>>): Map<number, number> {
    const counts = new Map<number, number>();
    for (const e of events) counts.set(e.payload.chunkIndex, (counts.get(e.payload.chunkIndex) ?? 0) + 1);
    return counts;
  }

  const run = (event: StreamEvent<'chunk.ready'>) => processChunk(ctx, event, { workerId: 'w-test', limit, claimTimeoutMs: 2_000 });

  it('publishes only the first window and marks the other inputs ready', async () => {
    const job = await splitJob('doc-window');
    expect(job.window).toBe(WINDOW);
    expect(job.chunksTotal).toBe(PAGES);
    const published = countByIndex(await records('doc-window'));
    expect([...published.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: WINDOW }, (_, i) => i));
    const rows = await ctx.status.listChunks(tenantId, 'doc-window');
    expect(rows.filter((r) => r.index >= WINDOW).every((r) => r.inputReady === true)).toBe(true);
    const events = await records('doc-window');
    expect(events.every((e) => e.payload.window === WINDOW && e.payload.weight === 1)).toBe(true);
  });

  it('a finished chunk publishes its successor once; a redelivery after a lost publish publishes it', async () => {
    const documentId = 'doc-successor';
    await splitJob(documentId);
    const first = (await records(documentId)).find((e) => e.payload.chunkIndex === 0) as StreamEvent<'chunk.ready'>;
    expect(await run(first)).toBe('succeeded');
    let counts = countByIndex(await records(documentId));
    expect(counts.get(WINDOW)).toBe(1);
    expect((await ctx.status.getChunk(tenantId, documentId, 0))?.nextReleased).toBe(true);
    // A redelivery of the same record publishes nothing more.
    expect(await run(first)).toBe('skipped');
    expect(countByIndex(await records(documentId)).get(WINDOW)).toBe(1);

    // Chunk 1 finished and counted by a worker that died before publishing chunk 1 + WINDOW.
    const claim = await ctx.status.claimChunk(tenantId, documentId, 1, 'w-dead', 1);
    expect(claim.kind).toBe('claimed');
    const row = claim.kind === 'claimed' ? claim.row : undefined;
    await ctx.status.completeChunk(tenantId, documentId, 1, { owner: 'w-dead', counter: row?.claimCounter ?? 0 }, { status: 'succeeded' }, undefined, 1);
    counts = countByIndex(await records(documentId));
    expect(counts.get(1 + WINDOW)).toBeUndefined();
    const second = (await records(documentId)).find((e) => e.payload.chunkIndex === 1) as StreamEvent<'chunk.ready'>;
    expect(await run(second)).toBe('skipped');
    expect(countByIndex(await records(documentId)).get(1 + WINDOW)).toBe(1);
    expect(await run(second)).toBe('skipped');
    expect(countByIndex(await records(documentId)).get(1 + WINDOW)).toBe(1);
  });

  it('the handshake: a successor whose input was not ready when its predecessor finished is published by the splitter half', async () => {
    const documentId = 'doc-handshake';
    const job = await splitJob(documentId);
    // As if the splitter had not written chunk 2 + WINDOW's input yet.
    const late = 2 + WINDOW;
    await ctx.aws.doc.send(
      new UpdateCommand({ TableName: ctx.config.STATUS_TABLE, Key: { pk: documentPk(tenantId, documentId), sk: chunkSk(late) }, UpdateExpression: 'REMOVE inputReady' }),
    );
    const event = (await records(documentId)).find((e) => e.payload.chunkIndex === 2) as StreamEvent<'chunk.ready'>;
    expect(await run(event)).toBe('succeeded');
    expect(countByIndex(await records(documentId)).get(late)).toBeUndefined(); // not ready: not published
    // The splitter's half: mark ready, then look at the predecessor (finished): publish.
    await ctx.status.markInputsReady(tenantId, documentId, [late]);
    expect(await publishIfPredecessorFinished(ctx, job, [late])).toBe(1);
    expect(countByIndex(await records(documentId)).get(late)).toBe(1);
    // Finisher and splitter both seeing each other publish a duplicate at worst, never nothing.
    await releaseSuccessor(ctx, event.payload, { nextReleased: false });
    expect(countByIndex(await records(documentId)).get(late)).toBeLessThanOrEqual(2);
  });

  it('a resumed split publishes exactly the released pending chunks', async () => {
    const documentId = 'doc-resume';
    const job = await splitJob(documentId);
    for (const index of [0, 3]) {
      const e = (await records(documentId)).find((r) => r.payload.chunkIndex === index) as StreamEvent<'chunk.ready'>;
      await run(e);
    }
    const before = countByIndex(await records(documentId));
    const published = await resumeSplit(ctx, (await ctx.status.getJob(tenantId, documentId)) as Job);
    // Pending and released: the first window less the two finished, plus their two successors.
    expect(published).toBe(WINDOW - 2 + 2);
    const after = countByIndex(await records(documentId));
    const added = [...after.entries()].filter(([i, n]) => n > (before.get(i) ?? 0)).map(([i]) => i).sort((a, b) => a - b);
    expect(added).toEqual([1, 2, 4, 5, 6, 7, WINDOW, 3 + WINDOW]);
    expect(job.window).toBe(WINDOW);
  });

  it('driving the records completes every chunk: nothing is left behind', async () => {
    const documentId = 'doc-drive';
    await splitJob(documentId);
    const done = new Set<string>();
    for (let round = 0; round < PAGES * 2; round++) {
      const pending = (await records(documentId)).filter((e) => !done.has(e.id));
      if (pending.length === 0) break;
      await Promise.all(pending.map(async (e) => {
        done.add(e.id);
        await run(e);
      }));
    }
    const job = await ctx.status.getJob(tenantId, documentId);
    expect(job?.chunksSucceeded).toBe(PAGES);
    const counts = countByIndex(await records(documentId));
    expect(counts.size).toBe(PAGES);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
  });
});
