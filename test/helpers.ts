/** Helpers of the whole-system tests. */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { expect } from 'vitest';
import {
  DescribeStreamCommand,
  DynamoDBStreamsClient,
  GetRecordsCommand,
  GetShardIteratorCommand,
  type _Record as StreamRecord,
} from '@aws-sdk/client-dynamodb-streams';
import { DescribeTableCommand, UpdateTableCommand, type AttributeValue } from '@aws-sdk/client-dynamodb';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import {
  GetRecordsCommand as GetKinesisRecordsCommand,
  GetShardIteratorCommand as GetKinesisShardIteratorCommand,
  ListShardsCommand,
} from '@aws-sdk/client-kinesis';
import { createAwsClients, decodeEvent, loadConfig, StatusTable, type AwsClients, type Config, type Job, type StreamEvent } from '@docorch/core';
import {
  entryArgs,
  generatePdf,
  repoRoot,
  startFakeGemini,
  startPipeline,
  startService,
  type FakeGemini,
  type FakeGeminiRequest,
  type Pipeline,
  type ServiceProcess,
} from '@docorch/testkit';

/** What the API helpers need: the API's address and a tenant's key (a Pipeline is one). */
export interface ApiTarget {
  api: { baseUrl: string };
  apiKey: string;
}

/** Submits a generated PDF asynchronously; returns the document id. */
export async function submitGenerated(
  pipeline: ApiTarget,
  pages: number,
  fields: Record<string, string> = {},
): Promise<string> {
  const pdf = await generatePdf({ pages, seed: pages });
  const form = new FormData();
  form.set('mode', 'async');
  for (const [k, v] of Object.entries(fields)) form.set(k, v);
  form.set('file', new Blob([pdf.bytes], { type: 'application/pdf' }), `${pages}-pages.pdf`);
  const res = await fetch(`${pipeline.api.baseUrl}/v1/documents`, {
    method: 'POST',
    body: form,
    headers: { authorization: `Bearer ${pipeline.apiKey}` },
  });
  if (res.status !== 202) throw new Error(`submit answered ${res.status}: ${await res.text()}`);
  const body = (await res.json()) as { id: string };
  return body.id;
}

/** The public status view of a document. */
export interface StatusView {
  status: string;
  progress: { chunksTotal: number; chunksSucceeded: number; chunksFailed: number; percent: number };
  [k: string]: unknown;
}

export async function getStatus(pipeline: ApiTarget, id: string, wait = 0): Promise<StatusView> {
  const res = await fetch(`${pipeline.api.baseUrl}/v1/documents/${id}${wait ? `?wait=${wait}` : ''}`, {
    headers: { authorization: `Bearer ${pipeline.apiKey}` },
  });
  if (res.status !== 200) throw new Error(`status answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as StatusView;
}

export async function getResult(pipeline: ApiTarget, id: string): Promise<Record<string, any>> {
  const res = await fetch(`${pipeline.api.baseUrl}/v1/documents/${id}/result`, { headers: { authorization: `Bearer ${pipeline.apiKey}` } });
  if (res.status !== 200) throw new Error(`result answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as Record<string, any>;
}

const TERMINAL = new Set(['completed', 'completed_with_errors', 'failed', 'cancelled']);

/** Polls until the document is terminal, recording each observed status; fails after `timeoutMs`. */
export async function waitForTerminal(
  pipeline: ApiTarget,
  id: string,
  timeoutMs: number,
  onPoll?: (view: StatusView) => void,
): Promise<StatusView> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const view = await getStatus(pipeline, id);
    onPoll?.(view);
    if (TERMINAL.has(view.status)) return view;
    if (Date.now() > deadline) throw new Error(`document ${id} still ${view.status} after ${timeoutMs} ms: ${JSON.stringify(view.progress)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

// ---- fault-injection helpers -------------------------------------------------------------

/** Config and AWS clients for a test process talking to the pipeline's resources. */
export function pipelineClients(pipeline: Pipeline): { config: Config; aws: AwsClients } {
  const config = loadConfig({ ...process.env, ...pipeline.env });
  return { config, aws: createAwsClients(config) };
}

/**
 * Starts one worker process on the pipeline's resources with extra env (e.g. its own fake Gemini,
 * so the fake's request log tells which worker analysed what). The caller stops it.
 */
export function startWorkerProcess(pipeline: Pipeline, id: string, env: Record<string, string> = {}): Promise<ServiceProcess> {
  return startService({ service: 'worker', env: { ...pipeline.env, ...env, WORKER_ID: id }, portEnv: 'WORKER_PORT' });
}

/** A worker's /healthz view. */
export interface WorkerHealth {
  status: string;
  workerId: string;
  shards: string[];
  inFlight: number;
  /** Its analysis slots: running, waiting, and waiting and served per tenant (services/worker). */
  analyses: { running: number; waiting: number; waitingByTenant: Record<string, number>; servedByTenant: Record<string, number> };
}

/** A worker's /healthz answer. */
export async function workerHealth(worker: ServiceProcess): Promise<WorkerHealth> {
  const res = await fetch(`${worker.baseUrl}/healthz`, { signal: AbortSignal.timeout(2_000) });
  return (await res.json()) as WorkerHealth;
}

/** One gauge or counter value from a Prometheus text page (summed over label sets). */
export async function metricValue(worker: ServiceProcess, name: string): Promise<number> {
  const res = await fetch(`${worker.baseUrl}/metrics`, { signal: AbortSignal.timeout(2_000) });
  const text = await res.text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (m && m[1] === name) sum += Number(m[3]);
  }
  return sum;
}

/** Submits given PDF bytes asynchronously; returns the document id. */
export async function submitPdf(pipeline: ApiTarget, bytes: Uint8Array, fields: Record<string, string> = {}): Promise<string> {
  const form = new FormData();
  form.set('mode', 'async');
  for (const [k, v] of Object.entries(fields)) form.set(k, v);
  form.set('file', new Blob([bytes], { type: 'application/pdf' }), 'doc.pdf');
  const res = await fetch(`${pipeline.api.baseUrl}/v1/documents`, {
    method: 'POST',
    body: form,
    headers: { authorization: `Bearer ${pipeline.apiKey}` },
  });
  if (res.status !== 202) throw new Error(`submit answered ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { id: string }).id;
}

/** A row of the stream consumer's lease table (shard leases only). */
export interface LeaseRow {
  leaseKey: string;
  leaseOwner?: string;
  leaseCounter: number;
  checkpoint: string;
  ownerSwitchesSinceCheckpoint?: number;
  /** Set during a graceful hand-off (the previous owner). */
  checkpointOwner?: string;
}

/** Every shard lease (rows of the aggregator's poller, `ddbstream#...`, are left out). */
export async function scanLeases(aws: AwsClients, table: string): Promise<LeaseRow[]> {
  const rows: LeaseRow[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const out = await aws.doc.send(new ScanCommand({ TableName: table, ConsistentRead: true, ExclusiveStartKey: start }));
    for (const item of out.Items ?? []) if (String(item.leaseKey).startsWith('shardId-')) rows.push(item as unknown as LeaseRow);
    start = out.LastEvaluatedKey;
  } while (start);
  return rows.sort((a, b) => a.leaseKey.localeCompare(b.leaseKey));
}

/** One write of a table row, as the table's DynamoDB stream shows it (images unmarshalled). */
export interface TableWrite<T = Record<string, unknown>> {
  eventName: 'INSERT' | 'MODIFY' | 'REMOVE';
  sequenceNumber: string;
  old?: T;
  new?: T;
  /** The stream record as DynamoDB Streams returned it (marshalled images). */
  raw: StreamRecord;
}

/** One write of a lease row. */
export type LeaseWrite = TableWrite<LeaseRow> & { leaseKey: string };

/**
 * Turns on the lease table's DynamoDB stream (NEW_AND_OLD_IMAGES) so that every write of every
 * lease can be audited afterwards: a complete history, not a sample like polling.
 */
export async function enableLeaseStream(aws: AwsClients, table: string): Promise<void> {
  await aws.dynamodb.send(
    new UpdateTableCommand({ TableName: table, StreamSpecification: { StreamEnabled: true, StreamViewType: 'NEW_AND_OLD_IMAGES' } }),
  );
}

/**
 * Reads the whole history of a table's stream: shards parents first, so the writes of one item
 * come in the order they were made.
 */
export async function readTableWrites(aws: AwsClients, config: Config, table: string): Promise<TableWrite[]> {
  const desc = await aws.dynamodb.send(new DescribeTableCommand({ TableName: table }));
  const arn = desc.Table?.LatestStreamArn;
  if (!arn) throw new Error(`${table} has no stream`);
  const endpoint = config.DYNAMODB_STREAMS_ENDPOINT ?? config.DYNAMODB_ENDPOINT;
  const streams = new DynamoDBStreamsClient({ region: config.AWS_REGION, ...(endpoint ? { endpoint } : {}) });
  try {
    const shards = (await streams.send(new DescribeStreamCommand({ StreamArn: arn }))).StreamDescription?.Shards ?? [];
    const ordered: string[] = [];
    const ids = new Set(shards.map((s) => s.ShardId as string));
    const visit = (id: string) => {
      if (ordered.includes(id)) return;
      const parent = shards.find((s) => s.ShardId === id)?.ParentShardId;
      if (parent && ids.has(parent)) visit(parent);
      ordered.push(id);
    };
    for (const s of shards) visit(s.ShardId as string);
    const img = (x: unknown) => (x ? (unmarshall(x as Record<string, AttributeValue>) as Record<string, unknown>) : undefined);
    const writes: TableWrite[] = [];
    for (const shardId of ordered) {
      let iterator = (await streams.send(new GetShardIteratorCommand({ StreamArn: arn, ShardId: shardId, ShardIteratorType: 'TRIM_HORIZON' })))
        .ShardIterator;
      // An open shard never ends: stop after three empty reads in a row.
      for (let empty = 0; iterator && empty < 3; ) {
        const out = await streams.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: 1000 }));
        const records = out.Records ?? [];
        empty = records.length === 0 ? empty + 1 : 0;
        for (const r of records) {
          const old = img(r.dynamodb?.OldImage);
          const now = img(r.dynamodb?.NewImage);
          writes.push({
            eventName: r.eventName as TableWrite['eventName'],
            sequenceNumber: r.dynamodb?.SequenceNumber ?? '',
            ...(old ? { old } : {}),
            ...(now ? { new: now } : {}),
            raw: r,
          });
        }
        iterator = out.NextShardIterator;
      }
    }
    return writes;
  } finally {
    streams.destroy();
  }
}

/** The history of every shard lease (the aggregator poller's `ddbstream#...` rows are left out). */
export async function readLeaseWrites(aws: AwsClients, config: Config, table: string): Promise<LeaseWrite[]> {
  const writes = await readTableWrites(aws, config, table);
  return writes.flatMap((w) => {
    const leaseKey = String((w.new ?? w.old)?.leaseKey ?? '');
    return leaseKey.startsWith('shardId-') ? [{ ...(w as unknown as TableWrite<LeaseRow>), leaseKey }] : [];
  });
}

/** Asserts (by throwing) that no lease's checkpoint ever moved backwards; returns the count of checkpoint moves. */
export function assertCheckpointsMonotonic(writes: readonly LeaseWrite[]): number {
  const last = new Map<string, bigint>();
  let moves = 0;
  for (const w of writes) {
    if (!w.new) continue;
    const value = checkpointValue(w.new.checkpoint);
    const before = last.get(w.leaseKey);
    if (before !== undefined && value < before) {
      throw new Error(`checkpoint of ${w.leaseKey} moved back from ${before} to ${value} (stream record ${w.sequenceNumber})`);
    }
    if (w.old && w.old.checkpoint !== w.new.checkpoint) moves++;
    last.set(w.leaseKey, value);
  }
  return moves;
}

/** A checkpoint as a comparable number (sentinels: TRIM_HORIZON/LATEST lowest, SHARD_END highest). */
export function checkpointValue(checkpoint: string): bigint {
  if (checkpoint === 'TRIM_HORIZON' || checkpoint === 'LATEST' || checkpoint === 'AT_TIMESTAMP') return -1n;
  if (checkpoint === 'SHARD_END') return 2n ** 200n;
  return BigInt(checkpoint);
}

/** Index of the chunk a fake-Gemini chunk request was for (from the pages it carried). */
export function chunkOfRequest(request: Pick<FakeGeminiRequest, 'pages'>, pagesPerChunk: number): number | undefined {
  const first = request.pages[0];
  return first === undefined ? undefined : Math.floor((first - 1) / pagesPerChunk);
}

/** Chunk analyses per chunk index over fake-Gemini logs (reduce requests, which carry no pages, are left out). */
export function analysesPerChunk(logs: ReadonlyArray<readonly FakeGeminiRequest[]>, pagesPerChunk: number): Map<number, number> {
  const counts = new Map<number, number>();
  for (const log of logs) {
    for (const r of log) {
      const chunk = chunkOfRequest(r, pagesPerChunk);
      if (chunk !== undefined) counts.set(chunk, (counts.get(chunk) ?? 0) + 1);
    }
  }
  return counts;
}

/** The parts of a document result that a deterministic analyzer makes reproducible (summary aside). */
export function comparableResult(result: Record<string, any>): unknown {
  return {
    status: result.status,
    pages: result.pages,
    failedPages: result.failedPages,
    entities: result.entities,
    keyPoints: result.keyPoints,
    sentiment: result.sentiment,
    chunks: (result.chunks as Array<Record<string, unknown>>).map((c) => ({
      index: c.index,
      pages: c.pages,
      status: c.status,
      keyPoints: c.keyPoints,
      entities: c.entities,
      sentiment: c.sentiment,
      summary: c.summary,
    })),
  };
}

/** Polls `check` every `everyMs` until it returns a value other than undefined; fails after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined> | T | undefined, timeoutMs: number, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** A pipeline whose workers each talk to their own fake Gemini (see {@link startFleet}). */
export interface Fleet {
  pipeline: Pipeline;
  /** Worker processes, ids `w1`, `w2`, ... */
  workers: ServiceProcess[];
  /** `fakes[i]` serves `workers[i]` only: its log is exactly that worker's analyses. */
  fakes: FakeGemini[];
  config: Config;
  aws: AwsClients;
  /**
   * Prints what a failure needs to be understood: the tail of every process's output and, for a
   * document, its unfinished chunk rows, the leases, and each live worker's /healthz.
   */
  dump(documentId?: string): Promise<void>;
  stop(): Promise<void>;
}

/** Options of {@link startFleet}. */
export interface StartFleetOptions {
  prefix: string;
  workers: number;
  shards: number;
  /** Latency of each worker's fake Gemini. */
  latencyMs: number;
  /** Extra env of every service. */
  env: Record<string, string>;
  /** Also wait until the workers hold the shards evenly (floor or ceil of shards / workers), as in steady state. @defaultValue false */
  balanced?: boolean;
}

/**
 * Starts the pipeline without workers, turns on the lease table's stream (so every lease write
 * from the first one on can be audited), then starts the workers, each with its own fake
 * Gemini, and waits until every shard's lease is owned and every worker holds one.
 */
export async function startFleet(options: StartFleetOptions): Promise<Fleet> {
  const fakes: FakeGemini[] = [];
  const workers: ServiceProcess[] = [];
  const aggregatorFake = await startFakeGemini({ latencyMs: 0 });
  let pipeline: Pipeline | undefined;
  let aws: AwsClients | undefined;
  const stop = async () => {
    await Promise.all(workers.map((w) => w.stop(5_000)));
    await pipeline?.stop();
    await Promise.all([aggregatorFake, ...fakes].map((f) => f.close()));
    aws?.destroy();
  };
  try {
    for (let i = 0; i < options.workers; i++) fakes.push(await startFakeGemini({ latencyMs: options.latencyMs }));
    pipeline = await startPipeline({
      workers: 0,
      shards: options.shards,
      prefix: options.prefix,
      env: { LOG_LEVEL: 'warn', ANALYZER: 'gemini', GEMINI_API_KEY: 'test', GEMINI_BASE_URL: aggregatorFake.url, ...options.env },
    });
    const clients = pipelineClients(pipeline);
    aws = clients.aws;
    const { config } = clients;
    await enableLeaseStream(aws, config.LEASES_TABLE);
    const p = pipeline;
    workers.push(...(await Promise.all(fakes.map((fake, i) => startWorkerProcess(p, `w${i + 1}`, { GEMINI_BASE_URL: fake.url })))));
    const a = aws;
    await waitFor(
      'every shard leased and every worker holding one',
      async () => {
        const rows = await scanLeases(a, config.LEASES_TABLE);
        const owners = new Set(rows.map((r) => r.leaseOwner));
        const held = [...owners].map((o) => rows.filter((r) => r.leaseOwner === o).length);
        const even = !options.balanced || held.every((n) => n === Math.floor(options.shards / options.workers) || n === Math.ceil(options.shards / options.workers));
        // No graceful hand-off under way (its taker is already the owner, but not yet reading).
        const settled = rows.every((r) => r.checkpointOwner === undefined);
        return rows.length === options.shards && rows.every((r) => r.leaseOwner) && owners.size === Math.min(options.workers, options.shards) && even && settled
          ? rows
          : undefined;
      },
      options.balanced ? 90_000 : 45_000,
      200,
    );
    return {
      pipeline,
      workers,
      fakes,
      config,
      aws,
      async dump(documentId?: string) {
        workers.forEach((w, i) => console.error([`worker w${i + 1} output:`, ...w.output.slice(-40)].join('\n')));
        console.error(['aggregator output:', ...p.aggregator.output.slice(-20)].join('\n'));
        if (!documentId) return;
        const rows = await new StatusTable(a.doc, config.STATUS_TABLE).listChunks(p.tenantId, documentId).catch(() => []);
        console.error(`unfinished chunks of ${documentId}: ${JSON.stringify(rows.filter((r) => r.status !== 'succeeded'))}`);
        console.error(`leases: ${JSON.stringify(await scanLeases(a, config.LEASES_TABLE).catch(() => []))}`);
        for (const w of workers) if (!w.exited()) console.error(`healthz: ${JSON.stringify(await workerHealth(w).catch((err: unknown) => String(err)))}`);
      },
      stop,
    };
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
}

/**
 * Waits until the document has at least `minSucceeded` chunks done and some worker has a chunk
 * analysis open at its fake; returns that worker's index (the one holding most shards first).
 */
export async function waitForVictim(fleet: Fleet, documentId: string, minSucceeded: number, timeoutMs = 60_000): Promise<number> {
  return waitFor(
    'a worker with analyses in flight after some chunks succeeded',
    async () => {
      const view = await getStatus(fleet.pipeline, documentId);
      if (view.progress.chunksSucceeded < minSucceeded) return undefined;
      const rows = await scanLeases(fleet.aws, fleet.config.LEASES_TABLE);
      const candidates = fleet.fakes
        .map((fake, i) => ({ i, open: fake.log.filter((r) => r.pages.length > 0 && r.respondedAt === undefined).length }))
        .filter((c) => c.open > 0)
        .map((c) => ({ ...c, shards: rows.filter((r) => r.leaseOwner === `w${c.i + 1}`).length }))
        .sort((a, b) => b.shards - a.shards || b.open - a.open);
      return candidates[0]?.i;
    },
    timeoutMs,
    25,
  );
}

/** Output lines of the given processes that match `pattern`. */
export function countLines(processes: readonly ServiceProcess[], pattern: RegExp): number {
  return processes.reduce((n, p) => n + p.output.filter((line) => pattern.test(line)).length, 0);
}

/** Every event on a Kinesis stream so far (all shards, from TRIM_HORIZON), decoded. */
export async function readStreamEvents(aws: AwsClients, streamName: string): Promise<StreamEvent[]> {
  const events: StreamEvent[] = [];
  const { Shards = [] } = await aws.kinesis.send(new ListShardsCommand({ StreamName: streamName }));
  for (const shard of Shards) {
    let iterator = (
      await aws.kinesis.send(
        new GetKinesisShardIteratorCommand({ StreamName: streamName, ShardId: shard.ShardId, ShardIteratorType: 'TRIM_HORIZON' }),
      )
    ).ShardIterator;
    while (iterator) {
      const out = await aws.kinesis.send(new GetKinesisRecordsCommand({ ShardIterator: iterator, Limit: 1000 }));
      for (const r of out.Records ?? []) if (r.Data) events.push(decodeEvent(r.Data));
      if ((out.Records ?? []).length === 0 || out.MillisBehindLatest === 0) break;
      iterator = out.NextShardIterator;
    }
  }
  return events;
}

/** A job row as the API creates it (queued, async, every analysis), for tests that build jobs through the core APIs. */
export function newJob(tenantId: string, documentId: string, fields: Partial<Job> & { pages: number; pagesPerChunk?: number }): Job {
  const { pages, pagesPerChunk = 1, ...rest } = fields;
  const now = new Date().toISOString();
  return {
    tenantId,
    documentId,
    status: 'queued',
    mode: 'async',
    filename: 'doc.pdf',
    contentType: 'application/pdf',
    sizeBytes: 1,
    sha256: '0'.repeat(64),
    pageCount: pages,
    pagesSelected: pages,
    pagesPerChunk,
    analyses: ['summary', 'entities', 'keyPoints', 'sentiment'],
    chunksTotal: 0,
    chunksSucceeded: 0,
    chunksFailed: 0,
    sourceKey: `tenants/${tenantId}/documents/${documentId}/source.pdf`,
    createdAt: now,
    updatedAt: now,
    ...rest,
  };
}

/** Asserts a finished document's result: every one of its `chunks` chunks succeeded, in order, no page failed. */
export function expectEveryChunkSucceeded(result: Record<string, any>, chunks: number): void {
  const list = result.chunks as Array<{ index: number; status: string }>;
  expect(list.map((c) => c.index)).toEqual(Array.from({ length: chunks }, (_, i) => i));
  expect(list.filter((c) => c.status !== 'succeeded')).toEqual([]);
  expect(result.failedPages).toEqual([]);
}

/** Runs the `docorch` command line (compiled under `npm test`, else from source) against a stack file; returns exit code and output. */
export async function docorch(args: string[], stackFile: string): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(process.execPath, [...entryArgs('packages/cli/src/main.ts', 'packages/cli/dist/main.js'), ...args, '--stack', stackFile], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  return { code, out, err };
}
