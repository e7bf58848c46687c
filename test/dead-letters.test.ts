/**
 * Dead letters and the work they hold (issue 10).
 *
 * 1. With faults injected by SDK middleware on the worker's real emulator connections (this
 *    process runs the worker service; the API and the aggregator are child processes):
 *    - a split whose S3 reads of the upload fail, and one whose DynamoDB commit fails, until their
 *      records are dead-lettered: each job is held, then failed with its error by the reconciler;
 *    - a poison chunk record (its claim refused every time) dead-lettered after three handler
 *      attempts: the chunk is held, then counted failed once by the reconciler, and the document
 *      completes with errors;
 *    - a document past DOCUMENT_DEADLINE_MS is failed with DEADLINE_EXCEEDED.
 *    Each reaches a terminal state within RECONCILE_STALE_MS plus one sweep of its last progress.
 * 2. As a new user meets them: a chunk the model keeps failing is dead-lettered, listed by the
 *    `docorch dead-letters` command line, replayed once the fault is cleared, and the document completes.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  closePipelineContext,
  createLogger,
  createPdfExtractor,
  createPipelineContext,
  deadLetterId,
  loadConfig,
  reconcileJob,
  type Job,
  type PipelineContext,
} from '@docorch/core';
import { generatePdf, startFakeGemini, startPipeline, type FakeGemini, type Pipeline } from '@docorch/testkit';
import { createWorkerService, type WorkerService } from '../services/worker/src/service.js';
import { docorch, getResult, newJob, submitGenerated, waitFor, waitForTerminal } from './helpers.js';

const STALE_MS = 3_000;
const INTERVAL_MS = 500;
const TERMINAL = new Set(['completed', 'completed_with_errors', 'failed', 'cancelled']);

type Fault = (command: string, input: Record<string, unknown>) => Error | undefined;

/** SDK middleware: every call is offered to the active faults; the first that returns an error fails the call. */
function injectFaults(client: { middlewareStack: { add: (...args: never[]) => void } }, faults: Fault[]): void {
  const mw = (next: (args: unknown) => Promise<unknown>, context: { commandName?: string }) => async (args: unknown) => {
    const input = ((args as { input?: Record<string, unknown> }).input ?? {}) as Record<string, unknown>;
    for (const fault of faults) {
      const err = fault(context.commandName ?? '', input);
      if (err) throw err;
    }
    return next(args);
  };
  (client.middlewareStack.add as (m: unknown, o: unknown) => void)(mw, { step: 'initialize', name: 'testFaults' });
}

const s3Error = () =>
  Object.assign(new Error('We encountered an internal error. Please try again.'), { name: 'InternalError', $fault: 'server', $metadata: { httpStatusCode: 500 } });
const ddbThrottle = () =>
  Object.assign(new Error('The level of configured provisioned throughput for the table was exceeded.'), {
    name: 'ProvisionedThroughputExceededException',
    $fault: 'client',
    $retryable: { throttling: true },
    $metadata: { httpStatusCode: 400 },
  });
const poison = () => Object.assign(new Error('Invalid UpdateExpression (injected poison)'), { name: 'ValidationException', $fault: 'client', $metadata: { httpStatusCode: 400 } });

describe('dead-lettered work is held, then finished by the reconciler', () => {
  let pipeline: Pipeline;
  let ctx: PipelineContext;
  let service: WorkerService;
  const faults: Fault[] = [];

  beforeAll(async () => {
    pipeline = await startPipeline({
      workers: 0,
      shards: 2,
      prefix: 'deadletter',
      env: { RECONCILE_STALE_MS: String(STALE_MS), RECONCILE_INTERVAL_MS: String(INTERVAL_MS), LEASE_FAILOVER_MS: '3000', CHUNK_CLAIM_TIMEOUT_MS: '2000' },
    });
    const config = loadConfig({ ...process.env, ...pipeline.env, WORKER_PORT: '0' });
    ctx = createPipelineContext(config, createLogger({ service: 'worker', level: 'silent' }), { extractor: createPdfExtractor(config) });
    injectFaults(ctx.aws.s3 as never, faults);
    injectFaults(ctx.aws.doc as never, faults);
    service = createWorkerService(ctx, { workerId: 'faulty-worker' });
    await service.listen(0);
    await service.worker.run();
    service.reconciler.start();
  }, 120_000);

  afterAll(async () => {
    faults.length = 0;
    await service?.close();
    if (ctx) await closePipelineContext(ctx);
    await pipeline?.stop();
  });

  /** Polls the job row until terminal; returns it and when it got there. */
  async function terminal(documentId: string, timeoutMs: number): Promise<{ job: Job; at: number }> {
    const job = await waitFor(
      `document ${documentId} terminal`,
      async () => {
        const j = await ctx.status.getJob(pipeline.tenantId, documentId);
        return j && TERMINAL.has(j.status) ? j : undefined;
      },
      timeoutMs,
      50,
    );
    return { job, at: Date.now() };
  }

  it('a split whose S3 reads fail until it is dead-lettered: held, then failed with UPSTREAM_UNAVAILABLE', { timeout: 90_000 }, async () => {
    const fault: Fault = (command, input) => (command === 'GetObjectCommand' && String(input.Key).endsWith('/source.pdf') ? s3Error() : undefined);
    faults.push(fault);
    try {
      const id = await submitGenerated(pipeline, 6, { pagesPerChunk: '2' });
      const held = await waitFor('the split dead-lettered and held', async () => (await ctx.status.getJob(pipeline.tenantId, id))?.heldBy, 60_000, 50);
      const heldAt = Date.now();
      const { job, at } = await terminal(id, 60_000);
      console.log(`split, S3 errors: terminal ${at - heldAt} ms after its record was dead-lettered (stale ${STALE_MS} + sweep ${INTERVAL_MS})`);
      expect(job.status).toBe('failed');
      expect(job.error?.code).toBe('UPSTREAM_UNAVAILABLE');
      expect(at - heldAt).toBeLessThanOrEqual(STALE_MS + INTERVAL_MS + 1_000);
      // The letter that held the job is finished as failed; a later letter of the same split (the
      // reconciler re-published the stale split while its retries ran) holds nothing.
      const letters = await ctx.deadLetters.list(`${pipeline.tenantId}#${id}`);
      expect(letters.filter((l) => l.sk === held).map((l) => [l.type, l.disposition])).toEqual([['document.submitted', 'failed']]);
      expect(letters.filter((l) => l.sk !== held).every((l) => l.disposition === 'unheld')).toBe(true);
    } finally {
      faults.splice(faults.indexOf(fault), 1);
    }
  });

  it('a split whose DynamoDB commit is throttled until it is dead-lettered: held, then failed, nothing counted', { timeout: 90_000 }, async () => {
    const fault: Fault = (command, input) => (/TransactWrite/.test(command) && JSON.stringify(input).includes('"chunksTotal"') ? ddbThrottle() : undefined);
    faults.push(fault);
    try {
      const id = await submitGenerated(pipeline, 7, { pagesPerChunk: '2' });
      await waitFor('the split dead-lettered and held', async () => (await ctx.status.getJob(pipeline.tenantId, id))?.heldBy, 60_000, 50);
      const heldAt = Date.now();
      const { job, at } = await terminal(id, 60_000);
      expect(job.status).toBe('failed');
      expect(job.error?.code).toBe('UPSTREAM_UNAVAILABLE');
      expect(job.chunksSucceeded + job.chunksFailed).toBe(0);
      expect(at - heldAt).toBeLessThanOrEqual(STALE_MS + INTERVAL_MS + 1_000);
      expect(await ctx.status.listChunks(pipeline.tenantId, id)).toEqual([]);
    } finally {
      faults.splice(faults.indexOf(fault), 1);
    }
  });

  it('a poison chunk record dead-lettered after three handler attempts: held, then counted failed once; the document completes with errors', { timeout: 90_000 }, async () => {
    let refused = 0;
    const fault: Fault = (command, input) => {
      const text = JSON.stringify(input);
      if (/TransactWrite/.test(command) && text.includes('attempt = :attempt') && text.includes('CHUNK#000002')) {
        refused++;
        return poison();
      }
      return undefined;
    };
    faults.push(fault);
    try {
      const id = await submitGenerated(pipeline, 12, { pagesPerChunk: '2' });
      // The document's last progress: its other five chunks counted (the held one never will be).
      const stalledAt = await waitFor('every other chunk counted', async () => ((await ctx.status.getJob(pipeline.tenantId, id))?.chunksSucceeded === 5 ? Date.now() : undefined), 60_000, 50);
      const { job, at } = await terminal(id, 60_000);
      console.log(`poison chunk: claim refused ${refused} times; terminal ${at - stalledAt} ms after the document's last progress (stale ${STALE_MS} + sweep ${INTERVAL_MS})`);
      expect(refused).toBe(3); // the stream worker's three handler attempts, then the dead letter
      expect(job.status).toBe('completed_with_errors');
      expect(job.chunksTotal).toBe(6);
      expect(job.chunksSucceeded).toBe(5);
      expect(job.chunksFailed).toBe(1);
      expect(job.pagesDone).toBe(12);
      expect(at - stalledAt).toBeLessThanOrEqual(STALE_MS + INTERVAL_MS + 1_000);
      const result = await getResult(pipeline, id);
      expect(result.failedPages.map((f: { page: number }) => f.page)).toEqual([5, 6]);
      const letters = await ctx.deadLetters.list(`${pipeline.tenantId}#${id}`);
      expect(letters.map((l) => [l.type, l.chunkIndex, l.disposition])).toEqual([['chunk.ready', 2, 'failed']]);
    } finally {
      faults.splice(faults.indexOf(fault), 1);
    }
  });

  it('a document past its deadline is failed with DEADLINE_EXCEEDED', { timeout: 30_000 }, async () => {
    const old = new Date(Date.now() - 2 * ctx.config.DOCUMENT_DEADLINE_MS).toISOString();
    const job = newJob(pipeline.tenantId, 'deadline-doc', { pages: 3, createdAt: old, updatedAt: old, status: 'splitting' });
    await ctx.status.createJob(job);
    expect(await reconcileJob(ctx, pipeline.tenantId, 'deadline-doc', { owner: 'test', staleMs: STALE_MS })).toBe('expired');
    const after = await ctx.status.getJob(pipeline.tenantId, 'deadline-doc');
    expect(after?.status).toBe('failed');
    expect(after?.error?.code).toBe('DEADLINE_EXCEEDED');
  });
});

describe('dead letters as a user meets them: list, replay after the fault is cleared, the document completes', () => {
  let pipeline: Pipeline;
  let fake: FakeGemini;
  let dir: string;
  let stackFile: string;

  beforeAll(async () => {
    fake = await startFakeGemini({ latencyMs: 50 });
    pipeline = await startPipeline({
      workers: 1,
      shards: 1,
      prefix: 'dlcli',
      env: {
        ANALYZER: 'gemini',
        GEMINI_API_KEY: 'test',
        GEMINI_BASE_URL: fake.url,
        GEMINI_MAX_RETRIES: '0',
        CHUNK_MAX_ATTEMPTS: '2',
        // Long enough for the operator: the reconciler must not finish the held chunk first.
        RECONCILE_STALE_MS: '120000',
        RECONCILE_INTERVAL_MS: '1000',
      },
    });
    dir = await mkdtemp(path.join(tmpdir(), 'docorch-dl-'));
    stackFile = path.join(dir, 'stack.json');
    await writeFile(stackFile, JSON.stringify({ env: pipeline.env }));
  }, 120_000);

  afterAll(async () => {
    await pipeline?.stop();
    await fake?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('a chunk failing at the model until dead-lettered is listed, replayed after the fault is cleared, and the document completes', { timeout: 120_000 }, async () => {
    let faulty = true;
    fake.enqueueFor((r) => faulty && r.pages.includes(5), ...Array.from({ length: 200 }, () => 'serverError' as const));
    const pdf = await generatePdf({ pages: 10, seed: 10 });
    const form = new FormData();
    form.set('mode', 'async');
    form.set('pagesPerChunk', '2');
    form.set('file', new Blob([pdf.bytes], { type: 'application/pdf' }), 'ten.pdf');
    const res = await fetch(`${pipeline.api.baseUrl}/v1/documents`, { method: 'POST', body: form, headers: { authorization: `Bearer ${pipeline.apiKey}` } });
    const { id } = (await res.json()) as { id: string };

    const listed = await waitFor(
      'the chunk dead-lettered and listed',
      async () => {
        const run = await docorch(['dead-letters', 'list', '--json'], stackFile);
        if (run.code !== 0) throw new Error(`list failed: ${run.err}`);
        const letters = JSON.parse(run.out) as Array<{ id: string; documentId: string; chunkIndex: number; disposition: string; code: string }>;
        return letters.find((l) => l.documentId === id);
      },
      60_000,
      500,
    );
    expect(listed).toMatchObject({ chunkIndex: 2, disposition: 'held', code: 'UPSTREAM_UNAVAILABLE' });
    const table = await docorch(['dead-letters', 'list'], stackFile);
    expect(table.out).toContain(listed.id);
    expect(table.out).toContain('held');
    const shown = await docorch(['dead-letters', 'show', listed.id], stackFile);
    expect(shown.code).toBe(0);
    expect(shown.out).toContain('"type": "chunk.ready"');
    // The document waits, open, with its other chunks done.
    const waiting = await fetch(`${pipeline.api.baseUrl}/v1/documents/${id}`, { headers: { authorization: `Bearer ${pipeline.apiKey}` } }).then((r) => r.json() as Promise<{ status: string; progress: { chunksSucceeded: number } }>);
    expect(waiting.status).toBe('processing');
    // A held letter cannot be purged.
    expect((await docorch(['dead-letters', 'purge', listed.id], stackFile)).code).toBe(1);

    faulty = false;
    const replay = await docorch(['dead-letters', 'replay', listed.id], stackFile);
    expect(replay.code, replay.err).toBe(0);
    expect(replay.out).toContain('chunk 2');
    const final = await waitForTerminal(pipeline, id, 60_000);
    expect(final.status).toBe('completed');
    expect(final.progress).toMatchObject({ chunksTotal: 5, chunksSucceeded: 5, chunksFailed: 0 });
    // Replayed once: a second replay is refused; the letter is listed with --all only, then purged.
    expect((await docorch(['dead-letters', 'replay', listed.id], stackFile)).code).toBe(1);
    expect((await docorch(['dead-letters', 'list'], stackFile)).out).not.toContain(listed.id);
    const all = JSON.parse((await docorch(['dead-letters', 'list', '--all', '--json'], stackFile)).out) as Array<{ id: string; disposition: string }>;
    expect(all.find((l) => l.id === listed.id)?.disposition).toBe('replayed');
    expect((await docorch(['dead-letters', 'purge', listed.id], stackFile)).code).toBe(0);
    expect(deadLetterId({ pk: `${pipeline.tenantId}#${id}`, sk: 'x' })).toMatch(/^dl_/);
  });
});
