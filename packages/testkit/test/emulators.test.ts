/**
 * The emulators and resource creation against the real emulators: the vitest global setup's
 * instance for the protocol tests, and own instances for persistence, stop and crash clean-up.
 */
import { spawn, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  ConditionalCheckFailedException,
  DescribeTableCommand,
  DescribeTimeToLiveCommand,
  GetItemCommand,
  ListTablesCommand,
  PutItemCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import {
  DescribeStreamCommand as DescribeDdbStreamCommand,
  DynamoDBStreamsClient,
  GetRecordsCommand as GetDdbRecordsCommand,
  GetShardIteratorCommand as GetDdbShardIteratorCommand,
  type _Record as DdbStreamRecord,
} from '@aws-sdk/client-dynamodb-streams';
import {
  GetRecordsCommand,
  GetShardIteratorCommand,
  ListShardsCommand,
  PutRecordsCommand,
  type KinesisClient,
} from '@aws-sdk/client-kinesis';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, paginateListObjectsV2 } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import {
  createAwsClients,
  ensureResources,
  loadConfig,
  STATUS_TABLE_KEYS,
  type AwsClients,
  type ResourceNames,
} from '@docorch/core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import {
  createIsolatedResources,
  startEmulators,
  uniqueNames,
  type EmulatorEndpoints,
  type IsolatedResources,
} from '../src/index.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

function clientsFor(env: Record<string, string | undefined>): AwsClients {
  return createAwsClients(loadConfig(env));
}

/** A deterministic-size random stream, hashing what it yields. */
function randomStream(size: number, chunk = 64 * 1024): { body: Readable; digest: () => string } {
  const hash = createHash('sha256');
  let remaining = size;
  const body = Readable.from(
    (function* () {
      while (remaining > 0) {
        const n = Math.min(chunk, remaining);
        const bytes = randomBytes(n);
        hash.update(bytes);
        remaining -= n;
        yield bytes;
      }
    })(),
  );
  return { body, digest: () => hash.digest('hex') };
}

async function readAllKinesis(kinesis: KinesisClient, stream: string): Promise<Map<string, string[]>> {
  const { Shards = [] } = await kinesis.send(new ListShardsCommand({ StreamName: stream }));
  const byShard = new Map<string, string[]>();
  for (const shard of Shards) {
    const { ShardIterator } = await kinesis.send(
      new GetShardIteratorCommand({ StreamName: stream, ShardId: shard.ShardId, ShardIteratorType: 'TRIM_HORIZON' }),
    );
    const out = await kinesis.send(new GetRecordsCommand({ ShardIterator, Limit: 10_000 }));
    byShard.set(shard.ShardId ?? '', (out.Records ?? []).map((r) => Buffer.from(r.Data ?? new Uint8Array()).toString('utf8')));
  }
  return byShard;
}

/** Command lines of running processes that mention `needle` (e.g. a unique data directory). */
function processesMentioning(needle: string): string[] {
  return execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' })
    .split('\n')
    .filter((line) => line.includes(needle) && !line.includes('ps -eo'));
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (condition()) return true;
    await sleep(100);
  }
  return condition();
}

describe('global setup', () => {
  it('exposes the emulators through process.env and inject()', async () => {
    const provided = inject('docorchEmulators');
    console.info(`[emulators] global setup: startEmulators took ${provided.startMs} ms`);
    expect(provided.env).toMatchObject({
      S3_ENDPOINT: process.env['S3_ENDPOINT'],
      DYNAMODB_ENDPOINT: process.env['DYNAMODB_ENDPOINT'],
      KINESIS_ENDPOINT: process.env['KINESIS_ENDPOINT'],
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
      AWS_REGION: process.env['AWS_REGION'],
    });
    for (const url of Object.values(provided.endpoints)) expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

    // The default resources exist.
    const config = loadConfig(process.env);
    const aws = clientsFor(process.env);
    try {
      const { TableNames = [] } = await aws.dynamodb.send(new ListTablesCommand({}));
      expect(TableNames).toEqual(
        expect.arrayContaining([config.FILES_TABLE, config.STATUS_TABLE, config.TENANTS_TABLE, config.LEASES_TABLE]),
      );
    } finally {
      aws.destroy();
    }
  });
});

describe('uniqueNames', () => {
  it('makes fresh names valid for buckets, tables and streams', () => {
    const a = uniqueNames('My Test_Suite!');
    const b = uniqueNames('My Test_Suite!');
    expect(a.STATUS_TABLE).not.toBe(b.STATUS_TABLE);
    for (const name of Object.values(a)) {
      // S3 bucket rules are the strictest of the three.
      expect(name).toMatch(/^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/);
      expect(name.startsWith('my-test-suite-')).toBe(true);
    }
  });
});

describe('against the emulators', () => {
  let aws: AwsClients;
  let res: IsolatedResources;
  let names: ResourceNames;

  beforeAll(() => {
    aws = clientsFor(process.env);
  });
  afterAll(() => aws.destroy());
  beforeEach(async () => {
    res = await createIsolatedResources({ prefix: 'emu', clients: aws });
    names = res.names;
  });
  afterEach(() => res.cleanup());

  it('ensureResources is idempotent and creates the documented layout', async () => {
    const again = await ensureResources(aws, names);
    expect(again.created).toEqual([]);
    expect(again.existing.sort()).toEqual(Object.values(names).sort());
    // Concurrent runs must not fail either.
    const concurrent = await Promise.all([ensureResources(aws, names), ensureResources(aws, names)]);
    for (const report of concurrent) expect(report.created).toEqual([]);

    const { Table } = await aws.dynamodb.send(new DescribeTableCommand({ TableName: names.STATUS_TABLE }));
    expect(Table?.StreamSpecification).toEqual({ StreamEnabled: true, StreamViewType: 'NEW_AND_OLD_IMAGES' });
    expect(Table?.GlobalSecondaryIndexes?.map((i) => i.IndexName).sort()).toEqual([STATUS_TABLE_KEYS.byOpenStatusIndex, STATUS_TABLE_KEYS.byTenantIndex].sort());
    const ttl = await aws.dynamodb.send(new DescribeTimeToLiveCommand({ TableName: names.FILES_TABLE }));
    expect(ttl.TimeToLiveDescription).toMatchObject({ TimeToLiveStatus: 'ENABLED', AttributeName: 'expiresAt' });
    const { Shards = [] } = await aws.kinesis.send(new ListShardsCommand({ StreamName: names.STREAM_NAME }));
    expect(Shards).toHaveLength(4);
  });

  it('stores streamed uploads byte for byte (no aws-chunked framing), single part and multipart', async () => {
    for (const size of [100_003, 11 * 1024 * 1024 + 123]) {
      const key = `tenants/t1/documents/d-${size}/source.pdf`;
      const input = randomStream(size);
      const upload = new Upload({
        client: aws.s3,
        params: { Bucket: names.UPLOADS_BUCKET, Key: key, Body: input.body, ContentType: 'application/pdf' },
        partSize: 5 * 1024 * 1024,
        queueSize: 2,
      });
      await upload.done();

      const out = await aws.s3.send(new GetObjectCommand({ Bucket: names.UPLOADS_BUCKET, Key: key }));
      const stored = Buffer.from(await out.Body!.transformToByteArray());
      expect(stored.length).toBe(size);
      expect(createHash('sha256').update(stored).digest('hex')).toBe(input.digest());
    }
  });

  it('pages ListObjectsV2 with continuation tokens (s3rver needs the OpenSSL legacy provider)', async () => {
    const keys = Array.from({ length: 23 }, (_, i) => `prefix/key-${String(i).padStart(3, '0')}`);
    await Promise.all(keys.map((Key) => aws.s3.send(new PutObjectCommand({ Bucket: names.RESULTS_BUCKET, Key, Body: Key }))));

    const first = await aws.s3.send(new ListObjectsV2Command({ Bucket: names.RESULTS_BUCKET, MaxKeys: 5 }));
    expect(first.IsTruncated).toBe(true);
    expect(first.NextContinuationToken).toBeTruthy();

    const listed: string[] = [];
    let pages = 0;
    for await (const page of paginateListObjectsV2({ client: aws.s3, pageSize: 5 }, { Bucket: names.RESULTS_BUCKET })) {
      pages += 1;
      listed.push(...(page.Contents ?? []).map((o) => o.Key ?? ''));
    }
    expect(pages).toBe(5);
    expect(listed).toEqual(keys);
  });

  it('rejects a conditional write whose condition fails', async () => {
    const item = { pk: { S: 't1#idem#abc' }, documentId: { S: 'd1' } };
    const put = () =>
      aws.dynamodb.send(
        new PutItemCommand({ TableName: names.FILES_TABLE, Item: item, ConditionExpression: 'attribute_not_exists(pk)' }),
      );
    await put();
    await expect(put()).rejects.toBeInstanceOf(ConditionalCheckFailedException);
    const { Item } = await aws.dynamodb.send(
      new GetItemCommand({ TableName: names.FILES_TABLE, Key: { pk: item.pk }, ConsistentRead: true }),
    );
    expect(Item?.['documentId']).toEqual({ S: 'd1' });
  });

  it("streams the status table's changes (NEW_AND_OLD_IMAGES) to DynamoDB Streams", async () => {
    const key = { pk: { S: 't1#d1' }, sk: { S: 'JOB' } };
    await aws.dynamodb.send(
      new PutItemCommand({
        TableName: names.STATUS_TABLE,
        Item: { ...key, status: { S: 'processing' }, gsi1pk: { S: 't1' }, gsi1sk: { S: '2024-01-01T00:00:00.000Z#d1' } },
      }),
    );
    await aws.dynamodb.send(
      new UpdateItemCommand({
        TableName: names.STATUS_TABLE,
        Key: key,
        UpdateExpression: 'SET #s = :s',
        ExpressionAttributeNames: { '#s': 'status' },
        ExpressionAttributeValues: { ':s': { S: 'completed' } },
      }),
    );

    const { Table } = await aws.dynamodb.send(new DescribeTableCommand({ TableName: names.STATUS_TABLE }));
    const streamArn = Table?.LatestStreamArn;
    expect(streamArn).toBeTruthy();
    const streams = new DynamoDBStreamsClient({ region: process.env['AWS_REGION'], endpoint: process.env['DYNAMODB_ENDPOINT'] });
    try {
      const records: DdbStreamRecord[] = [];
      const deadline = Date.now() + 10_000;
      while (records.length < 2 && Date.now() < deadline) {
        records.length = 0;
        const { StreamDescription } = await streams.send(new DescribeDdbStreamCommand({ StreamArn: streamArn }));
        for (const shard of StreamDescription?.Shards ?? []) {
          const { ShardIterator } = await streams.send(
            new GetDdbShardIteratorCommand({ StreamArn: streamArn, ShardId: shard.ShardId, ShardIteratorType: 'TRIM_HORIZON' }),
          );
          const out = await streams.send(new GetDdbRecordsCommand({ ShardIterator }));
          records.push(...(out.Records ?? []));
        }
        if (records.length < 2) await sleep(200);
      }
      expect(records.map((r) => r.eventName)).toEqual(['INSERT', 'MODIFY']);
      const modify = records[1]!.dynamodb!;
      expect(modify.StreamViewType).toBe('NEW_AND_OLD_IMAGES');
      expect(modify.OldImage?.['status']).toEqual({ S: 'processing' });
      expect(modify.NewImage?.['status']).toEqual({ S: 'completed' });
    } finally {
      streams.destroy();
    }
  });

  it('puts records with PutRecords and reads them back with GetRecords from every shard', async () => {
    const sent = Array.from({ length: 64 }, (_, i) => `record-${i}`);
    const out = await aws.kinesis.send(
      new PutRecordsCommand({
        StreamName: names.STREAM_NAME,
        Records: sent.map((data, i) => ({ Data: Buffer.from(data), PartitionKey: `doc-${i}` })),
      }),
    );
    expect(out.FailedRecordCount ?? 0).toBe(0);

    const byShard = await readAllKinesis(aws.kinesis, names.STREAM_NAME);
    expect(byShard.size).toBe(4);
    // 64 random-ish partition keys over 4 equal hash ranges: every shard gets some.
    for (const records of byShard.values()) expect(records.length).toBeGreaterThan(0);
    expect([...byShard.values()].flat().sort()).toEqual([...sent].sort());
  });
});

describe('startEmulators lifecycle', () => {
  it('fails with a message naming each emulator whose port is taken, leaving nothing running', { timeout: 120_000 }, async () => {
    const busy = net.createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const port = (busy.address() as net.AddressInfo).port;
    try {
      const error = await startEmulators({ ports: { s3: port, dynamodb: port } }).then(
        () => undefined,
        (err: unknown) => err as Error,
      );
      expect(error?.message).toMatch(/s3rver: listen EADDRINUSE/);
      // DynamoDB Local's public port is its relay's (emulators/tcp-relay.ts), bound before Java starts.
      expect(error?.message).toMatch(/DynamoDB Local: listen EADDRINUSE[^\n]*relay in front of DynamoDB Local/);
      expect(error?.message).not.toMatch(/kinesalite/);
      expect(processesMentioning(`-port ${port} `)).toEqual([]);
    } finally {
      busy.close();
    }
  });

  let dataDir: string;
  const names = uniqueNames('persist');

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'docorch-emulators-test-'));
  });
  afterAll(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  it('persists under dataDir and stops every process on stop()', { timeout: 120_000 }, async () => {
    const started = performance.now();
    const emulators = await startEmulators({ dataDir });
    console.info(`[emulators] startEmulators({ dataDir }) took ${Math.round(performance.now() - started)} ms`);
    const aws = clientsFor({ ...process.env, ...emulators.env });
    try {
      expect(processesMentioning(dataDir).some((line) => line.includes('DynamoDBLocal.jar'))).toBe(true);
      await ensureResources(aws, names, { shardCount: 2 });
      await aws.s3.send(new PutObjectCommand({ Bucket: names.UPLOADS_BUCKET, Key: 'kept', Body: 'kept across restarts' }));
      await aws.dynamodb.send(new PutItemCommand({ TableName: names.TENANTS_TABLE, Item: { pk: { S: 'TENANT#t1' } } }));
      await aws.kinesis.send(
        new PutRecordsCommand({ StreamName: names.STREAM_NAME, Records: [{ Data: Buffer.from('kept'), PartitionKey: 'p' }] }),
      );
    } finally {
      aws.destroy();
      const stopping = performance.now();
      await emulators.stop();
      console.info(`[emulators] stop() took ${Math.round(performance.now() - stopping)} ms`);
    }
    expect(isAlive(emulators.pid)).toBe(false);
    expect(processesMentioning(dataDir)).toEqual([]);
  });

  it('restarts on the same dataDir with the data, and dies with a SIGKILLed parent', { timeout: 120_000 }, async () => {
    // A parent process that starts the emulators and is then killed without any chance to clean up.
    const startEmulatorsUrl = pathToFileURL(path.join(repoRoot, 'packages/testkit/src/emulators/start-emulators.ts')).href;
    const script = `
      const { startEmulators } = await import(${JSON.stringify(startEmulatorsUrl)});
      const e = await startEmulators({ dataDir: ${JSON.stringify(dataDir)} });
      process.stdout.write(JSON.stringify({ pid: e.pid, endpoints: e.endpoints, env: e.env }) + '\\n');
      setInterval(() => {}, 60_000);
    `;
    const parent = spawn(process.execPath, ['--conditions=docorch-source', '--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let hostPid = -1;
    try {
      const line = await new Promise<string>((resolve, reject) => {
        let buffered = '';
        parent.stdout.on('data', (chunk: Buffer) => {
          buffered += chunk.toString('utf8');
          const newline = buffered.indexOf('\n');
          if (newline >= 0) resolve(buffered.slice(0, newline));
        });
        parent.once('exit', (code) => reject(new Error(`parent exited (${code}) before the emulators were up`)));
      });
      const info = JSON.parse(line) as { pid: number; endpoints: EmulatorEndpoints; env: Record<string, string> };
      hostPid = info.pid;

      const aws = clientsFor({ ...process.env, ...info.env });
      try {
        const object = await aws.s3.send(new GetObjectCommand({ Bucket: names.UPLOADS_BUCKET, Key: 'kept' }));
        expect(await object.Body!.transformToString()).toBe('kept across restarts');
        const { Item } = await aws.dynamodb.send(
          new GetItemCommand({ TableName: names.TENANTS_TABLE, Key: { pk: { S: 'TENANT#t1' } } }),
        );
        expect(Item).toBeDefined();
        const records = await readAllKinesis(aws.kinesis, names.STREAM_NAME);
        expect([...records.values()].flat()).toEqual(['kept']);
        // ensureResources on existing resources changes nothing.
        expect((await ensureResources(aws, names)).created).toEqual([]);
      } finally {
        aws.destroy();
      }
    } finally {
      parent.kill('SIGKILL');
    }

    // The host notices the closed IPC channel and stops Java; nothing may be left behind.
    expect(await waitFor(() => !isAlive(hostPid) && processesMentioning(dataDir).length === 0, 20_000)).toBe(true);
  });
});
