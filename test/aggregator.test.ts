/**
 * The aggregator's Lambda handler (services/aggregator createStreamHandler), called directly with
 * DynamoDB-stream events as Lambda's event source mapping delivers them: the real records of the
 * status table's stream, for jobs set up through the core APIs on isolated resources (job row,
 * chunk rows committed with the job, chunk results in S3, each chunk claimed and completed).
 *
 * - The same events delivered twice give one assembly and one final result.
 * - The same events delivered to two invocations in parallel give one assembly; the loser
 *   reports the record for a retry, and the retry finds the job finished.
 * - A poison record ends in batchItemFailures and does not block the rest of its batch.
 * - An invocation that fails after its claim (its result write refused by S3) gives the claim
 *   back; Lambda's retry of the batch, with a new request id, assembles at once (issue 10).
 *
 * An assembly is counted three ways: reduce calls of a spy analyzer, PutObjects of the document
 * result, and the job row's transitions into `assembling` and `completed` in the stream history.
 */
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
// @ts-expect-error: yauzl ships no types
import yauzl from 'yauzl';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  chunkResultKey,
  createLogger,
  createPipelineContext,
  closePipelineContext,
  loadConfig,
  planChunks,
  resultKey,
  unavailableExtractor,
  type Analyzer,
  type ChunkResult,
  type Job,
  type PipelineContext,
} from '@docorch/core';
import { createIsolatedResources, type IsolatedResources } from '@docorch/testkit';
import { createStreamHandler } from '../services/aggregator/src/handler.js';
import { newJob, readTableWrites, type TableWrite } from './helpers.js';
// @ts-expect-error: a plain .mjs build script, typed by its use here
import { buildLambda, lambdaNode } from '../scripts/build-lambda.mjs';

/** Extracts a zip (what Lambda does with the deployment package) into `dir`. */
async function unzip(zipPath: string, dir: string): Promise<string[]> {
  const zip = await yauzl.openPromise(zipPath);
  const names: string[] = [];
  try {
    for await (const entry of zip.eachEntry() as AsyncIterable<{ fileName: string }>) {
      const target = path.join(dir, entry.fileName);
      await mkdir(path.dirname(target), { recursive: true });
      await pipeline(await zip.openReadStreamPromise(entry), createWriteStream(target));
      names.push(entry.fileName);
    }
  } finally {
    zip.close();
  }
  return names;
}

/** The event shape Lambda's DynamoDB Streams event source mapping delivers. */
type DynamoDBStreamEvent = Parameters<ReturnType<typeof createStreamHandler>>[0];
type DynamoDBRecord = DynamoDBStreamEvent['Records'][number];

const CHUNKS = 4;
const PAGES_PER_CHUNK = 5;

/** An analyzer whose reduce is slow (so parallel invocations overlap) and counted. */
function spyAnalyzer(): Analyzer & { reduces: number } {
  const analyzer = {
    name: 'spy/analyzer',
    reduces: 0,
    analyzeChunk: () => Promise.reject(new Error('not used by the aggregator')),
    async reduceSummaries(input: { summaries: string[]; keyPoints: string[]; maxKeyPoints: number }) {
      analyzer.reduces++;
      await new Promise((r) => setTimeout(r, 400));
      return {
        summary: input.summaries.join(' '),
        keyPoints: input.keyPoints.slice(0, input.maxKeyPoints),
        usage: { inputTokens: 1, outputTokens: 1, modelCalls: 1 },
      };
    },
    close: () => Promise.resolve(),
  };
  return analyzer;
}

/** The Lambda event record of a stream record (what the event source mapping hands the function). */
function toLambdaRecord(w: TableWrite): DynamoDBRecord {
  return {
    eventID: w.raw.eventID,
    eventName: w.raw.eventName as DynamoDBRecord['eventName'],
    eventVersion: w.raw.eventVersion,
    eventSource: 'aws:dynamodb',
    awsRegion: w.raw.awsRegion,
    dynamodb: w.raw.dynamodb as DynamoDBRecord['dynamodb'],
  };
}

describe('aggregator handler: duplicates, parallel invocations, poison records', () => {
  let resources: IsolatedResources;
  let ctx: PipelineContext;
  let analyzer: ReturnType<typeof spyAnalyzer>;
  const tenantId = 'tagg';

  beforeAll(async () => {
    resources = await createIsolatedResources({ prefix: 'aggregator', shardCount: 1 });
    const config = loadConfig({ ...process.env, ...resources.names, LOG_LEVEL: 'silent' });
    analyzer = spyAnalyzer();
    ctx = createPipelineContext(config, createLogger({ service: 'aggregator-test', level: 'silent' }), {
      extractor: unavailableExtractor('the aggregator does not parse PDFs'),
      analyzer,
    });
  });

  afterAll(async () => {
    if (ctx) await closePipelineContext(ctx);
    await resources?.cleanup();
  });

  /** A job whose chunks are all counted, through the same calls the splitter and workers make. */
  async function readyJob(documentId: string): Promise<void> {
    const pages = CHUNKS * PAGES_PER_CHUNK;
    const job = newJob(tenantId, documentId, { pages, pagesPerChunk: PAGES_PER_CHUNK });
    await ctx.status.createJob(job);
    const plan = planChunks(
      Array.from({ length: pages }, (_, i) => i + 1),
      PAGES_PER_CHUNK,
    );
    await ctx.status.commitChunks(tenantId, documentId, plan, { chunksTotal: plan.length }, 'queued');
    for (const chunk of plan) {
      const result: ChunkResult = {
        index: chunk.index,
        pages: [chunk.pages[0] as number, chunk.pages[chunk.pages.length - 1] as number],
        status: 'succeeded',
        summary: `Summary of chunk ${chunk.index}.`,
        keyPoints: [`Point ${chunk.index}`],
        entities: [{ text: 'Acme Corporation', type: 'ORGANIZATION', count: 1, pages: [chunk.pages[0] as number] }],
        sentiment: { label: 'positive', score: 0.5 },
        textLength: 100,
        failedPages: [],
        usage: { inputTokens: 1, outputTokens: 1, modelCalls: 1 },
      };
      await ctx.blobs.putJson(ctx.config.RESULTS_BUCKET, chunkResultKey(tenantId, documentId, chunk.index), result);
      const claim = await ctx.status.claimChunk(tenantId, documentId, chunk.index, 'w-test', 1);
      if (claim.kind !== 'claimed') throw new Error(`could not claim chunk ${chunk.index}: ${claim.kind}`);
      const counted = await ctx.status.completeChunk(tenantId, documentId, chunk.index, { owner: 'w-test', counter: claim.row.claimCounter }, { status: 'succeeded' });
      if (!counted) throw new Error(`chunk ${chunk.index} not counted`);
    }
  }

  /** The document's records in the status table's stream, in order, as Lambda events. */
  async function streamEvent(documentId: string): Promise<{ event: DynamoDBStreamEvent; history: TableWrite[] }> {
    const writes = await readTableWrites(ctx.aws, ctx.config, ctx.config.STATUS_TABLE);
    const mine = writes.filter((w) => (w.new ?? w.old)?.pk === `${tenantId}#${documentId}`);
    return { event: { Records: mine.map(toLambdaRecord) }, history: mine };
  }

  /** Transitions of the job row into `status` in the stream history. */
  function transitionsInto(history: TableWrite[], status: string): number {
    return history.filter((w) => w.new?.sk === 'JOB' && w.new.status === status && w.old?.status !== status).length;
  }

  /** PutObjects of the document's final result among the calls of a putJson spy. */
  function resultPuts(calls: ReadonlyArray<readonly unknown[]>, documentId: string): number {
    return calls.filter((call) => call[1] === resultKey(tenantId, documentId)).length;
  }

  it('assembles once when the same events are delivered twice', { timeout: 60_000 }, async () => {
    const documentId = 'doc-dup';
    await readyJob(documentId);
    const { event } = await streamEvent(documentId);
    expect(event.Records.length).toBeGreaterThan(CHUNKS);
    const handler = createStreamHandler(ctx);
    const puts = vi.spyOn(ctx.blobs, 'putJson');
    analyzer.reduces = 0;

    const first = await handler(event, { awsRequestId: 'req-1' });
    const second = await handler(event, { awsRequestId: 'req-2' });
    expect(first.batchItemFailures).toEqual([]);
    expect(second.batchItemFailures).toEqual([]);

    const job = await ctx.status.getJob(tenantId, documentId);
    expect(job?.status).toBe('completed');
    // The claim's owner derives from the ready job row, not the request id (claims/assembly-claim.ts).
    expect(job?.assemblyOwner).toMatch(/^asm-[0-9a-f]{24}$/);
    expect(resultPuts(puts.mock.calls, documentId)).toBe(1);
    expect(analyzer.reduces).toBe(1);
    const { history } = await streamEvent(documentId);
    expect(transitionsInto(history, 'assembling')).toBe(1);
    expect(transitionsInto(history, 'completed')).toBe(1);
    const stored = await ctx.blobs.getJson<{ status: string; chunks: unknown[] }>(ctx.config.RESULTS_BUCKET, resultKey(tenantId, documentId));
    expect(stored?.status).toBe('completed');
    expect(stored?.chunks).toHaveLength(CHUNKS);
    puts.mockRestore();
  });

  it('assembles once when two invocations get the same events in parallel', { timeout: 60_000 }, async () => {
    const documentId = 'doc-par';
    await readyJob(documentId);
    const { event } = await streamEvent(documentId);
    const handler = createStreamHandler(ctx);
    const puts = vi.spyOn(ctx.blobs, 'putJson');
    analyzer.reduces = 0;

    const [a, b] = await Promise.all([handler(event, { awsRequestId: 'par-1' }), handler(event, { awsRequestId: 'par-2' })]);
    // The loser saw a fresh claim of the other invocation and asks for a retry of that record.
    const failures = [...a.batchItemFailures, ...b.batchItemFailures];
    expect(failures.length).toBeLessThanOrEqual(1);
    // Lambda retries the batch from the reported record: the job is finished by then.
    const retry = await handler(event, { awsRequestId: 'par-retry' });
    expect(retry.batchItemFailures).toEqual([]);

    const job = await ctx.status.getJob(tenantId, documentId);
    expect(job?.status).toBe('completed');
    expect(job?.assemblyOwner).toMatch(/^asm-[0-9a-f]{24}$/);
    expect(resultPuts(puts.mock.calls, documentId)).toBe(1);
    expect(analyzer.reduces).toBe(1);
    const { history } = await streamEvent(documentId);
    expect(transitionsInto(history, 'assembling')).toBe(1);
    expect(transitionsInto(history, 'completed')).toBe(1);
    console.log(`aggregator parallel: ${JSON.stringify({ failuresReported: failures.length, owner: job?.assemblyOwner })}`);
    puts.mockRestore();
  });

  it('reports a poison record in batchItemFailures and handles the rest of the batch', { timeout: 60_000 }, async () => {
    const documentId = 'doc-poison';
    await readyJob(documentId);
    const { event } = await streamEvent(documentId);
    const handler = createStreamHandler(ctx);
    const template = event.Records[event.Records.length - 1] as DynamoDBRecord;
    // A JOB row without its ids, and an image DynamoDB could never have produced.
    const noIds: DynamoDBRecord = {
      ...template,
      eventID: 'poison-1',
      dynamodb: { ...template.dynamodb, SequenceNumber: '1', NewImage: { pk: { S: 'x' }, sk: { S: 'JOB' }, status: { S: 'processing' } } },
    };
    const garbled: DynamoDBRecord = {
      ...template,
      eventID: 'poison-2',
      dynamodb: { ...template.dynamodb, SequenceNumber: '2', NewImage: { pk: { S: 'y' }, sk: { S: 'JOB' }, status: { BOGUS: 'x' } as never } },
    };
    analyzer.reduces = 0;
    // Poison first: nothing after it may be held up.
    const out = await handler({ Records: [noIds, garbled, ...event.Records] }, { awsRequestId: 'poison-req' });
    expect(out.batchItemFailures.map((f) => f.itemIdentifier).sort()).toEqual(['1', '2']);
    const job = await ctx.status.getJob(tenantId, documentId);
    expect(job?.status).toBe('completed');
    expect(analyzer.reduces).toBe(1);
  });
  it('an assembly failing after its claim is retried at once by a new request id, and counted once', { timeout: 60_000 }, async () => {
    const documentId = 'doc-retry';
    await readyJob(documentId);
    const { event } = await streamEvent(documentId);
    const handler = createStreamHandler(ctx);
    analyzer.reduces = 0;
    // The first invocation's write of the final result fails (S3 refuses it) after the claim.
    let refused = 0;
    const failResult = (next: (args: unknown) => Promise<unknown>) => async (args: unknown) => {
      const input = (args as { input?: { Key?: string } }).input;
      if (refused === 0 && input?.Key === resultKey(tenantId, documentId)) {
        refused++;
        throw Object.assign(new Error('We encountered an internal error. Please try again.'), { name: 'InternalError', $fault: 'server', $metadata: { httpStatusCode: 500 } });
      }
      return next(args);
    };
    ctx.aws.s3.middlewareStack.add(failResult as never, { step: 'initialize', name: 'failResultOnce' });
    try {
      const first = await handler(event, { awsRequestId: 'req-a' });
      expect(first.batchItemFailures.length).toBe(1);
      expect(refused).toBe(1);
      const between = await ctx.status.getJob(tenantId, documentId);
      expect(between?.status).toBe('assembling');
      // Released: no owner, so no one waits for ASSEMBLY_CLAIM_TIMEOUT_MS (was: 15 minutes).
      expect(between?.assemblyOwner).toBeUndefined();
      const t0 = Date.now();
      const retry = await handler(event, { awsRequestId: 'req-b' });
      expect(retry.batchItemFailures).toEqual([]);
      const job = await ctx.status.getJob(tenantId, documentId);
      expect(job?.status).toBe('completed');
      expect(job?.chunksSucceeded).toBe(CHUNKS);
      expect(Date.now() - t0).toBeLessThan(ctx.config.ASSEMBLY_CLAIM_TIMEOUT_MS);
      const { history } = await streamEvent(documentId);
      expect(transitionsInto(history, 'assembling')).toBe(1);
      expect(transitionsInto(history, 'completed')).toBe(1);
    } finally {
      ctx.aws.s3.middlewareStack.remove('failResultOnce');
    }
  });

  it('the deployed zip, on the Lambda runtime\'s Node 22, exports the handler Terraform names and assembles a ready job', { timeout: 180_000 }, async () => {
    const built = (await buildLambda()) as { zipPath: string; manifest: { runtime: string; node: string; handlers: string[] } };
    const variables = await readFile(path.join(import.meta.dirname, '../infra/terraform/variables.tf'), 'utf8');
    const handler = /variable "aggregator_handler" \{[\s\S]*?default\s*=\s*"([^"]+)"/.exec(variables)?.[1] as string;
    expect(handler).toBe('lambda.handler');
    expect(built.manifest).toMatchObject({ runtime: 'nodejs22.x', handlers: [handler] });
    // The old default names nothing the bundle exports (Terraform's plan refuses it: plan.tftest.hcl).
    expect(built.manifest.handlers).not.toContain('dist/handler.handler');

    const dir = await mkdtemp(path.join(tmpdir(), 'docorch-lambda-'));
    try {
      const files = await unzip(built.zipPath, dir);
      expect(files).toEqual(expect.arrayContaining(['lambda.js', 'analyze-thread.js', 'package.json']));
      const documentId = 'doc-lambda-node22';
      await readyJob(documentId);
      const { event } = await streamEvent(documentId);
      await writeFile(path.join(dir, 'event.json'), JSON.stringify(event));
      const [file, exportName] = handler.split('.') as [string, string];
      // What the nodejs22.x runtime does: import the handler's module and call the export.
      const driver = `const m = await import(${JSON.stringify(path.join(dir, `${file}.js`))});
        const event = JSON.parse(await (await import('node:fs/promises')).readFile(${JSON.stringify(path.join(dir, 'event.json'))}, 'utf8'));
        const out = await m[${JSON.stringify(exportName)}](event, { awsRequestId: 'lambda-req-1' });
        process.stdout.write('RESULT ' + JSON.stringify({ node: process.version, out }) + '\\n');
        process.exit(0);`;
      const child = spawn(lambdaNode() as string, ['--input-type=module', '-e', driver], {
        env: { ...process.env, ...resources.names, LOG_LEVEL: 'silent', ANALYZER: 'local', NODE_OPTIONS: '' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr.on('data', (d: Buffer) => (output += d.toString()));
      const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
      expect(code, output).toBe(0);
      const line = output.split('\n').find((l) => l.startsWith('RESULT ')) as string;
      const { node, out } = JSON.parse(line.slice('RESULT '.length)) as { node: string; out: { batchItemFailures: unknown[] } };
      expect(node).toMatch(/^v22\./);
      expect(out.batchItemFailures).toEqual([]);
      const job = await ctx.status.getJob(tenantId, documentId);
      expect(job?.status).toBe('completed');
      expect(job?.assemblyOwner).toMatch(/^asm-[0-9a-f]{24}$/);
      const result = await ctx.blobs.getJson<{ summary: string; chunks: unknown[] }>(ctx.config.RESULTS_BUCKET, resultKey(tenantId, documentId));
      expect(result?.chunks).toHaveLength(CHUNKS);
      expect(result?.summary.length).toBeGreaterThan(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
