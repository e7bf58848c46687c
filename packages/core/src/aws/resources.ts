/**
 * The AWS resources docorch relies on (buckets, tables, stream), described as data, and
 * {@link ensureResources}, which creates them idempotently for the local stack and tests.
 *
 * In production Terraform creates these resources; infra/terraform must match the schemas here.
 * Code that reads or writes a table names its key attributes through the `*_KEYS` constants below,
 * so this file stays the single source of the key layout.
 */
import {
  CreateTableCommand,
  DeleteTableCommand,
  DescribeTableCommand,
  DescribeTimeToLiveCommand,
  UpdateTimeToLiveCommand,
  waitUntilTableExists,
  type CreateTableCommandInput,
  type DynamoDBClient,
  type TableDescription,
} from '@aws-sdk/client-dynamodb';
import { CreateStreamCommand, DeleteStreamCommand, waitUntilStreamExists, type KinesisClient } from '@aws-sdk/client-kinesis';
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  HeadBucketCommand,
  paginateListObjectsV2,
  waitUntilBucketExists,
  type S3Client,
} from '@aws-sdk/client-s3';
import type { Config } from '../config.js';

/**
 * Key attributes of the files table (file metadata and idempotency keys).
 * - `pk` = `${tenantId}#${documentId}` for a file row, `${tenantId}#idem#${key}` for an idempotency row.
 * - `expiresAt` (epoch seconds) is the table's TTL attribute (idempotency rows expire).
 */
export const FILES_TABLE_KEYS = { pk: 'pk', ttl: 'expiresAt' } as const;

/**
 * Key attributes of the document-status table (one JOB row and one row per chunk per document).
 * - `pk` = `${tenantId}#${documentId}`; `sk` = `JOB` or `CHUNK#000042` (zero-padded chunk index).
 * - GSI `byTenant` lists a tenant's jobs newest first: `gsi1pk` = tenantId (set on JOB rows only,
 *   so chunk rows stay out of the index), `gsi1sk` = `${createdAtIso}#${documentId}`.
 */
export const STATUS_TABLE_KEYS = {
  pk: 'pk',
  sk: 'sk',
  gsi1pk: 'gsi1pk',
  gsi1sk: 'gsi1sk',
  byTenantIndex: 'byTenant',
  /**
   * Sparse GSI `byOpenStatus` of jobs the reconciler watches: `openStatus` (the status, absent once
   * finished) and `openAt` (set by each transition and by the reconciler, not by chunk counts, so
   * the hot path of a busy document never writes the index).
   */
  openStatus: 'openStatus',
  openAt: 'openAt',
  byOpenStatusIndex: 'byOpenStatus',
} as const;

/** Key attributes of the tenants table: `pk` = `KEY#${sha256hex(apiKey)}` or `TENANT#${tenantId}`. */
export const TENANTS_TABLE_KEYS = { pk: 'pk' } as const;

/** Key attribute of the stream consumer's lease table (KCL 2.x layout: one row per shard). */
export const LEASES_TABLE_KEYS = { leaseKey: 'leaseKey' } as const;

/** Key attributes of the dead-letter table: `pk` = `${tenantId}#${documentId}` (or `stream`), `sk` = `${iso}#${recordId}`. */
export const DEAD_LETTERS_TABLE_KEYS = { pk: 'pk', sk: 'sk' } as const;

/**
 * Key attribute of the model rate-limit table (src/ratelimit): `pk` = the bucket's name, e.g.
 * `gemini#${model}`; one small row per bucket, updated with optimistic concurrency.
 */
export const RATE_LIMIT_TABLE_KEYS = { pk: 'pk' } as const;

/**
 * Key attributes of the webhook deliveries table (store/webhook-deliveries.ts): `pk` =
 * `${tenantId}#${documentId}`, `sk` = the delivery id. The sparse index `byDue` (hash `dueShard`,
 * set only while a delivery is pending; range `dueAt`, its next attempt) is the delivery schedule.
 */
export const WEBHOOKS_TABLE_KEYS = { pk: 'pk', sk: 'sk', dueShard: 'dueShard', dueAt: 'dueAt', byDueIndex: 'byDue', ttl: 'expiresAt' } as const;

/** The names of every resource; a subset of {@link Config}, so a config (or env) carries them. */
export type ResourceNames = Pick<
  Config,
  | 'UPLOADS_BUCKET'
  | 'RESULTS_BUCKET'
  | 'FILES_TABLE'
  | 'STATUS_TABLE'
  | 'TENANTS_TABLE'
  | 'LEASES_TABLE'
  | 'DEAD_LETTERS_TABLE'
  | 'RATE_LIMIT_TABLE'
  | 'WEBHOOKS_TABLE'
  | 'STREAM_NAME'
>;

/** The config keys that name a DynamoDB table. */
export type TableNameKey =
  | 'FILES_TABLE'
  | 'STATUS_TABLE'
  | 'TENANTS_TABLE'
  | 'LEASES_TABLE'
  | 'DEAD_LETTERS_TABLE'
  | 'RATE_LIMIT_TABLE'
  | 'WEBHOOKS_TABLE';

/** One table's schema: a CreateTable input without its name, plus its TTL attribute if any. */
export interface TableSchema extends Omit<CreateTableCommandInput, 'TableName'> {
  /** Attribute DynamoDB TTL expires items by (epoch seconds); absent when the table has no TTL. */
  timeToLiveAttribute?: string;
}

const S = 'S' as const;

/** Every table's schema, keyed by the config key that holds its name. */
export const TABLE_SCHEMAS: Readonly<Record<TableNameKey, TableSchema>> = {
  FILES_TABLE: {
    AttributeDefinitions: [{ AttributeName: FILES_TABLE_KEYS.pk, AttributeType: S }],
    KeySchema: [{ AttributeName: FILES_TABLE_KEYS.pk, KeyType: 'HASH' }],
    BillingMode: 'PAY_PER_REQUEST',
    timeToLiveAttribute: FILES_TABLE_KEYS.ttl,
  },
  STATUS_TABLE: {
    AttributeDefinitions: [
      { AttributeName: STATUS_TABLE_KEYS.pk, AttributeType: S },
      { AttributeName: STATUS_TABLE_KEYS.sk, AttributeType: S },
      { AttributeName: STATUS_TABLE_KEYS.gsi1pk, AttributeType: S },
      { AttributeName: STATUS_TABLE_KEYS.gsi1sk, AttributeType: S },
      { AttributeName: STATUS_TABLE_KEYS.openStatus, AttributeType: S },
      { AttributeName: STATUS_TABLE_KEYS.openAt, AttributeType: S },
    ],
    KeySchema: [
      { AttributeName: STATUS_TABLE_KEYS.pk, KeyType: 'HASH' },
      { AttributeName: STATUS_TABLE_KEYS.sk, KeyType: 'RANGE' },
    ],
    GlobalSecondaryIndexes: [
      {
        IndexName: STATUS_TABLE_KEYS.byTenantIndex,
        KeySchema: [
          { AttributeName: STATUS_TABLE_KEYS.gsi1pk, KeyType: 'HASH' },
          { AttributeName: STATUS_TABLE_KEYS.gsi1sk, KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'ALL' },
      },
      {
        IndexName: STATUS_TABLE_KEYS.byOpenStatusIndex,
        KeySchema: [
          { AttributeName: STATUS_TABLE_KEYS.openStatus, KeyType: 'HASH' },
          { AttributeName: STATUS_TABLE_KEYS.openAt, KeyType: 'RANGE' },
        ],
        // The sweep re-reads each candidate strongly consistently; the index only finds them.
        Projection: { ProjectionType: 'KEYS_ONLY' },
      },
    ],
    BillingMode: 'PAY_PER_REQUEST',
    // The aggregator consumes this stream (a Lambda in AWS, a local poller in the stack).
    StreamSpecification: { StreamEnabled: true, StreamViewType: 'NEW_AND_OLD_IMAGES' },
  },
  TENANTS_TABLE: {
    AttributeDefinitions: [{ AttributeName: TENANTS_TABLE_KEYS.pk, AttributeType: S }],
    KeySchema: [{ AttributeName: TENANTS_TABLE_KEYS.pk, KeyType: 'HASH' }],
    BillingMode: 'PAY_PER_REQUEST',
  },
  LEASES_TABLE: {
    AttributeDefinitions: [{ AttributeName: LEASES_TABLE_KEYS.leaseKey, AttributeType: S }],
    KeySchema: [{ AttributeName: LEASES_TABLE_KEYS.leaseKey, KeyType: 'HASH' }],
    BillingMode: 'PAY_PER_REQUEST',
  },
  DEAD_LETTERS_TABLE: {
    AttributeDefinitions: [
      { AttributeName: DEAD_LETTERS_TABLE_KEYS.pk, AttributeType: S },
      { AttributeName: DEAD_LETTERS_TABLE_KEYS.sk, AttributeType: S },
    ],
    KeySchema: [
      { AttributeName: DEAD_LETTERS_TABLE_KEYS.pk, KeyType: 'HASH' },
      { AttributeName: DEAD_LETTERS_TABLE_KEYS.sk, KeyType: 'RANGE' },
    ],
    BillingMode: 'PAY_PER_REQUEST',
  },
  RATE_LIMIT_TABLE: {
    AttributeDefinitions: [{ AttributeName: RATE_LIMIT_TABLE_KEYS.pk, AttributeType: S }],
    KeySchema: [{ AttributeName: RATE_LIMIT_TABLE_KEYS.pk, KeyType: 'HASH' }],
    BillingMode: 'PAY_PER_REQUEST',
    // The API's request windows expire by themselves.
    timeToLiveAttribute: 'expiresAt',
  },
  WEBHOOKS_TABLE: {
    AttributeDefinitions: [
      { AttributeName: WEBHOOKS_TABLE_KEYS.pk, AttributeType: S },
      { AttributeName: WEBHOOKS_TABLE_KEYS.sk, AttributeType: S },
      { AttributeName: WEBHOOKS_TABLE_KEYS.dueShard, AttributeType: S },
      { AttributeName: WEBHOOKS_TABLE_KEYS.dueAt, AttributeType: S },
    ],
    KeySchema: [
      { AttributeName: WEBHOOKS_TABLE_KEYS.pk, KeyType: 'HASH' },
      { AttributeName: WEBHOOKS_TABLE_KEYS.sk, KeyType: 'RANGE' },
    ],
    GlobalSecondaryIndexes: [
      {
        IndexName: WEBHOOKS_TABLE_KEYS.byDueIndex,
        KeySchema: [
          { AttributeName: WEBHOOKS_TABLE_KEYS.dueShard, KeyType: 'HASH' },
          { AttributeName: WEBHOOKS_TABLE_KEYS.dueAt, KeyType: 'RANGE' },
        ],
        // The dispatcher claims each due delivery with a conditional write on the table itself.
        Projection: { ProjectionType: 'KEYS_ONLY' },
      },
    ],
    BillingMode: 'PAY_PER_REQUEST',
    // A finished delivery's log expires 30 days after it finished (DELIVERY_LOG_RETENTION_S in store/webhook-deliveries.ts).
    timeToLiveAttribute: WEBHOOKS_TABLE_KEYS.ttl,
  },
};

/** Config keys of the buckets. */
export const BUCKET_NAME_KEYS = ['UPLOADS_BUCKET', 'RESULTS_BUCKET'] as const;

/** Shards of the event stream when {@link EnsureResourcesOptions.shardCount} is not given. */
export const DEFAULT_SHARD_COUNT = 4;

/** The SDK clients {@link ensureResources} and {@link deleteResources} use. */
export interface ResourceClients {
  s3: S3Client;
  dynamodb: DynamoDBClient;
  kinesis: KinesisClient;
}

/** Options of {@link ensureResources}. */
export interface EnsureResourcesOptions {
  /** Shards of a newly created event stream (an existing stream is left as it is). @defaultValue 4 */
  shardCount?: number;
  /** Longest wait for one resource to become active, in seconds. @defaultValue 120 */
  maxWaitSeconds?: number;
}

/** What {@link ensureResources} did, per resource name. */
export interface EnsureResourcesReport {
  /** Resources this call created. */
  created: string[];
  /** Resources that already existed (and were checked). */
  existing: string[];
}

/** Polling of the SDK waiters: first check at once, then 100 ms doubling up to 2 s (emulators are fast). */
function waiter<C>(client: C, maxWaitSeconds: number) {
  return { client, maxWaitTime: maxWaitSeconds, minDelay: 0.1, maxDelay: 2 };
}

function errorName(err: unknown): string | undefined {
  return err instanceof Error ? err.name : undefined;
}

/**
 * Creates the buckets, tables (with TTL) and the event stream named in `names` unless they exist,
 * and waits until each is active. Safe to run concurrently and repeatedly.
 *
 * An existing table must have the schema in {@link TABLE_SCHEMAS} (key schema, indexes, stream);
 * otherwise this throws, naming the table, rather than running against a stale layout.
 */
export async function ensureResources(
  clients: ResourceClients,
  names: ResourceNames,
  options: EnsureResourcesOptions = {},
): Promise<EnsureResourcesReport> {
  const maxWait = options.maxWaitSeconds ?? 120;
  const report: EnsureResourcesReport = { created: [], existing: [] };
  const record = (name: string, created: boolean) => (created ? report.created : report.existing).push(name);

  await Promise.all([
    ...BUCKET_NAME_KEYS.map(async (key) => record(names[key], await ensureBucket(clients.s3, names[key], maxWait))),
    ...(Object.keys(TABLE_SCHEMAS) as TableNameKey[]).map(async (key) =>
      record(names[key], await ensureTable(clients.dynamodb, names[key], TABLE_SCHEMAS[key], maxWait)),
    ),
    (async () =>
      record(
        names.STREAM_NAME,
        await ensureStream(clients.kinesis, names.STREAM_NAME, options.shardCount ?? DEFAULT_SHARD_COUNT, maxWait),
      ))(),
  ]);
  return report;
}

/** Creates the bucket unless it exists; returns true when this call created it. */
async function ensureBucket(s3: S3Client, bucket: string, maxWait: number): Promise<boolean> {
  let created = true;
  try {
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  } catch (err) {
    if (errorName(err) !== 'BucketAlreadyOwnedByYou' && errorName(err) !== 'BucketAlreadyExists') throw err;
    created = false;
  }
  if (created) await waitUntilBucketExists(waiter(s3, maxWait), { Bucket: bucket });
  // On real S3, BucketAlreadyExists can mean another account owns the name: HeadBucket then
  // fails with 403 instead of us silently using a foreign bucket.
  else await s3.send(new HeadBucketCommand({ Bucket: bucket }));
  return created;
}

/** Creates the table unless it exists, waits until ACTIVE, enables TTL; true when created here. */
async function ensureTable(dynamodb: DynamoDBClient, table: string, schema: TableSchema, maxWait: number): Promise<boolean> {
  const { timeToLiveAttribute, ...createInput } = schema;
  let created = true;
  try {
    await dynamodb.send(new CreateTableCommand({ ...createInput, TableName: table }));
  } catch (err) {
    if (errorName(err) !== 'ResourceInUseException') throw err;
    created = false;
  }
  await waitUntilTableExists(waiter(dynamodb, maxWait), { TableName: table });
  if (!created) {
    const { Table } = await dynamodb.send(new DescribeTableCommand({ TableName: table }));
    assertTableMatches(table, schema, Table);
  }

  if (timeToLiveAttribute) {
    const ttl = await dynamodb.send(new DescribeTimeToLiveCommand({ TableName: table }));
    const status = ttl.TimeToLiveDescription?.TimeToLiveStatus;
    // Enabling TTL twice is a ValidationException on AWS; ENABLING means a concurrent call did it.
    if (status !== 'ENABLED' && status !== 'ENABLING') {
      try {
        await dynamodb.send(
          new UpdateTimeToLiveCommand({
            TableName: table,
            TimeToLiveSpecification: { AttributeName: timeToLiveAttribute, Enabled: true },
          }),
        );
      } catch (err) {
        if (!(errorName(err) === 'ValidationException' && /already enabled/i.test(String((err as Error).message)))) throw err;
      }
    }
  }
  return created;
}

/** Throws when an existing table's layout differs from `schema` (e.g. data left by an older version). */
function assertTableMatches(table: string, schema: TableSchema, actual: TableDescription | undefined): void {
  const keys = (list: { AttributeName?: string; KeyType?: string }[] | undefined) =>
    (list ?? []).map((k) => `${k.AttributeName}:${k.KeyType}`).join(',');
  const problems: string[] = [];
  if (keys(actual?.KeySchema) !== keys(schema.KeySchema)) {
    problems.push(`key schema is ${keys(actual?.KeySchema)}, expected ${keys(schema.KeySchema)}`);
  }
  for (const index of schema.GlobalSecondaryIndexes ?? []) {
    const found = actual?.GlobalSecondaryIndexes?.find((i) => i.IndexName === index.IndexName);
    if (!found) problems.push(`index ${index.IndexName} is missing`);
    else if (keys(found.KeySchema) !== keys(index.KeySchema)) problems.push(`index ${index.IndexName} has key schema ${keys(found.KeySchema)}`);
  }
  const wantStream = schema.StreamSpecification?.StreamEnabled === true;
  const stream = actual?.StreamSpecification;
  if (wantStream && (stream?.StreamEnabled !== true || stream.StreamViewType !== schema.StreamSpecification?.StreamViewType)) {
    problems.push(`stream must be enabled with ${schema.StreamSpecification?.StreamViewType}`);
  }
  if (problems.length > 0) {
    throw new Error(`DynamoDB table ${table} exists with a different layout: ${problems.join('; ')}. Delete it (locally: the .data directory) and start again.`);
  }
}

/** Creates the stream unless it exists and waits until ACTIVE; true when created here. */
async function ensureStream(kinesis: KinesisClient, stream: string, shardCount: number, maxWait: number): Promise<boolean> {
  let created = true;
  try {
    await kinesis.send(new CreateStreamCommand({ StreamName: stream, ShardCount: shardCount }));
  } catch (err) {
    if (errorName(err) !== 'ResourceInUseException') throw err;
    created = false;
  }
  await waitUntilStreamExists(waiter(kinesis, maxWait), { StreamName: stream });
  return created;
}

/**
 * Deletes the resources named in `names` with everything in them (buckets are emptied first).
 * Missing resources are skipped. For tests and local clean-up only; never point it at production.
 * Does not wait for tables and the stream to disappear.
 */
export async function deleteResources(clients: ResourceClients, names: ResourceNames): Promise<void> {
  const ignoreMissing = (...missing: string[]) => (err: unknown) => {
    if (!missing.includes(errorName(err) ?? '')) throw err;
  };
  await Promise.all([
    ...BUCKET_NAME_KEYS.map((key) =>
      emptyAndDeleteBucket(clients.s3, names[key]).catch(ignoreMissing('NoSuchBucket', 'NotFound')),
    ),
    ...(Object.keys(TABLE_SCHEMAS) as TableNameKey[]).map((key) =>
      clients.dynamodb.send(new DeleteTableCommand({ TableName: names[key] })).then(() => undefined, ignoreMissing('ResourceNotFoundException')),
    ),
    clients.kinesis
      .send(new DeleteStreamCommand({ StreamName: names.STREAM_NAME }))
      .then(() => undefined, ignoreMissing('ResourceNotFoundException')),
  ]);
}

async function emptyAndDeleteBucket(s3: S3Client, bucket: string): Promise<void> {
  for await (const page of paginateListObjectsV2({ client: s3 }, { Bucket: bucket })) {
    const objects = (page.Contents ?? []).flatMap((o) => (o.Key === undefined ? [] : [{ Key: o.Key }]));
    if (objects.length > 0) await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: objects, Quiet: true } }));
  }
  await s3.send(new DeleteBucketCommand({ Bucket: bucket }));
}
