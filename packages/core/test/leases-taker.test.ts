/**
 * LeaseTaker against DynamoDB Local with an injected clock: the KCL's
 * DynamoDBLeaseTakerIntegrationTest cases, plus balancing over several passes and races.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { LeaseRefresher } from '../src/stream/leases/lease-refresher.js';
import { LeaseTaker } from '../src/stream/leases/lease-taker.js';
import type { LeaseTakerOptions } from '../src/stream/leases/options.js';
import { LeaseHarness } from './helpers/lease-harness.js';
import { createLeaseTableFixture, type LeaseTableFixture } from './helpers/lease-table.js';
import { seededRandom } from './helpers/manual-time.js';

const LEASE_DURATION_MS = 1_000;

let table: LeaseTableFixture;
let refresher: LeaseRefresher;
let builder: LeaseHarness;

beforeAll(async () => {
  table = await createLeaseTableFixture('taker');
  refresher = new LeaseRefresher({ client: table.doc, tableName: table.tableName });
});
afterAll(async () => {
  await table?.dispose();
});
beforeEach(async () => {
  await table.clear();
  builder = new LeaseHarness(refresher);
});

function taker(workerId = 'foo', options: Partial<LeaseTakerOptions> = {}): LeaseTaker {
  return new LeaseTaker(refresher, {
    workerId,
    failoverTimeMs: LEASE_DURATION_MS,
    clock: builder.clock,
    random: seededRandom(7),
    ...options,
  });
}

describe('LeaseTaker (KCL DynamoDBLeaseTakerIntegrationTest)', () => {
  it('testSimpleLeaseTake: takes an unowned lease at once', async () => {
    await builder.withLease('1', null).build();
    await builder.takeMutateAssert(taker(), ['1']);
  });

  it('testNotTakeUpdatedLease: does not take a lease whose counter moved', async () => {
    await builder.withLease('1', 'bar').build();
    const foo = taker();
    await builder.takeMutateAssert(foo); // first scan learns the state of the world
    await builder.renewAllLeases();
    builder.passTime(LEASE_DURATION_MS + 1);
    await builder.takeMutateAssert(foo); // counter moved: renewed as of this scan
  });

  it('testTakeOwnLease: takes back its own lease that it stopped renewing', async () => {
    const foo = taker();
    await builder.withLease('1', foo.workerId).build();
    await builder.takeMutateAssert(foo);
    builder.passTime(LEASE_DURATION_MS + 1);
    await builder.takeMutateAssert(foo, ['1']);
  });

  it('testNotTakeNewOwnedLease: a lease seen for the first time gets a full failover time', async () => {
    await builder.withLease('1', 'bar').build();
    const foo = taker();
    await builder.takeMutateAssert(foo);
    builder.passTime(LEASE_DURATION_MS + 1);
    await builder.takeMutateAssert(foo, ['1']);
  });

  it('expiry is strictly after the failover time, on the taker clock', async () => {
    await builder.withLease('1', 'bar').build();
    const foo = taker();
    await builder.takeMutateAssert(foo);
    builder.passTime(LEASE_DURATION_MS);
    await builder.takeMutateAssert(foo);
    builder.passTime(1);
    await builder.takeMutateAssert(foo, ['1']);
  });

  it('never takes a lease that keeps being renewed, however much time passes', async () => {
    await builder.withLease('1', 'bar').build();
    const foo = taker();
    for (let i = 0; i < 5; i++) {
      await builder.takeMutateAssert(foo);
      await builder.renewAllLeases();
      builder.passTime(LEASE_DURATION_MS - 1);
    }
    await builder.takeMutateAssert(foo);
  });

  it('testNonGreedyTake: 4 leases, 2 workers, 3 free: takes only 2', async () => {
    for (let i = 0; i < 3; i++) builder.withLease(String(i), null);
    await builder.withLease('4', 'bar').build();
    const foo = taker();
    await builder.takeMutateAssert(foo, 2);
    expect(foo.lastPlan).toMatchObject({ totalLeases: 4, workers: 2, target: 2, available: 3, stealing: false });
  });

  it('testNoStealWhenOffByOne: does not steal when short by one of a worker at target', async () => {
    await builder
      .withLease('1', 'bar')
      .withLease('2', 'bar')
      .withLease('3', 'baz')
      .withLease('4', 'baz')
      .withLease('5', 'foo')
      .build();
    const foo = taker();
    await builder.takeMutateAssert(foo);
    expect(foo.lastPlan).toMatchObject({ target: 2, held: 1, workers: 3, stealing: true, toTake: [] });
  });

  it('testSteal: steals one lease from the most loaded worker', async () => {
    builder.withLease('1', 'bar');
    for (let i = 2; i <= 6; i++) builder.withLease(String(i), 'baz');
    await builder.build();
    const stolen = await builder.takeMutateAssert(taker(), 1);
    const [lease] = [...stolen.values()];
    expect(lease?.leaseKey).not.toBe('1');
    expect(lease?.ownerSwitchesSinceCheckpoint).toBe(1);
  });

  it('testNoStealWhenExpiredLeases: takes the expired lease and steals nothing', async () => {
    builder.withLease('1', null);
    for (let i = 2; i <= 4; i++) builder.withLease(String(i), 'bar');
    await builder.build();
    const foo = taker();
    await builder.takeMutateAssert(foo, ['1']);
    expect(foo.lastPlan).toMatchObject({ target: 2, held: 0, available: 1, stealing: false });
  });

  it('steals from the most loaded worker, not from one at target', async () => {
    builder.withLease('b1', 'bar').withLease('b2', 'bar');
    for (let i = 1; i <= 4; i++) builder.withLease(`z${i}`, 'baz');
    await builder.build();
    // 6 leases, 3 workers: target 2; bar is at target, baz is 2 over.
    const stolen = await builder.takeMutateAssert(taker(), 1);
    expect([...stolen.values()][0]?.leaseKey).toMatch(/^z/);
  });

  it('steals one at a time and stops at the target, over several passes', async () => {
    for (let i = 1; i <= 6; i++) builder.withLease(String(i), 'baz');
    await builder.build();
    const foo = taker();
    const held: number[] = [];
    for (let pass = 0; pass < 5; pass++) {
      const taken = await foo.takeLeases();
      expect(taken.size).toBeLessThanOrEqual(1);
      // baz stays alive; foo's own leases are renewed too (as its renewer would).
      await builder.renewAllLeases();
      builder.passTime(LEASE_DURATION_MS / 2);
      held.push((await builder.ownerCounts()).get('foo') ?? 0);
    }
    // target = ceil(6 / 2) = 3: one lease per pass, then nothing.
    expect(held).toEqual([1, 2, 3, 3, 3]);
    expect((await builder.ownerCounts()).get('baz')).toBe(3);
  });

  it('maxLeasesToStealAtOneTime lets a pass steal more', async () => {
    for (let i = 1; i <= 6; i++) builder.withLease(String(i), 'baz');
    await builder.build();
    await builder.takeMutateAssert(taker('foo', { maxLeasesToStealAtOneTime: 3 }), 3);
  });

  it('maxLeasesForWorker caps the take', async () => {
    for (let i = 1; i <= 5; i++) builder.withLease(String(i), null);
    await builder.build();
    const foo = taker('foo', { maxLeasesForWorker: 2 });
    await builder.takeMutateAssert(foo, 2);
    builder.passTime(10);
    await builder.takeMutateAssert(foo);
  });

  it('counts only workers holding unexpired leases', async () => {
    for (let i = 1; i <= 4; i++) builder.withLease(String(i), 'dead');
    await builder.build();
    const foo = taker();
    // While 'dead' looks alive, foo is one of 2 workers (target 2) and steals one.
    await builder.takeMutateAssert(foo, 1);
    expect(foo.lastPlan).toMatchObject({ workers: 2, target: 2, stealing: true });
    // 'dead' never renews: after the failover time it is no longer counted as a worker, and foo
    // aims at all 4 (retaking its own lease too, which nobody renewed in this test).
    builder.passTime(LEASE_DURATION_MS + 1);
    await builder.takeMutateAssert(foo, ['1', '2', '3', '4']);
    expect(foo.lastPlan).toMatchObject({ workers: 1, target: 4, available: 4 });
  });

  it('forgets leases deleted from the table', async () => {
    await builder.withLease('1', 'bar').withLease('2', 'bar').build();
    const foo = taker();
    await foo.takeLeases();
    await refresher.deleteLease('2');
    await foo.takeLeases();
    expect(foo.allLeases().map((l) => l.leaseKey)).toEqual(['1']);
    expect(foo.lastCounterIncrementMs('2')).toBeUndefined();
  });

  it('shuffles candidates so that workers do not contend for the same leases', async () => {
    for (let i = 0; i < 6; i++) builder.withLease(String(i), null);
    await builder.withLease('held', 'bar').build();
    const choices = new Set<string>();
    for (let seed = 1; seed <= 8; seed++) {
      // Each taker decides on a fresh view; only its choice matters here.
      const foo = taker(`foo-${seed}`, { random: seededRandom(seed), maxLeasesForWorker: 1 });
      const original = refresher.takeLease.bind(refresher);
      const chosen: string[] = [];
      refresher.takeLease = async (lease) => {
        chosen.push(lease.leaseKey);
        return undefined;
      };
      try {
        await foo.takeLeases();
      } finally {
        refresher.takeLease = original;
      }
      choices.add(chosen.join(','));
    }
    expect(choices.size).toBeGreaterThan(1);
  });

  it('concurrent takers on one expired lease: exactly one wins', async () => {
    await builder.withLease('1', 'dead').build();
    const takers = Array.from({ length: 5 }, (_, i) => taker(`w${i}`, { random: seededRandom(i + 1) }));
    for (const t of takers) await t.takeLeases(); // all learn the lease
    builder.passTime(LEASE_DURATION_MS + 1);
    const results = await Promise.all(takers.map((t) => t.takeLeases()));
    const winners = results.flatMap((r) => [...r.values()]);
    expect(winners).toHaveLength(1);
    const row = await refresher.getLease('1');
    expect(row?.leaseOwner).toBe(winners[0]?.leaseOwner);
    expect(row?.leaseCounter).toBe(1);
    expect(row?.ownerSwitchesSinceCheckpoint).toBe(1);
  });

  it('two fresh workers split 8 unowned leases without overlap', async () => {
    for (let i = 0; i < 8; i++) builder.withLease(String(i), null);
    await builder.build();
    const a = taker('a', { random: seededRandom(1) });
    const b = taker('b', { random: seededRandom(2) });
    for (let pass = 0; pass < 4; pass++) {
      await Promise.all([a.takeLeases(), b.takeLeases()]);
      await builder.renewAllLeases();
      builder.passTime(LEASE_DURATION_MS / 2);
    }
    const counts = await builder.ownerCounts();
    expect(counts.get('a')).toBe(4);
    expect(counts.get('b')).toBe(4);
  });
});
