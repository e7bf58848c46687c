/**
 * The fleet-wide rate limiter against real DynamoDB Local: several limiter instances (each with
 * its own client, like separate processes) and many concurrent acquirers share one bucket. The
 * window is scaled down (2 s) so the test runs in seconds.
 */
import { randomUUID } from 'node:crypto';
import { CreateTableCommand, DeleteTableCommand, waitUntilTableExists, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TABLE_SCHEMAS } from '../src/aws/resources.js';
import { loadConfig } from '../src/config.js';
import { DocorchError } from '../src/errors.js';
import { DynamoDbRateLimiter } from '../src/ratelimit/dynamodb-rate-limiter.js';
import { localDynamoDbClient, startDynamoDbLocal, type DynamoDbLocal } from './helpers/dynamodb-local.js';
import { maxInWindow } from '../../testkit/src/fake-gemini/fake-gemini.js';

let db: DynamoDbLocal;
let admin: DynamoDBClient;
const tableName = `ratelimit-test-${randomUUID()}`;
const clients: DynamoDBClient[] = [];

function docClient(): DynamoDBDocumentClient {
  const client = localDynamoDbClient(db.endpoint);
  clients.push(client);
  return DynamoDBDocumentClient.from(client);
}

beforeAll(async () => {
  db = await startDynamoDbLocal();
  admin = localDynamoDbClient(db.endpoint);
  // The schema ensureResources creates for RATE_LIMIT_TABLE.
  const { timeToLiveAttribute: _ttl, ...schema } = TABLE_SCHEMAS.RATE_LIMIT_TABLE;
  await admin.send(new CreateTableCommand({ ...schema, TableName: tableName }));
  await waitUntilTableExists({ client: admin, maxWaitTime: 30 }, { TableName: tableName });
});

afterAll(async () => {
  await admin?.send(new DeleteTableCommand({ TableName: tableName })).catch(() => undefined);
  for (const c of clients) c.destroy();
  admin?.destroy();
  await db?.stop();
});

/** Counts the commands a document client sends, by name (a middleware on the real client). */
function countCommands(doc: DynamoDBDocumentClient): Map<string, number> {
  const counts = new Map<string, number>();
  doc.middlewareStack.add(
    (next, context) => async (args) => {
      counts.set(String(context.commandName), (counts.get(String(context.commandName)) ?? 0) + 1);
      return next(args);
    },
    { step: 'initialize', name: 'countCommands' },
  );
  return counts;
}

describe('DynamoDbRateLimiter', () => {
  it('takes one write per grant while its process is the last writer, and recomputes from the row a lost race returns', async () => {
    const bucket = `bucket-${randomUUID()}`;
    const [a, b] = [docClient(), docClient()];
    const counts = countCommands(a);
    const options = { tableName, bucket, requestsPerWindow: 10_000, tokensPerWindow: 1_000_000, windowMs: 60_000, marginMs: 0 };
    const first = new DynamoDbRateLimiter({ ...options, doc: a });
    for (let i = 0; i < 5; i++) await first.acquire(1);
    // One read (the row was not known yet), then a conditional write per grant.
    expect(Object.fromEntries(counts)).toEqual({ GetItemCommand: 1, PutItemCommand: 5 });
    // Another process writes: the next grant here loses its race, gets the row back with the
    // failed condition, and writes again from it (no read).
    await new DynamoDbRateLimiter({ ...options, doc: b }).acquire(1);
    await first.acquire(1);
    expect(Object.fromEntries(counts)).toEqual({ GetItemCommand: 1, PutItemCommand: 7 });
    expect(first.stats()).toMatchObject({ grants: 6, conflicts: 1 });
    const row = await b.send(new GetCommand({ TableName: tableName, Key: { pk: bucket }, ConsistentRead: true }));
    expect(row.Item?.version).toBe(7);
  });

  it(
    'N concurrent acquirers over several instances never exceed R per window, and reach close to R',
    async () => {
      const R = 10;
      const windowMs = 2_000;
      // The padding covers the lateness between a reserved instant and the send: write latency and
      // timer lag, large on a busy 2-core box running DynamoDB Local (real windows are 30 times longer).
      const marginMs = 300;
      const bucket = `bucket-${randomUUID()}`;
      const docs = [docClient(), docClient(), docClient()];
      // Warm the connections (running processes are warm), on another bucket.
      await Promise.all(
        docs.map((doc) => new DynamoDbRateLimiter({ doc, tableName, bucket: `warm-${randomUUID()}`, requestsPerWindow: 100, tokensPerWindow: 1_000 }).acquire(1)),
      );
      const limiters = docs.map(
        (doc) => new DynamoDbRateLimiter({ doc, tableName, bucket, requestsPerWindow: R, tokensPerWindow: 1_000_000, windowMs, marginMs }),
      );
      const grants: number[] = [];
      const runMs = 8_000;
      const start = Date.now();
      // 4 acquirers per instance, each sending as fast as the limiter lets it.
      await Promise.all(
        limiters.flatMap((limiter) =>
          Array.from({ length: 4 }, async () => {
            while (Date.now() - start < runMs) {
              await limiter.acquire(100);
              grants.push(Date.now());
            }
          }),
        ),
      );
      const busiest = maxInWindow(grants, windowMs);
      expect(busiest).toBeLessThanOrEqual(R);

      // Throughput while saturated: grants in [start, start + runMs) against R per (window + margin).
      const inRun = grants.filter((t) => t < start + runMs).length;
      const ideal = (R * runMs) / (windowMs + marginMs);
      expect(inRun / ideal).toBeGreaterThan(0.85);
      const stats = limiters.map((l) => l.stats());
      // Every grant is one write of the row; lost races were retried, not double-granted. Grants
      // that could only be used too late (a slow write or timer on this busy box) were dropped.
      const written = stats.reduce((n, s) => n + s.grants, 0);
      expect(written - stats.reduce((n, s) => n + s.staleGrants, 0)).toBe(grants.length);
      const row = await docClient().send(new GetCommand({ TableName: tableName, Key: { pk: bucket }, ConsistentRead: true }));
      expect(row.Item?.version).toBe(written);
    },
    60_000,
  );

  it('the token dimension limits large requests across instances', async () => {
    const bucket = `bucket-${randomUUID()}`;
    // A token burst of one request's size: 1,000 tokens per window admit 3 requests of 300.
    const options = { tableName, bucket, requestsPerWindow: 1_000, tokensPerWindow: 1_000, tokenBurst: 300, windowMs: 1_000, marginMs: 100, maxWaitMs: 10_000 };
    const a = new DynamoDbRateLimiter({ ...options, doc: docClient() });
    const b = new DynamoDbRateLimiter({ ...options, doc: docClient() });
    const grants: Array<{ at: number; cost: number }> = [];
    const start = Date.now();
    await Promise.all(
      [a, b, a, b].map(async (limiter) => {
        while (Date.now() - start < 3_000) {
          await limiter.acquire(300);
          grants.push({ at: Date.now(), cost: 300 });
        }
      }),
    );
    // 1,000 tokens per window: at most 3 requests of 300.
    expect(maxInWindow(grants.map((g) => g.at), 1_000)).toBeLessThanOrEqual(3);
    expect(grants.length).toBeGreaterThanOrEqual(6);
  }, 30_000);

  it('settle charges an underestimate to the shared bucket and refunds a large overestimate', async () => {
    const bucket = `bucket-${randomUUID()}`;
    let now = 1_000_000;
    const limiter = new DynamoDbRateLimiter({
      doc: docClient(),
      tableName,
      bucket,
      requestsPerWindow: 100,
      tokensPerWindow: 1_000,
      tokenBurst: 1,
      windowMs: 1_000,
      marginMs: 0,
      now: () => now,
      sleep: async () => {},
    });
    await limiter.acquire(100);
    await limiter.settle(100, 900); // the call used 800 more than reserved
    const row = await docClient().send(new GetCommand({ TableName: tableName, Key: { pk: bucket }, ConsistentRead: true }));
    expect(row.Item?.tokenTat).toBeCloseTo(now + 900 * 1);
    await limiter.settle(100, 50); // a small overestimate is not worth a write
    const again = await docClient().send(new GetCommand({ TableName: tableName, Key: { pk: bucket }, ConsistentRead: true }));
    expect(again.Item?.version).toBe(row.Item?.version);
    await limiter.settle(700, 100); // 600 unused: given back
    const refunded = await docClient().send(new GetCommand({ TableName: tableName, Key: { pk: bucket }, ConsistentRead: true }));
    expect(refunded.Item?.tokenTat).toBeCloseTo(now + 300);
    now += 1;
  });

  it('refuses a wait beyond maxWaitMs with THROTTLED and reserves nothing', async () => {
    const bucket = `bucket-${randomUUID()}`;
    const limiter = new DynamoDbRateLimiter({
      doc: docClient(),
      tableName,
      bucket,
      requestsPerWindow: 2,
      tokensPerWindow: 1_000_000,
      windowMs: 10_000,
      marginMs: 0,
      maxWaitMs: 1_000,
    });
    await limiter.acquire(1);
    const err = await limiter.acquire(1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DocorchError);
    expect((err as DocorchError).code).toBe('THROTTLED');
    expect((err as DocorchError).retryAfterMs).toBeGreaterThan(4_000);
    expect(limiter.stats().grants).toBe(1);
  });

  it('an aborted waiter rejects with the abort reason', async () => {
    const bucket = `bucket-${randomUUID()}`;
    const limiter = new DynamoDbRateLimiter({ doc: docClient(), tableName, bucket, requestsPerWindow: 1, tokensPerWindow: 1_000, windowMs: 5_000 });
    await limiter.acquire(1);
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('shutdown')), 50);
    await expect(limiter.acquire(1, controller.signal)).rejects.toThrow('shutdown');
  });

  it('fromConfig uses RATE_LIMIT_TABLE, GEMINI_RPM and GEMINI_TPM', () => {
    const config = loadConfig({ RATE_LIMIT_TABLE: tableName, GEMINI_RPM: '60', GEMINI_TPM: '1000' });
    const limiter = DynamoDbRateLimiter.fromConfig(docClient(), config);
    expect(limiter.params).toMatchObject({ windowMs: 60_000, marginMs: 1_000, requests: { limit: 60, burst: 1 }, tokens: { limit: 1_000, burst: 50 } });
  });
});
