/**
 * LeaseRefresher against DynamoDB Local: every conditional transition of a lease row
 * (KCL's DynamoDBLeaseRefresherIntegrationTest, plus our checkpoint rules).
 */
import { GetCommand, PutCommand, ScanCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { InvalidCheckpointError } from '../src/stream/leases/errors.js';
import { newLease, type Lease } from '../src/stream/leases/lease.js';
import { LeaseRefresher } from '../src/stream/leases/lease-refresher.js';
import { createLeaseTableFixture, type LeaseTableFixture } from './helpers/lease-table.js';

let table: LeaseTableFixture;
let refresher: LeaseRefresher;

beforeAll(async () => {
  table = await createLeaseTableFixture('refresher');
  refresher = new LeaseRefresher({ client: table.doc, tableName: table.tableName });
});
afterAll(async () => {
  await table?.dispose();
});
beforeEach(async () => {
  await table.clear();
});

async function rawItem(leaseKey: string): Promise<Record<string, unknown> | undefined> {
  const out = await table.doc.send(new GetCommand({ TableName: table.tableName, Key: { leaseKey }, ConsistentRead: true }));
  return out.Item;
}

function toItemLike(leaseKey: string): Record<string, unknown> {
  const { parentShardIds: _parents, leaseOwner: _owner, ...rest } = newLease({ leaseKey });
  return rest;
}

async function created(leaseKey: string, owner: string | null = null): Promise<Lease> {
  const lease = newLease({ leaseKey, leaseOwner: owner });
  expect(await refresher.createLeaseIfNotExists(lease)).toBe(true);
  return lease;
}

describe('LeaseRefresher', () => {
  it('writes the KCL 2.x attribute names and types', async () => {
    const lease = newLease({ leaseKey: 'shardId-000000000007', parentShardIds: ['shardId-000000000002', 'shardId-000000000001'] });
    expect(await refresher.createLeaseIfNotExists(lease)).toBe(true);
    const item = await rawItem('shardId-000000000007');
    expect(item).toEqual({
      leaseKey: 'shardId-000000000007',
      leaseCounter: 0,
      checkpoint: 'TRIM_HORIZON',
      checkpointSubSequenceNumber: 0,
      ownerSwitchesSinceCheckpoint: 0,
      parentShardId: new Set(['shardId-000000000001', 'shardId-000000000002']),
    });
    expect(await refresher.getLease('shardId-000000000007')).toEqual({
      ...lease,
      parentShardIds: ['shardId-000000000001', 'shardId-000000000002'],
    });
  });

  it('creates a lease only once', async () => {
    await created('a', 'w1');
    expect(await refresher.createLeaseIfNotExists(newLease({ leaseKey: 'a', leaseOwner: 'w2' }))).toBe(false);
    expect((await refresher.getLease('a'))?.leaseOwner).toBe('w1');
  });

  it('lists every lease across scan pages, consistently', async () => {
    // 120 rows of ~9 KB exceed DynamoDB's 1 MB scan page: the listing needs more than one page.
    const keys = Array.from({ length: 120 }, (_, i) => `shard-${String(i).padStart(4, '0')}`);
    await Promise.all(
      keys.map((leaseKey) =>
        table.doc.send(
          new PutCommand({
            TableName: table.tableName,
            Item: { ...toItemLike(leaseKey), padding: 'x'.repeat(9_000) },
          }),
        ),
      ),
    );
    const scans: Array<{ ConsistentRead?: boolean }> = [];
    const counting = {
      send: (command: { input: unknown }) => {
        if (command instanceof ScanCommand) scans.push(command.input as { ConsistentRead?: boolean });
        return table.doc.send(command as never);
      },
    } as unknown as DynamoDBDocumentClient;
    const leases = await new LeaseRefresher({ client: counting, tableName: table.tableName }).listLeases();
    expect(leases.map((l) => l.leaseKey).sort()).toEqual(keys);
    expect(scans.length).toBeGreaterThan(1);
    expect(scans.every((input) => input.ConsistentRead === true)).toBe(true);
  });

  it('reads rows written by the Java KCL (extra attributes, single parent as a set)', async () => {
    await table.doc.send(
      new PutCommand({
        TableName: table.tableName,
        Item: {
          leaseKey: 'shardId-1',
          leaseOwner: 'java-worker',
          leaseCounter: 42,
          checkpoint: '49590338271490256608559692538361571095921575989136588898',
          checkpointSubSequenceNumber: 3,
          ownerSwitchesSinceCheckpoint: 1,
          parentShardId: new Set(['shardId-0']),
          pendingCheckpoint: 'x',
          throughputKBps: 1.5,
        },
      }),
    );
    expect(await refresher.getLease('shardId-1')).toEqual({
      leaseKey: 'shardId-1',
      leaseOwner: 'java-worker',
      leaseCounter: 42,
      checkpoint: '49590338271490256608559692538361571095921575989136588898',
      checkpointSubSequenceNumber: 3,
      ownerSwitchesSinceCheckpoint: 1,
      parentShardIds: ['shardId-0'],
      checkpointOwner: null,
    });
  });

  describe('renewLease', () => {
    it('increments the counter when counter and owner match', async () => {
      const lease = await created('a', 'me');
      const renewed = await refresher.renewLease(lease);
      expect(renewed?.leaseCounter).toBe(1);
      expect((await refresher.getLease('a'))?.leaseCounter).toBe(1);
    });

    it('fails after another worker took the lease', async () => {
      const lease = await created('a', 'me');
      expect(await refresher.takeLease(lease, 'other')).toBeDefined();
      expect(await refresher.renewLease(lease)).toBeUndefined();
      expect(await refresher.getLease('a')).toMatchObject({ leaseOwner: 'other', leaseCounter: 1 });
    });

    it('fails on a stale counter even when the owner is unchanged', async () => {
      const lease = await created('a', 'me');
      await refresher.renewLease(lease);
      const again = await refresher.renewLease({ ...lease, leaseCounter: 1 });
      expect(again?.leaseCounter).toBe(2);
      // counter 0 is now two writes behind: a real loss, not a lost response.
      expect(await refresher.renewLease(lease)).toBeUndefined();
    });

    it('re-reads on a failed condition and recovers its own write whose response was lost', async () => {
      const lease = await created('a', 'me');
      // Simulate: the renewal landed, its response was lost, the SDK retried with the old counter.
      await table.doc.send(
        new UpdateCommand({
          TableName: table.tableName,
          Key: { leaseKey: 'a' },
          UpdateExpression: 'SET leaseCounter = :one',
          ExpressionAttributeValues: { ':one': 1 },
        }),
      );
      const renewed = await refresher.renewLease(lease);
      expect(renewed).toMatchObject({ leaseOwner: 'me', leaseCounter: 1 });
    });

    it('does not "recover" when the extra increment belongs to another owner', async () => {
      const lease = await created('a', 'me');
      await refresher.takeLease(lease, 'other');
      expect(await refresher.renewLease(lease)).toBeUndefined();
    });
  });

  describe('takeLease', () => {
    it('takes an unowned lease without counting an owner switch', async () => {
      const lease = await created('a');
      const taken = await refresher.takeLease(lease, 'me');
      expect(taken).toMatchObject({ leaseOwner: 'me', leaseCounter: 1, ownerSwitchesSinceCheckpoint: 0 });
    });

    it('counts an owner switch when taken from another worker', async () => {
      const lease = await created('a', 'w1');
      const taken = await refresher.takeLease(lease, 'w2');
      expect(taken).toMatchObject({ leaseOwner: 'w2', leaseCounter: 1, ownerSwitchesSinceCheckpoint: 1 });
      const back = await refresher.takeLease(taken!, 'w1');
      expect(back).toMatchObject({ leaseOwner: 'w1', leaseCounter: 2, ownerSwitchesSinceCheckpoint: 2 });
    });

    it('fails when the counter moved since the scan', async () => {
      const lease = await created('a', 'w1');
      await refresher.renewLease(lease);
      expect(await refresher.takeLease(lease, 'w2')).toBeUndefined();
    });

    it('fails when the owner changed (or the lease became owned) at the same counter', async () => {
      const lease = await created('a');
      // A row edited to be owned without a counter bump must still not be taken as unowned.
      await table.doc.send(
        new UpdateCommand({
          TableName: table.tableName,
          Key: { leaseKey: 'a' },
          UpdateExpression: 'SET leaseOwner = :o',
          ExpressionAttributeValues: { ':o': 'w1' },
        }),
      );
      expect(await refresher.takeLease(lease, 'w2')).toBeUndefined();
    });

    it('never creates a row for a deleted lease', async () => {
      const lease = await created('a');
      await refresher.deleteLease('a');
      expect(await refresher.takeLease(lease, 'me')).toBeUndefined();
      expect(await rawItem('a')).toBeUndefined();
    });

    it('lets exactly one of many concurrent takers win', async () => {
      const lease = await created('a', 'dead-worker');
      const results = await Promise.all(Array.from({ length: 8 }, (_, i) => refresher.takeLease(lease, `w${i}`)));
      const winners = results.filter((r) => r !== undefined);
      expect(winners).toHaveLength(1);
      expect((await refresher.getLease('a'))?.leaseOwner).toBe(winners[0]?.leaseOwner);
      expect((await refresher.getLease('a'))?.leaseCounter).toBe(1);
    });
  });

  describe('evictLease', () => {
    it('removes the owner if it is still the one seen, whatever the counter', async () => {
      const lease = await created('a', 'me');
      await refresher.renewLease(lease);
      const released = await refresher.evictLease(lease);
      expect(released).toMatchObject({ leaseOwner: null, leaseCounter: 2 });
      expect(await rawItem('a')).not.toHaveProperty('leaseOwner');
    });

    it('does not touch a lease that changed hands', async () => {
      const lease = await created('a', 'me');
      await refresher.takeLease(lease, 'other');
      expect(await refresher.evictLease(lease)).toBeUndefined();
      expect((await refresher.getLease('a'))?.leaseOwner).toBe('other');
    });
  });

  describe('updateCheckpoint', () => {
    const cp = (sequenceNumber: string, subSequenceNumber = 0) => ({ sequenceNumber, subSequenceNumber });

    it('writes the checkpoint, resets owner switches and bumps the counter', async () => {
      const lease = await created('a', 'w1');
      const mine = (await refresher.takeLease(lease, 'me'))!;
      expect(mine.ownerSwitchesSinceCheckpoint).toBe(1);
      const updated = await refresher.updateCheckpoint(mine, cp('100', 2));
      expect(updated).toMatchObject({ checkpoint: '100', checkpointSubSequenceNumber: 2, ownerSwitchesSinceCheckpoint: 0, leaseCounter: 2 });
    });

    it('refuses a checkpoint lower than the current one, comparing as integers', async () => {
      const lease = await created('a', 'me');
      const at100 = (await refresher.updateCheckpoint(lease, cp('100')))!;
      await expect(refresher.updateCheckpoint(at100, cp('99'))).rejects.toMatchObject({ reason: 'backwards' });
      await expect(refresher.updateCheckpoint(at100, cp('TRIM_HORIZON'))).rejects.toBeInstanceOf(InvalidCheckpointError);
      // "1000" < "999" as strings, not as numbers.
      const at999 = (await refresher.updateCheckpoint(at100, cp('999')))!;
      const at1000 = await refresher.updateCheckpoint(at999, cp('1000'));
      expect(at1000?.checkpoint).toBe('1000');
      expect((await refresher.getLease('a'))?.checkpoint).toBe('1000');
    });

    it('accepts the same checkpoint again and a higher sub-sequence number', async () => {
      const lease = await created('a', 'me');
      const a = (await refresher.updateCheckpoint(lease, cp('100')))!;
      const b = (await refresher.updateCheckpoint(a, cp('100')))!;
      const c = await refresher.updateCheckpoint(b, cp('100', 1));
      expect(c).toMatchObject({ checkpoint: '100', checkpointSubSequenceNumber: 1, leaseCounter: 3 });
    });

    it('treats SHARD_END as terminal', async () => {
      const lease = await created('a', 'me');
      const ended = (await refresher.updateCheckpoint(lease, cp('SHARD_END')))!;
      await expect(refresher.updateCheckpoint(ended, cp('500'))).rejects.toMatchObject({ reason: 'shard-ended' });
      expect((await refresher.updateCheckpoint(ended, cp('SHARD_END')))?.checkpoint).toBe('SHARD_END');
    });

    it('refuses malformed values without writing', async () => {
      const lease = await created('a', 'me');
      await expect(refresher.updateCheckpoint(lease, cp('12x'))).rejects.toMatchObject({ reason: 'malformed' });
      await expect(refresher.updateCheckpoint(lease, cp('12', -1))).rejects.toMatchObject({ reason: 'malformed' });
      expect((await refresher.getLease('a'))?.leaseCounter).toBe(0);
    });

    it('fails for a holder whose view is stale (counter moved)', async () => {
      const lease = await created('a', 'me');
      await refresher.renewLease(lease);
      expect(await refresher.updateCheckpoint(lease, cp('100'))).toBeUndefined();
      expect((await refresher.getLease('a'))?.checkpoint).toBe('TRIM_HORIZON');
    });

    it('fails for a former holder after another worker took the lease', async () => {
      const lease = await created('a', 'me');
      const theirs = (await refresher.takeLease(lease, 'other'))!;
      await refresher.updateCheckpoint(theirs, cp('500'));
      expect(await refresher.updateCheckpoint(lease, cp('400'))).toBeUndefined();
      expect(await refresher.updateCheckpoint(lease, cp('600'))).toBeUndefined();
      expect((await refresher.getLease('a'))?.checkpoint).toBe('500');
    });

    it('never moves the stored checkpoint backwards, even for a writer whose stored-checkpoint view is wrong', async () => {
      const lease = await created('a', 'me');
      const at500 = (await refresher.updateCheckpoint(lease, cp('500')))!;
      // Forge a view with the right counter and owner but an older checkpoint.
      const forged: Lease = { ...at500, checkpoint: '100' };
      expect(await refresher.updateCheckpoint(forged, cp('200'))).toBeUndefined();
      expect((await refresher.getLease('a'))?.checkpoint).toBe('500');
    });

    it('recovers its own checkpoint write whose response was lost', async () => {
      const lease = await created('a', 'me');
      await table.doc.send(
        new UpdateCommand({
          TableName: table.tableName,
          Key: { leaseKey: 'a' },
          UpdateExpression: 'SET leaseCounter = :one, checkpoint = :cp',
          ExpressionAttributeValues: { ':one': 1, ':cp': '700' },
        }),
      );
      expect(await refresher.updateCheckpoint(lease, cp('700'))).toMatchObject({ checkpoint: '700', leaseCounter: 1 });
    });
  });

  it('deletes a lease', async () => {
    await created('a', 'me');
    await refresher.deleteLease('a');
    expect(await refresher.getLease('a')).toBeUndefined();
  });
});
