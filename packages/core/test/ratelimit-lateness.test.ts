/**
 * Lateness between a grant and the request's arrival at the server (found by the whole-system
 * chaos test: a first call whose conditional write took 350 ms and whose cold SDK took 100-800 ms
 * more arrived ~1 s after its grant, and the server saw 61 requests in a 60-second window at
 * GEMINI_RPM=60). Limiters drop a grant they could only use more than `maxLatenessMs` after its
 * instant, and the Gemini analyzer takes its grant inside the SDK's fetch, after the SDK's own work.
 */
import { randomUUID } from 'node:crypto';
import { CreateTableCommand, DeleteTableCommand, waitUntilTableExists, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGeminiAnalyzer } from '../src/analysis/gemini/gemini-analyzer.js';
import { TABLE_SCHEMAS } from '../src/aws/resources.js';
import { DynamoDbRateLimiter } from '../src/ratelimit/dynamodb-rate-limiter.js';
import { MAX_STALE_GRANTS } from '../src/ratelimit/gcra.js';
import { MemoryRateLimiter } from '../src/ratelimit/memory-rate-limiter.js';
import { localDynamoDbClient, startDynamoDbLocal, type DynamoDbLocal } from './helpers/dynamodb-local.js';

describe('MemoryRateLimiter lateness', () => {
  it('drops a grant whose sleep ended too late and uses the next one', async () => {
    let now = 1_000_000;
    let lag = 700; // the first wake-up is late by more than maxLatenessMs (margin 1000 / 2)
    const sleeps: number[] = [];
    const limiter = new MemoryRateLimiter({
      requestsPerWindow: 60,
      tokensPerWindow: 1_000_000,
      now: () => now,
      sleep: async (ms) => {
        sleeps.push(ms);
        now += ms + lag;
        lag = 0;
      },
    });
    await limiter.acquire(10); // immediate
    const before = now;
    await limiter.acquire(10); // reserved 1016.7 ms ahead, woke 700 ms late: dropped
    // The second reservation is one interval after the dropped one, relative to the late wake-up.
    expect(sleeps).toHaveLength(2);
    expect(sleeps[0]).toBeCloseTo(61_000 / 60);
    expect(now - before).toBeCloseTo(2 * (61_000 / 60));
  });

  it('uses a grant anyway after MAX_STALE_GRANTS drops (a lagging process must not eat the quota)', async () => {
    let now = 0;
    let sleeps = 0;
    const limiter = new MemoryRateLimiter({
      requestsPerWindow: 60,
      tokensPerWindow: 1_000_000,
      now: () => now,
      // Every wake-up 600 ms late: later than maxLatenessMs (500), sooner than the next slot.
      sleep: async (ms) => {
        sleeps++;
        now += ms + 600;
      },
    });
    await limiter.acquire(10);
    sleeps = 0;
    await limiter.acquire(10);
    expect(sleeps).toBe(MAX_STALE_GRANTS + 1);
  });

  it('without a margin there is nothing to protect: no lateness check', async () => {
    let now = 0;
    let sleeps = 0;
    const limiter = new MemoryRateLimiter({
      requestsPerWindow: 60,
      tokensPerWindow: 1_000_000,
      marginMs: 0,
      now: () => now,
      sleep: async (ms) => {
        sleeps++;
        now += ms + 5_000;
      },
    });
    await limiter.acquire(10);
    await limiter.acquire(10);
    expect(sleeps).toBe(1);
  });
});

describe('DynamoDbRateLimiter lateness', () => {
  let db: DynamoDbLocal;
  let admin: DynamoDBClient;
  let client: DynamoDBClient;
  const tableName = `ratelimit-late-${randomUUID()}`;
  beforeAll(async () => {
    db = await startDynamoDbLocal();
    admin = localDynamoDbClient(db.endpoint);
    client = localDynamoDbClient(db.endpoint);
    const { timeToLiveAttribute: _ttl, ...schema } = TABLE_SCHEMAS.RATE_LIMIT_TABLE;
    await admin.send(new CreateTableCommand({ ...schema, TableName: tableName }));
    await waitUntilTableExists({ client: admin, maxWaitTime: 30 }, { TableName: tableName });
  }, 120_000);
  afterAll(async () => {
    await admin?.send(new DeleteTableCommand({ TableName: tableName })).catch(() => undefined);
    client?.destroy();
    admin?.destroy();
    await db?.stop();
  });

  it('drops an immediate grant whose conditional write landed too late', async () => {
    let now = 5_000_000;
    const doc = DynamoDBDocumentClient.from(client);
    // The first conditional write takes 800 ms (on the limiter's clock): its grant, reserved for
    // the instant it was computed, can only be used 800 ms late.
    let writes = 0;
    doc.middlewareStack.add(
      (next, context) => async (args) => {
        const out = await next(args);
        if (context.commandName === 'PutItemCommand' && ++writes === 1) now += 800;
        return out;
      },
      { step: 'initialize', name: 'slowFirstWrite' },
    );
    const limiter = new DynamoDbRateLimiter({
      doc,
      tableName,
      bucket: `b-${randomUUID()}`,
      requestsPerWindow: 60,
      tokensPerWindow: 1_000_000,
      now: () => now,
      sleep: async (ms) => {
        now += ms;
      },
    });
    await limiter.acquire(10);
    expect(limiter.stats()).toMatchObject({ grants: 2, staleGrants: 1 });
  });
});

describe('Gemini analyzer: grant placement', () => {
  it('takes its grant inside the SDK fetch: a request that cannot even be built takes no slot', async () => {
    let grants = 0;
    const analyzer = createGeminiAnalyzer({
      apiKey: 'k',
      baseUrl: 'http://[::1', // the SDK fails to build the URL, before any fetch
      retry: { maxAttempts: 1 },
      rateLimiter: { acquire: async () => void grants++ },
    });
    const err = await analyzer
      .analyzeChunk({ tenantId: 't', documentId: 'd', chunkIndex: 0, analyses: ['summary'], pages: [{ page: 1, text: 'Hello world. It is fine.' }] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(grants).toBe(0);
  });
});
