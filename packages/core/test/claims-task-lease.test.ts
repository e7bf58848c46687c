/**
 * The fleet-wide task lease (claims/task-lease.ts), on a real DynamoDB Local lease table, with
 * manual time: the KCL rules it follows (docs/claims.md).
 * - A free lease (no row, or released) is taken at once; a held one is never taken while its
 *   counter moves, and is taken once it stood still for the lease duration on the taker's clock.
 * - Of two takers of one expired lease, exactly one wins (the counter condition).
 * - A renewal whose answer was lost (applied, then retried) still counts as a renewal.
 * - The row is invisible to the shard leases (no `leaseCounter`).
 * Also: the chaos soak's throttling injection (aws/clients.ts) fails request attempts inside the
 * SDK's retries, through the document client, on a real connection.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { DynamoDBClient, ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { TaskLease } from '../src/claims/task-lease.js';
import { assemblyClaimFree, assemblyOwnerFor } from '../src/claims/assembly-claim.js';
import { injectThrottling } from '../src/aws/clients.js';
import { LeaseRefresher } from '../src/stream/leases/lease-refresher.js';
import { createLeaseTableFixture, type LeaseTableFixture } from './helpers/lease-table.js';
import { ManualClock } from './helpers/manual-time.js';

const DURATION = 9_000;
let table: LeaseTableFixture;

beforeAll(async () => {
  table = await createLeaseTableFixture('task');
});
afterAll(async () => {
  await table?.dispose();
});
beforeEach(async () => {
  await table.clear();
});

function lease(owner: string, clock: ManualClock): TaskLease {
  return new TaskLease({ doc: table.doc, tableName: table.tableName, name: 'reconciler', owner, durationMs: DURATION, clock });
}

describe('TaskLease', () => {
  it('is taken at once when free, renewed by its holder, and never taken while its counter moves', async () => {
    const ca = new ManualClock();
    const cb = new ManualClock();
    const a = lease('a', ca);
    const b = lease('b', cb);
    expect(await a.acquire()).toBe(true);
    expect(await b.acquire()).toBe(false);
    for (let i = 0; i < 5; i++) {
      cb.passTime(DURATION / 2);
      expect(await a.acquire()).toBe(true); // renews: the counter moves
      expect(await b.acquire()).toBe(false);
    }
  });

  it('is taken after its counter stood still for the whole duration on the taker\'s clock, not before', async () => {
    const a = lease('a', new ManualClock());
    const cb = new ManualClock();
    const b = lease('b', cb);
    expect(await a.acquire()).toBe(true);
    expect(await b.acquire()).toBe(false); // first sight of the counter
    cb.passTime(DURATION - 1);
    expect(await b.acquire()).toBe(false);
    cb.passTime(1);
    expect(await b.acquire()).toBe(true);
    // The old holder learns it at its next renewal.
    expect(await a.acquire()).toBe(false);
    expect(a.holding).toBe(false);
  });

  it('of two takers of one expired lease, exactly one wins', async () => {
    const a = lease('a', new ManualClock());
    expect(await a.acquire()).toBe(true);
    const takers = ['b', 'c', 'd'].map((o) => ({ clock: new ManualClock(), o }));
    const leases = takers.map((t) => lease(t.o, t.clock));
    await Promise.all(leases.map((l) => l.acquire()));
    for (const t of takers) t.clock.passTime(DURATION);
    const won = await Promise.all(leases.map((l) => l.acquire()));
    expect(won.filter(Boolean)).toHaveLength(1);
  });

  it('released, it is taken at once by the next process', async () => {
    const a = lease('a', new ManualClock());
    const b = lease('b', new ManualClock());
    expect(await a.acquire()).toBe(true);
    expect(await b.acquire()).toBe(false);
    await a.release();
    expect(await b.acquire()).toBe(true);
  });

  it('a renewal applied but answered with a failed condition (the SDK retried it) is still a renewal', async () => {
    const a = lease('a', new ManualClock());
    expect(await a.acquire()).toBe(true);
    // The first attempt of the next renewal lands; its answer is lost and the retry finds counter + 1.
    await table.doc.send(
      new UpdateCommand({ TableName: table.tableName, Key: { leaseKey: 'task#reconciler' }, UpdateExpression: 'ADD taskCounter :one', ExpressionAttributeValues: { ':one': 1 } }),
    );
    const row = await table.doc.send(new GetCommand({ TableName: table.tableName, Key: { leaseKey: 'task#reconciler' } }));
    expect(row.Item?.taskCounter).toBe(2);
    // Renewal sees counter 2 where it expected 1: it re-reads, finds itself owner at 1 + 1, and keeps it.
    expect(await a.acquire()).toBe(true);
  });

  it('is not a shard lease: the shard lease refresher does not list it', async () => {
    expect(await lease('a', new ManualClock()).acquire()).toBe(true);
    expect(await new LeaseRefresher({ client: table.doc, tableName: table.tableName }).listLeases()).toEqual([]);
  });
});

describe('assembly claim rules (claims/assembly-claim.ts)', () => {
  it('the owner derives from the ready job row, not the invocation; a claim is free when released or not heartbeated for the timeout', () => {
    const job = { tenantId: 't', documentId: 'd', updatedAt: '2026-12-06T10:00:00.000Z' };
    expect(assemblyOwnerFor(job)).toBe(assemblyOwnerFor({ ...job }));
    expect(assemblyOwnerFor(job)).not.toBe(assemblyOwnerFor({ ...job, updatedAt: '2026-12-06T10:00:00.001Z' }));
    const now = Date.parse('2026-12-06T10:01:00.000Z');
    expect(assemblyClaimFree({ assemblyOwner: undefined, assemblyClaimedAt: '2026-12-06T10:00:59.000Z' }, 60_000, now)).toBe(true);
    expect(assemblyClaimFree({ assemblyOwner: 'x', assemblyClaimedAt: '2026-12-06T10:00:30.000Z' }, 60_000, now)).toBe(false);
    expect(assemblyClaimFree({ assemblyOwner: 'x', assemblyClaimedAt: '2026-12-06T09:59:59.000Z' }, 60_000, now)).toBe(true);
  });
});

describe('throttling injection (FAULT_AWS_ERROR_RATE)', () => {
  it('fails request attempts inside the SDK retries: at rate 1 every attempt fails and the caller sees ThrottlingException', async () => {
    const client = new DynamoDBClient({ region: 'us-east-1', endpoint: table.db.endpoint, credentials: { accessKeyId: 'x', secretAccessKey: 'x' }, maxAttempts: 3 });
    let draws = 0;
    injectThrottling(client as never, 1, () => (draws++, 0));
    await expect(client.send(new ListTablesCommand({}))).rejects.toMatchObject({ name: 'ThrottlingException' });
    expect(draws).toBe(3); // one per attempt: the SDK retried the throttling twice
    client.destroy();
    const ok = new DynamoDBClient({ region: 'us-east-1', endpoint: table.db.endpoint, credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
    injectThrottling(ok as never, 0.5, () => (draws++ % 2 === 0 ? 0 : 0.9)); // first attempt throttled, the retry passes
    await expect(ok.send(new ListTablesCommand({}))).resolves.toBeDefined();
    ok.destroy();
  });
});
