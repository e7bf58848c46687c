/**
 * LeaseRenewer against DynamoDB Local with an injected clock: the KCL's
 * DynamoDBLeaseRenewerIntegrationTest cases, plus re-read on a failed condition, expiry on the
 * holder's clock, serialised writes and concurrency tokens.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { LeaseLostError, type LeaseLostReason } from '../src/stream/leases/errors.js';
import { newLease, type HeldLease, type Lease } from '../src/stream/leases/lease.js';
import { LeaseRefresher } from '../src/stream/leases/lease-refresher.js';
import { LeaseRenewer } from '../src/stream/leases/lease-renewer.js';
import { createLeaseTableFixture, type LeaseTableFixture } from './helpers/lease-table.js';
import { ManualClock } from './helpers/manual-time.js';

const LEASE_DURATION_MS = 2_000;

let table: LeaseTableFixture;
let refresher: LeaseRefresher;
let clock: ManualClock;
let renewer: LeaseRenewer;
let lost: Array<{ leaseKey: string; reason: LeaseLostReason; token: string }>;

beforeAll(async () => {
  table = await createLeaseTableFixture('renewer');
  refresher = new LeaseRefresher({ client: table.doc, tableName: table.tableName });
});
afterAll(async () => {
  await table?.dispose();
});
beforeEach(async () => {
  await table.clear();
  clock = new ManualClock();
  lost = [];
  renewer = newRenewer('foo', refresher);
});

function newRenewer(workerId: string, via: LeaseRefresher): LeaseRenewer {
  return new LeaseRenewer(via, {
    workerId,
    failoverTimeMs: LEASE_DURATION_MS,
    clock,
    onLeaseLost: (lease, reason) => lost.push({ leaseKey: lease.leaseKey, reason, token: lease.concurrencyToken }),
  });
}

/** Creates leases owned by `owner` and returns them as read back. */
async function withLeases(owner: string, ...keys: string[]): Promise<Lease[]> {
  const leases: Lease[] = [];
  for (const leaseKey of keys) {
    const lease = newLease({ leaseKey, leaseOwner: owner, parentShardIds: ['parentShardId'] });
    await refresher.createLeaseIfNotExists(lease);
    leases.push(lease);
  }
  return leases;
}

/** renewMutateAssert: one pass, then exactly `keys` are held, each at `counter`. */
async function renewMutateAssert(keys: string[], counter: number): Promise<Map<string, HeldLease>> {
  await renewer.renewLeases();
  const held = renewer.getCurrentlyHeldLeases();
  expect([...held.keys()].sort()).toEqual([...keys].sort());
  for (const key of keys) expect(held.get(key)?.leaseCounter).toBe(counter);
  return held;
}

const cp = (sequenceNumber: string) => ({ sequenceNumber, subSequenceNumber: 0 });

describe('LeaseRenewer (KCL DynamoDBLeaseRenewerIntegrationTest)', () => {
  it('testSimpleRenew', async () => {
    renewer.addLeasesToRenew(await withLeases('foo', '1'));
    await renewMutateAssert(['1'], 1);
    expect((await refresher.getLease('1'))?.leaseCounter).toBe(1);
  });

  it('testLeaseLoss: a lease taken by another worker is dropped and reported', async () => {
    renewer.addLeasesToRenew(await withLeases('foo', '1', '2'));
    const held = await renewMutateAssert(['1', '2'], 1);
    await refresher.takeLease(held.get('2')!, 'bar');
    await renewMutateAssert(['1'], 2);
    expect(lost).toEqual([{ leaseKey: '2', reason: 'taken', token: held.get('2')!.concurrencyToken }]);
  });

  it('testClear', async () => {
    renewer.addLeasesToRenew(await withLeases('foo', '1'));
    await renewMutateAssert(['1'], 1);
    renewer.clearCurrentlyHeldLeases();
    await renewMutateAssert([], 0);
  });

  it('testGetCurrentlyHeldLease: returns a copy that later renewals do not change', async () => {
    renewer.addLeasesToRenew(await withLeases('foo', '1'));
    await renewMutateAssert(['1'], 1);
    const lease = renewer.getCurrentlyHeldLease('1')!;
    expect(lease.leaseCounter).toBe(1);
    await renewMutateAssert(['1'], 2);
    expect(lease.leaseCounter).toBe(1);
    (lease.parentShardIds as string[]).push('mutated');
    expect(renewer.getCurrentlyHeldLease('1')?.parentShardIds).toEqual(['parentShardId']);
  });

  it('testGetCurrentlyHeldLeases: copies stay as they were after a loss', async () => {
    renewer.addLeasesToRenew(await withLeases('foo', '1', '2'));
    const heldLeases = await renewMutateAssert(['1', '2'], 1);
    await refresher.takeLease(heldLeases.get('2')!, 'bar');
    await renewMutateAssert(['1'], 2);
    expect(heldLeases.size).toBe(2);
    expect(heldLeases.get('1')?.leaseCounter).toBe(1);
    expect(heldLeases.get('2')?.leaseCounter).toBe(1);
  });

  it('testUpdateLease: a checkpoint bumps the counter and counts as a renewal', async () => {
    renewer.addLeasesToRenew(await withLeases('foo', '1'));
    await renewMutateAssert(['1'], 1);
    const expected = renewer.getCurrentlyHeldLease('1')!;
    const updated = await renewer.updateCheckpoint('1', expected.concurrencyToken, cp('100'));
    expect(updated).toEqual({ ...expected, checkpoint: '100', leaseCounter: 2 });
    expect(renewer.getCurrentlyHeldLease('1')).toEqual(updated);
    await renewer.renewLeases();
    expect(renewer.getCurrentlyHeldLease('1')).toEqual({ ...updated, leaseCounter: 3 });
  });

  it('testUpdateLostLease: a checkpoint that finds the lease changed drops it at once', async () => {
    renewer.addLeasesToRenew(await withLeases('foo', '1'));
    await renewMutateAssert(['1'], 1);
    const lease = renewer.getCurrentlyHeldLease('1')!;
    // Someone bumps the counter behind the renewer's back.
    await refresher.renewLease(lease);
    expect(renewer.getCurrentlyHeldLease('1')).toBeDefined();
    await expect(renewer.updateCheckpoint('1', lease.concurrencyToken, cp('100'))).rejects.toMatchObject({
      name: 'LeaseLostError',
      reason: 'taken',
    });
    expect(renewer.getCurrentlyHeldLease('1')).toBeUndefined();
    expect(lost.map((l) => l.reason)).toEqual(['taken']);
    expect((await refresher.getLease('1'))?.checkpoint).toBe('TRIM_HORIZON');
  });

  it('testUpdateOldLease: no checkpoint once the loss is known', async () => {
    renewer.addLeasesToRenew(await withLeases('foo', '1'));
    await renewMutateAssert(['1'], 1);
    const lease = renewer.getCurrentlyHeldLease('1')!;
    await refresher.takeLease(lease, 'bar');
    await renewMutateAssert([], 0);
    const error = await renewer.updateCheckpoint('1', lease.concurrencyToken, cp('100')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LeaseLostError);
    expect((error as LeaseLostError).reason).toBe('not-held');
  });

  it('testUpdateRegainedLease: a regained lease refuses the old concurrency token', async () => {
    renewer.addLeasesToRenew(await withLeases('foo', '1'));
    await renewMutateAssert(['1'], 1);
    const lease = renewer.getCurrentlyHeldLease('1')!;
    const theirs = (await refresher.takeLease(lease, 'bar'))!;
    await renewMutateAssert([], 0);
    // Regain it, as the taker would.
    const regained = (await refresher.takeLease(theirs, 'foo'))!;
    const [held] = renewer.addLeasesToRenew([regained]);
    expect(held?.concurrencyToken).not.toBe(lease.concurrencyToken);
    await expect(renewer.updateCheckpoint('1', lease.concurrencyToken, cp('100'))).rejects.toMatchObject({ reason: 'stale-token' });
    expect((await refresher.getLease('1'))?.checkpoint).toBe('TRIM_HORIZON');
    // The new acquisition can.
    expect((await renewer.updateCheckpoint('1', held!.concurrencyToken, cp('100'))).checkpoint).toBe('100');
  });

  it('testLeaseTimeout: not renewed within the failover time on its own clock: not held, dropped, not renewed', async () => {
    renewer.addLeasesToRenew(await withLeases('foo', '1'));
    await renewMutateAssert(['1'], 1);
    clock.passTime(LEASE_DURATION_MS);
    expect(renewer.getCurrentlyHeldLeases().size).toBe(1);
    clock.passTime(1);
    expect(renewer.getCurrentlyHeldLeases().size).toBe(0);
    expect(renewer.getCurrentlyHeldLease('1')).toBeUndefined();
    const result = await renewer.renewLeases();
    expect(result.lost.map((l) => [l.lease.leaseKey, l.reason])).toEqual([['1', 'expired']]);
    expect((await refresher.getLease('1'))?.leaseCounter).toBe(1);
    const token = lost[0]!.token;
    await expect(renewer.updateCheckpoint('1', token, cp('5'))).rejects.toMatchObject({ reason: 'not-held' });
  });

  it('testInitialize: picks up leases the table says it owns', async () => {
    await withLeases('foo:8000', 'shd-0-0');
    await withLeases('other', 'shd-0-1');
    const restarted = newRenewer('foo:8000', refresher);
    const held = await restarted.initialize();
    expect(held.map((l) => l.leaseKey)).toEqual(['shd-0-0']);
    expect([...restarted.getCurrentlyHeldLeases().keys()]).toEqual(['shd-0-0']);
    expect((await refresher.getLease('shd-0-0'))?.leaseCounter).toBe(1);
  });
});

describe('LeaseRenewer (beyond the KCL test suite)', () => {
  it('re-reads on a failed condition: its own landed write keeps the lease', async () => {
    renewer.addLeasesToRenew(await withLeases('foo', '1'));
    // As if a renewal landed but its response was lost: the stored counter is one ahead, owner unchanged.
    const stale = renewer.getCurrentlyHeldLease('1')!;
    await refresher.renewLease(stale);
    const result = await renewer.renewLeases();
    expect(result.renewed).toEqual(['1']);
    expect(lost).toEqual([]);
    expect(renewer.getCurrentlyHeldLease('1')?.leaseCounter).toBe(1);
    await renewMutateAssert(['1'], 2);
  });

  it('re-reads on a failed condition: two writes ahead is a loss', async () => {
    renewer.addLeasesToRenew(await withLeases('foo', '1'));
    const stale = renewer.getCurrentlyHeldLease('1')!;
    const one = (await refresher.renewLease(stale))!;
    await refresher.renewLease(one);
    await renewMutateAssert([], 0);
    expect(lost.map((l) => l.reason)).toEqual(['taken']);
  });

  it('counts validity from when the renewal was sent, not when it returned', async () => {
    const slow = Object.create(refresher) as LeaseRefresher;
    slow.renewLease = async (lease) => {
      clock.passTime(300); // the request takes 300 ms
      return refresher.renewLease(lease);
    };
    const r = newRenewer('foo', slow);
    r.addLeasesToRenew(await withLeases('foo', '1'));
    const sentAt = clock.nowMs();
    await r.renewLeases();
    clock.passTime(sentAt + LEASE_DURATION_MS - clock.nowMs());
    expect(r.getCurrentlyHeldLease('1')).toBeDefined();
    clock.passTime(1);
    expect(r.getCurrentlyHeldLease('1')).toBeUndefined();
  });

  it('keeps a lease whose renewal failed for another reason, until it expires', async () => {
    const flaky = Object.create(refresher) as LeaseRefresher;
    flaky.renewLease = async () => {
      throw Object.assign(new Error('throttled'), { name: 'ProvisionedThroughputExceededException' });
    };
    const r = newRenewer('foo', flaky);
    r.addLeasesToRenew(await withLeases('foo', '1'));
    const result = await r.renewLeases();
    expect(result.failed.map((f) => f.leaseKey)).toEqual(['1']);
    expect(r.getCurrentlyHeldLease('1')).toBeDefined();
    clock.passTime(LEASE_DURATION_MS + 1);
    expect((await r.renewLeases()).lost.map((l) => l.reason)).toEqual(['expired']);
  });

  it('serialises writes of one lease: a renewal racing a checkpoint is not a loss', async () => {
    renewer.addLeasesToRenew(await withLeases('foo', '1'));
    const { concurrencyToken } = renewer.getCurrentlyHeldLease('1')!;
    const [renewal, updated] = await Promise.all([
      renewer.renewLeases(),
      renewer.updateCheckpoint('1', concurrencyToken, cp('10')),
      renewer.renewLeases(),
    ]);
    expect(renewal.renewed).toEqual(['1']);
    expect(updated.checkpoint).toBe('10');
    expect(lost).toEqual([]);
    expect((await refresher.getLease('1'))?.leaseCounter).toBe(3);
  });

  it('checkpoints never move backwards through the renewer', async () => {
    renewer.addLeasesToRenew(await withLeases('foo', '1'));
    const { concurrencyToken } = renewer.getCurrentlyHeldLease('1')!;
    await renewer.updateCheckpoint('1', concurrencyToken, cp('500'));
    await expect(renewer.updateCheckpoint('1', concurrencyToken, cp('499'))).rejects.toMatchObject({
      name: 'InvalidCheckpointError',
      reason: 'backwards',
    });
    // Refusal is a caller error, not a loss: the lease is still held.
    expect(renewer.getCurrentlyHeldLease('1')?.checkpoint).toBe('500');
  });

  it('a re-take of a lease still in the map ends the old acquisition', async () => {
    const [lease] = await withLeases('foo', '1');
    const [first] = renewer.addLeasesToRenew([lease!]);
    const [second] = renewer.addLeasesToRenew([lease!]);
    expect(second?.concurrencyToken).not.toBe(first?.concurrencyToken);
    expect(lost).toEqual([{ leaseKey: '1', reason: 'stale-token', token: first!.concurrencyToken }]);
  });

  it('refuses to hold a lease owned by someone else', async () => {
    const [lease] = await withLeases('bar', '1');
    expect(() => renewer.addLeasesToRenew([lease!])).toThrow(/owned by bar/);
  });

  it('releases held leases: owner removed, nothing reported lost', async () => {
    renewer.addLeasesToRenew(await withLeases('foo', '1', '2'));
    await renewer.renewLeases();
    expect((await renewer.releaseLeases()).sort()).toEqual(['1', '2']);
    expect(renewer.getCurrentlyHeldLeases().size).toBe(0);
    for (const key of ['1', '2']) expect(await refresher.getLease(key)).toMatchObject({ leaseOwner: null, leaseCounter: 2 });
    expect(lost).toEqual([]);
  });

  it('does not release a lease that changed hands', async () => {
    renewer.addLeasesToRenew(await withLeases('foo', '1'));
    await refresher.takeLease(renewer.getCurrentlyHeldLease('1')!, 'bar');
    expect(await renewer.releaseLease('1')).toBe(false);
    expect((await refresher.getLease('1'))?.leaseOwner).toBe('bar');
  });
});
