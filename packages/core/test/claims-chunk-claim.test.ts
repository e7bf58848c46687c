/**
 * The chunk claim (claims/chunk-claim.ts) with manual time, on a real status table in DynamoDB
 * Local: the rules of docs/claims.md.
 * - The holder heartbeats every third of the timeout, never two at once; each moves the counter.
 * - A second delivery waits while the counter moves, and takes the claim over only once it stood
 *   still for the whole timeout on the taker's own clock.
 * - The old holder learns it at its next heartbeat (its claim is lost), and its final write
 *   (a completion) is refused: the chunk is counted once.
 * - A delivery older than the row's attempt never claims; a finished chunk is reported done.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CreateTableCommand, DeleteTableCommand, waitUntilTableExists, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { acquireChunkClaim, holdChunkClaim } from '../src/claims/chunk-claim.js';
import { StatusTable } from '../src/aws/status-table.js';
import { TABLE_SCHEMAS } from '../src/aws/resources.js';
import type { Job } from '../src/jobs/model.js';
import { localDynamoDbClient, startDynamoDbLocal, type DynamoDbLocal } from './helpers/dynamodb-local.js';
import { flush, ManualClock, ManualScheduler } from './helpers/manual-time.js';
import type { HeldClaim } from '../src/claims/chunk-claim.js';

/** Settles the heartbeat in flight, so manual time never moves during a DynamoDB call. */
const idle = (...held: HeldClaim[]) => async () => {
  await flush();
  await Promise.all(held.map((h) => h.whenIdle()));
};

const TIMEOUT = 3_000;
let db: DynamoDbLocal;
let client: DynamoDBClient;
let doc: DynamoDBDocumentClient;
let tableName: string;
let status: StatusTable;

beforeAll(async () => {
  db = await startDynamoDbLocal();
  client = localDynamoDbClient(db.endpoint);
  doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
  tableName = `status-claims-${randomUUID()}`;
  const { timeToLiveAttribute: _ttl, ...schema } = TABLE_SCHEMAS.STATUS_TABLE;
  await client.send(new CreateTableCommand({ ...schema, TableName: tableName }));
  await waitUntilTableExists({ client, maxWaitTime: 30 }, { TableName: tableName });
  status = new StatusTable(doc, tableName);
});

afterAll(async () => {
  await client?.send(new DeleteTableCommand({ TableName: tableName })).catch(() => undefined);
  doc?.destroy();
  client?.destroy();
  await db?.stop();
});

/** A processing job with one pending chunk. */
async function processingChunk(): Promise<{ tenantId: string; documentId: string; chunkIndex: number }> {
  const documentId = randomUUID();
  const now = new Date().toISOString();
  const job: Job = {
    tenantId: 't', documentId, status: 'queued', mode: 'async', filename: 'f.pdf', contentType: 'application/pdf', sizeBytes: 1, sha256: '0',
    pagesPerChunk: 1, analyses: ['summary'], chunksTotal: 0, chunksSucceeded: 0, chunksFailed: 0, sourceKey: 'k', createdAt: now, updatedAt: now,
  };
  await status.createJob(job);
  await status.commitChunks('t', documentId, [{ index: 0, pages: [1] }], { chunksTotal: 1 }, 'queued');
  return { tenantId: 't', documentId, chunkIndex: 0 };
}

describe('chunk claim', () => {
  it('the holder heartbeats every third of the timeout, one at a time, each moving the counter', async () => {
    const key = await processingChunk();
    const clock = new ManualClock();
    const scheduler = new ManualScheduler(clock);
    const got = await acquireChunkClaim(status, key, { owner: 'a', attempt: 1, timeoutMs: TIMEOUT, clock });
    const row = got?.claimed;
    expect(row?.claimCounter).toBe(1);
    const held = holdChunkClaim(status, key, { owner: 'a', counter: row?.claimCounter as number }, { timeoutMs: TIMEOUT, scheduler });
    expect(scheduler.pending).toBe(1);
    await scheduler.advance(TIMEOUT / 3 - 1, idle(held));
    expect(held.current().counter).toBe(1);
    await scheduler.advance(1, idle(held));
    expect(held.current().counter).toBe(2);
    await scheduler.advance(TIMEOUT, idle(held));
    expect(held.current().counter).toBe(5);
    expect(scheduler.pending).toBe(1); // never two heartbeats scheduled
    expect(await held.settle()).toEqual({ owner: 'a', counter: 5 });
    expect(scheduler.pending).toBe(0);
  });

  it('a second delivery takes over only after the counter stood still for the timeout on its clock; the old holder then loses, and counts nothing', async () => {
    const key = await processingChunk();
    const clockA = new ManualClock();
    const schedulerA = new ManualScheduler(clockA);
    const a = await acquireChunkClaim(status, key, { owner: 'a', attempt: 1, timeoutMs: TIMEOUT, clock: clockA });
    const heldA = holdChunkClaim(status, key, { owner: 'a', counter: a?.claimed?.claimCounter as number }, { timeoutMs: TIMEOUT, scheduler: schedulerA });

    // B polls while A heartbeats: B's clock and A's scheduler move together, and B never takes it.
    const clockB = new ManualClock();
    let polls = 0;
    const live = acquireChunkClaim(status, key, {
      owner: 'b',
      attempt: 1,
      timeoutMs: TIMEOUT,
      clock: clockB,
      sleep: async (ms) => {
        polls++;
        clockB.passTime(ms);
        await schedulerA.advance(ms, idle(heldA));
        if (polls === 12) throw new Error('still waiting, as it should');
      },
    });
    await expect(live).rejects.toThrow('still waiting');
    expect(heldA.lost.aborted).toBe(false);

    // A stops heartbeating (paused): B takes over once the counter stood still for TIMEOUT.
    heldA.stop();
    const clockC = new ManualClock();
    let waited = 0;
    const c = await acquireChunkClaim(status, key, {
      owner: 'c',
      attempt: 1,
      timeoutMs: TIMEOUT,
      clock: clockC,
      sleep: async (ms) => {
        waited += ms;
        clockC.passTime(ms);
      },
    });
    expect(c?.claimed?.claimOwner).toBe('c');
    expect(waited).toBeGreaterThanOrEqual(TIMEOUT);
    expect(waited).toBeLessThan(TIMEOUT + TIMEOUT / 3 + 1);

    // A resumes: its heartbeat finds the claim gone; its completion is refused.
    const resumed = holdChunkClaim(status, key, heldA.current(), { timeoutMs: TIMEOUT, scheduler: schedulerA });
    await schedulerA.advance(TIMEOUT / 3, idle(resumed));
    expect(resumed.lost.aborted).toBe(true);
    expect(await resumed.settle()).toBeUndefined();
    expect(await status.completeChunk(key.tenantId, key.documentId, 0, heldA.current(), { status: 'succeeded' })).toBe(false);
    expect(await status.completeChunk(key.tenantId, key.documentId, 0, { owner: 'c', counter: c?.claimed?.claimCounter as number }, { status: 'succeeded' })).toBe(true);
    const job = await status.getJob(key.tenantId, key.documentId);
    expect(job?.chunksSucceeded).toBe(1);
    // A redelivery now finds it done.
    expect((await acquireChunkClaim(status, key, { owner: 'd', attempt: 1, timeoutMs: TIMEOUT, clock: new ManualClock() }))?.done?.status).toBe('succeeded');
  });

  it('a delivery older than the row\'s attempt never claims', async () => {
    const key = await processingChunk();
    const a = await acquireChunkClaim(status, key, { owner: 'a', attempt: 2, timeoutMs: TIMEOUT, clock: new ManualClock() });
    expect(a?.claimed?.attempt).toBe(2);
    const stale = await acquireChunkClaim(status, key, { owner: 'b', attempt: 1, timeoutMs: TIMEOUT, clock: new ManualClock(), sleep: async () => undefined });
    expect(stale).toBeUndefined();
  });
});
