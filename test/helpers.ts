/** Helpers of the whole-system tests. */
import { DescribeStreamCommand, DynamoDBStreamsClient, GetRecordsCommand, GetShardIteratorCommand } from '@aws-sdk/client-dynamodb-streams';
import { DescribeTableCommand, UpdateTableCommand, type AttributeValue } from '@aws-sdk/client-dynamodb';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { createAwsClients, loadConfig, type AwsClients, type Config } from '@docorch/core';
import { generatePdf, startService, type FakeGeminiRequest, type Pipeline, type ServiceProcess } from '@docorch/testkit';


/** Submits a generated PDF asynchronously; returns the document id. */
export async function submitGenerated(
  pipeline: Pipeline,
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

export async function getStatus(pipeline: Pipeline, id: string, wait = 0): Promise<StatusView> {
  const res = await fetch(`${pipeline.api.baseUrl}/v1/documents/${id}${wait ? `?wait=${wait}` : ''}`, {
    headers: { authorization: `Bearer ${pipeline.apiKey}` },
  });
  if (res.status !== 200) throw new Error(`status answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as StatusView;
}

export async function getResult(pipeline: Pipeline, id: string): Promise<Record<string, any>> {
  const res = await fetch(`${pipeline.api.baseUrl}/v1/documents/${id}/result`, { headers: { authorization: `Bearer ${pipeline.apiKey}` } });
  if (res.status !== 200) throw new Error(`result answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as Record<string, any>;
}

const TERMINAL = new Set(['completed', 'completed_with_errors', 'failed', 'cancelled']);

/** Polls until the document is terminal, recording each observed status; fails after `timeoutMs`. */
export async function waitForTerminal(
  pipeline: Pipeline,
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
}

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
export async function submitPdf(pipeline: Pick<Pipeline, 'apiKey'> & { api: { baseUrl: string } }, bytes: Uint8Array, fields: Record<string, string> = {}): Promise<string> {
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

/** One write of a lease row, as its DynamoDB stream shows it. */
export interface LeaseWrite {
  eventName: 'INSERT' | 'MODIFY' | 'REMOVE';
  sequenceNumber: string;
  leaseKey: string;
  old?: LeaseRow;
  new?: LeaseRow;
}

/**
 * Turns on the lease table's DynamoDB stream (NEW_AND_OLD_IMAGES) so that every write of every
 * lease can be audited afterwards: a complete history, not a sample like polling.
 */
export async function enableLeaseStream(aws: AwsClients, table: string): Promise<void> {
  await aws.dynamodb.send(
    new UpdateTableCommand({ TableName: table, StreamSpecification: { StreamEnabled: true, StreamViewType: 'NEW_AND_OLD_IMAGES' } }),
  );
}

/** Reads the whole history of the lease table's stream, per lease key in write order. */
export async function readLeaseWrites(aws: AwsClients, config: Config, table: string): Promise<LeaseWrite[]> {
  const desc = await aws.dynamodb.send(new DescribeTableCommand({ TableName: table }));
  const arn = desc.Table?.LatestStreamArn;
  if (!arn) throw new Error(`${table} has no stream`);
  const endpoint = config.DYNAMODB_STREAMS_ENDPOINT ?? config.DYNAMODB_ENDPOINT;
  const streams = new DynamoDBStreamsClient({ region: config.AWS_REGION, ...(endpoint ? { endpoint } : {}) });
  try {
    const shards = (await streams.send(new DescribeStreamCommand({ StreamArn: arn }))).StreamDescription?.Shards ?? [];
    // Parents before children (one item's writes stay in one shard lineage, in order).
    const ordered: string[] = [];
    const ids = new Set(shards.map((s) => s.ShardId as string));
    const visit = (id: string) => {
      if (ordered.includes(id)) return;
      const parent = shards.find((s) => s.ShardId === id)?.ParentShardId;
      if (parent && ids.has(parent)) visit(parent);
      ordered.push(id);
    };
    for (const s of shards) visit(s.ShardId as string);
    const writes: LeaseWrite[] = [];
    for (const shardId of ordered) {
      let iterator = (await streams.send(new GetShardIteratorCommand({ StreamArn: arn, ShardId: shardId, ShardIteratorType: 'TRIM_HORIZON' })))
        .ShardIterator;
      for (let empty = 0; iterator && empty < 2; ) {
        const out = await streams.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: 1000 }));
        const records = out.Records ?? [];
        if (records.length === 0) empty++;
        for (const r of records) {
          const img = (x: Record<string, unknown> | undefined) => (x ? (unmarshall(x as Record<string, AttributeValue>) as LeaseRow) : undefined);
          const old = img(r.dynamodb?.OldImage as Record<string, unknown> | undefined);
          const now = img(r.dynamodb?.NewImage as Record<string, unknown> | undefined);
          const leaseKey = String((now ?? old)?.leaseKey ?? '');
          if (!leaseKey.startsWith('shardId-')) continue;
          writes.push({
            eventName: r.eventName as LeaseWrite['eventName'],
            sequenceNumber: r.dynamodb?.SequenceNumber ?? '',
            leaseKey,
            ...(old ? { old } : {}),
            ...(now ? { new: now } : {}),
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
