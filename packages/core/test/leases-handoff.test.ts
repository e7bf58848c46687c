/**
 * Graceful lease hand-off (KCL 3.x) against DynamoDB Local: the conditional writes of each
 * transition, and the coordinators of two workers on a manual clock. The rules (docs/lease-lifecycle.md):
 *
 * - a taker balancing the fleet asks for a lease (owner = taker, checkpointOwner = holder,
 *   counter unchanged) instead of taking it;
 * - the holder keeps renewing and checkpointing, sees the request at its next renewal, and
 *   completes the hand-off (checkpointOwner removed, counter + 1) after its last checkpoint;
 * - the taker then takes the lease at once, from that checkpoint, and the holder never sees a
 *   lost lease; a holder that does not complete within handoffTimeoutMs has it taken outright;
 * - an expired lease in a hand-off is taken like any other, and the hand-off ends with it.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { newLease, type HeldLease, type Lease } from '../src/stream/leases/lease.js';
import { LeaseCoordinator } from '../src/stream/leases/lease-coordinator.js';
import { LeaseRefresher } from '../src/stream/leases/lease-refresher.js';
import type { LeaseCoordinatorOptions } from '../src/stream/leases/options.js';
import { createLeaseTableFixture, type LeaseTableFixture } from './helpers/lease-table.js';
import { flush, ManualClock, ManualScheduler, seededRandom } from './helpers/manual-time.js';

const F = 3_000; // failover time
const T = 1_500; // take interval
const R = 1_000; // renew interval (F / 3, epsilon 0)
const P = 200; // hand-off poll
const H = 4_000; // hand-off timeout

let table: LeaseTableFixture;
let refresher: LeaseRefresher;
let clock: ManualClock;
let running: LeaseCoordinator[];

beforeAll(async () => {
  table = await createLeaseTableFixture('handoff');
  refresher = new LeaseRefresher({ client: table.doc, tableName: table.tableName });
});
afterAll(async () => {
  await table?.dispose();
});
beforeEach(async () => {
  for (const c of running ?? []) await c.stop();
  await table.clear();
  clock = new ManualClock();
  running = [];
});

const KEY = 'shardId-000000000000';

async function leaseOf(owner: string, counter = 0): Promise<Lease> {
  await refresher.createLeaseIfNotExists(newLease({ leaseKey: KEY, leaseOwner: owner }));
  let lease = (await refresher.getLease(KEY)) as Lease;
  while (lease.leaseCounter < counter) lease = (await refresher.renewLease(lease)) as Lease;
  return lease;
}

describe('hand-off transitions (LeaseRefresher)', () => {
  it('initiate: the taker becomes leaseOwner, the holder checkpointOwner, the counter stays', async () => {
    const held = await leaseOf('A', 2);
    const asked = await refresher.initiateHandoff(held, 'B');
    expect(asked).toMatchObject({ leaseOwner: 'B', checkpointOwner: 'A', leaseCounter: 2 });
    // A second request, or one from a stale view, is refused.
    expect(await refresher.initiateHandoff(held, 'C')).toBeUndefined();
    expect(await refresher.initiateHandoff({ ...held, leaseCounter: 1 }, 'C')).toBeUndefined();
  });

  it('the holder renews and checkpoints during the hand-off; it cannot release; the taker cannot renew', async () => {
    const held = await leaseOf('A', 1);
    await refresher.initiateHandoff(held, 'B');
    const renewed = await refresher.renewLease(held);
    expect(renewed).toMatchObject({ leaseOwner: 'B', checkpointOwner: 'A', leaseCounter: 2 });
    const asHeld = { ...(renewed as Lease), leaseOwner: 'A' };
    const checkpointed = await refresher.updateCheckpoint(asHeld, { sequenceNumber: '100', subSequenceNumber: 0 });
    expect(checkpointed).toMatchObject({ checkpoint: '100', leaseCounter: 3, checkpointOwner: 'A' });
    expect(await refresher.evictLease({ ...(checkpointed as Lease), leaseOwner: 'B' })).toBeUndefined();
    expect(await refresher.renewLease({ ...(checkpointed as Lease), leaseOwner: 'B' })).toBeUndefined();
  });

  it('complete: checkpointOwner removed, counter + 1, one owner switch; the taker takes it from the checkpoint; the old holder is out', async () => {
    const held = await leaseOf('A', 1);
    await refresher.initiateHandoff(held, 'B');
    const cp = (await refresher.updateCheckpoint(held, { sequenceNumber: '42', subSequenceNumber: 0 })) as Lease;
    const done = await refresher.completeHandoff(cp, 'A', 'B');
    expect(done).toMatchObject({ leaseOwner: 'B', checkpointOwner: null, leaseCounter: cp.leaseCounter + 1, ownerSwitchesSinceCheckpoint: 1, checkpoint: '42' });
    // Completing twice is harmless (recognised as this write, re-read).
    expect(await refresher.completeHandoff(cp, 'A', 'B')).toMatchObject({ leaseOwner: 'B' });
    const taken = await refresher.takeLease(done as Lease, 'B');
    expect(taken).toMatchObject({ leaseOwner: 'B', checkpointOwner: null, checkpoint: '42', ownerSwitchesSinceCheckpoint: 1 });
    expect(await refresher.renewLease({ ...(taken as Lease), leaseOwner: 'A' })).toBeUndefined();
  });

  it('an expired lease in a hand-off is taken outright by anyone, which ends the hand-off', async () => {
    const held = await leaseOf('A', 1);
    const asked = (await refresher.initiateHandoff(held, 'B')) as Lease;
    const taken = await refresher.takeLease(asked, 'C');
    expect(taken).toMatchObject({ leaseOwner: 'C', checkpointOwner: null, leaseCounter: 2, ownerSwitchesSinceCheckpoint: 1 });
    expect(await refresher.renewLease(held)).toBeUndefined();
    expect(await refresher.completeHandoff(held, 'A', 'B')).toBeUndefined();
  });
});

interface Observed {
  coordinator: LeaseCoordinator;
  taken: HeldLease[];
  lost: string[];
  handoffs: Array<{ lease: HeldLease; newOwner: string }>;
}

function worker(workerId: string, scheduler: ManualScheduler, options: Partial<LeaseCoordinatorOptions> = {}, leases: LeaseRefresher = refresher): Observed {
  const coordinator = new LeaseCoordinator(leases, {
    workerId,
    failoverTimeMs: F,
    epsilonMs: 0,
    takeIntervalMs: T,
    handoffPollMs: P,
    handoffTimeoutMs: H,
    gracefulHandoff: true,
    clock,
    scheduler,
    random: seededRandom(workerId.charCodeAt(0)),
    ...options,
  });
  const observed: Observed = { coordinator, taken: [], lost: [], handoffs: [] };
  coordinator.on('leaseTaken', (lease) => observed.taken.push(lease));
  coordinator.on('leaseLost', (lease) => observed.lost.push(lease.leaseKey));
  running.push(coordinator);
  return observed;
}

/** Work a test's listeners start outside the coordinators (a holder's hand-off). */
const background: Array<Promise<unknown>> = [];

function settled(): () => Promise<void> {
  return async () => {
    do {
      await flush();
      await Promise.all(background.splice(0));
      await Promise.all(running.map((c) => c.whenIdle()));
    } while (background.length > 0);
  };
}

async function createLeases(n: number): Promise<string[]> {
  const keys = Array.from({ length: n }, (_, i) => `shardId-${String(i).padStart(12, '0')}`);
  for (const leaseKey of keys) await refresher.createLeaseIfNotExists(newLease({ leaseKey }));
  return keys;
}

const heldKeys = (o: Observed): string[] => [...o.coordinator.getCurrentlyHeldLeases().keys()].sort();

describe('graceful hand-off between coordinators', () => {
  it('the new worker asks; the holder checkpoints and passes the lease on; the taker starts from that checkpoint; nobody loses a lease', async () => {
    await createLeases(4);
    const s = new ManualScheduler(clock);
    const a = worker('A', s);
    // The holder's side, as the stream Worker does it: a last checkpoint, then complete.
    a.coordinator.on('leaseHandoff', (lease, newOwner) => {
      a.handoffs.push({ lease, newOwner });
      // Tracked, so the scheduler lets it finish before it moves time on (as the Worker's drain is bounded in time).
      background.push(
        (async () => {
          await a.coordinator.updateCheckpoint(lease.leaseKey, lease.concurrencyToken, { sequenceNumber: '777', subSequenceNumber: 0 });
          await a.coordinator.completeHandoff(lease.leaseKey, lease.concurrencyToken);
        })(),
      );
    });
    await a.coordinator.start();
    await s.advance(0, settled());
    expect(heldKeys(a)).toHaveLength(4);

    const b = worker('B', s);
    await b.coordinator.start();
    await s.advance(0, settled());
    expect(b.taken).toHaveLength(0); // asked, not taken
    const asked = [...(await refresher.listLeases())].filter((l) => l.checkpointOwner === 'A');
    expect(asked.map((l) => l.leaseOwner)).toEqual(['B']);

    // A sees it at its next renewal, hands off; B takes it at its next hand-off poll.
    await s.advance(R + P, settled());
    expect(a.handoffs.map((h) => h.newOwner)).toEqual(['B']);
    expect(b.taken.map((l) => l.leaseKey)).toEqual([asked[0]?.leaseKey]);
    expect(b.taken[0]?.checkpoint).toBe('777');
    expect(heldKeys(a)).toHaveLength(3);

    // Balanced after the second one; then steady.
    await s.advance(4 * T, settled());
    expect(heldKeys(a)).toHaveLength(2);
    expect(heldKeys(b)).toHaveLength(2);
    expect(a.lost).toEqual([]);
    expect(b.lost).toEqual([]);
    expect((await refresher.listLeases()).every((l) => l.checkpointOwner === null)).toBe(true);
  });

  it('a holder that never completes: after handoffTimeoutMs the taker takes the lease outright, and the holder loses it', async () => {
    await createLeases(2);
    const s = new ManualScheduler(clock);
    const a = worker('A', s);
    a.coordinator.on('leaseHandoff', (lease, newOwner) => a.handoffs.push({ lease, newOwner })); // and nothing else
    await a.coordinator.start();
    await s.advance(0, settled());
    const b = worker('B', s);
    await b.coordinator.start();
    const askedAt = clock.nowMs();
    await s.advance(0, settled());
    await s.advance(H - P, settled());
    expect(b.taken).toHaveLength(0);
    expect(a.handoffs).toHaveLength(1);
    await s.advance(2 * P, settled());
    expect(b.taken).toHaveLength(1);
    expect(clock.nowMs() - askedAt).toBeGreaterThanOrEqual(H);
    await s.advance(R, settled());
    expect(a.lost).toEqual([b.taken[0]?.leaseKey]);
    expect(heldKeys(a)).toHaveLength(1);
  });

  it("a take that loses a race with the holder's renewal stays asked for: the taker takes the lease at its next look", async () => {
    await createLeases(2);
    const s = new ManualScheduler(clock);
    const a = worker('A', s);
    a.coordinator.on('leaseHandoff', (lease, newOwner) => a.handoffs.push({ lease, newOwner })); // never completes
    await a.coordinator.start();
    await s.advance(0, settled());
    // B's first take of the lease it asked for reads it, then the holder renews (the counter
    // moves) before B's conditional write lands: the write fails its condition, as it does when
    // the two meet on a real table.
    let races = 1;
    class RacedRefresher extends LeaseRefresher {
      override async takeLease(lease: Lease, owner: string): Promise<Lease | undefined> {
        if (races > 0) {
          races--;
          await a.coordinator.runLeaseRenewer();
        }
        return super.takeLease(lease, owner);
      }
    }
    const b = worker('B', s, {}, new RacedRefresher({ client: table.doc, tableName: table.tableName }));
    await b.coordinator.start();
    await s.advance(0, settled());
    const [asked] = (await refresher.listLeases()).filter((l) => l.checkpointOwner === 'A');
    await s.advance(H - P, settled());
    expect(races).toBe(1); // not yet due
    // Due at H: the first take loses the race; the next look, a poll later, takes it.
    await s.advance(2 * P, settled());
    expect(races).toBe(0);
    expect(b.taken.map((l) => l.leaseKey)).toEqual([asked?.leaseKey]);
    expect(b.coordinator.getCurrentlyHeldLeases().has(asked?.leaseKey as string)).toBe(true);
    await s.advance(R, settled());
    expect(a.lost).toEqual([asked?.leaseKey]);
    expect(heldKeys(a)).toHaveLength(1);
    expect(heldKeys(b)).toHaveLength(1);
  });

  it('without a leaseHandoff listener the holder passes the lease on at once', async () => {
    await createLeases(2);
    const s = new ManualScheduler(clock);
    const a = worker('A', s);
    await a.coordinator.start();
    await s.advance(0, settled());
    const b = worker('B', s);
    await b.coordinator.start();
    await s.advance(R + P, settled());
    expect(b.taken).toHaveLength(1);
    expect(a.lost).toEqual([]);
  });

  it('a holder that stops during the hand-off passes the lease on instead of releasing it', async () => {
    await createLeases(2);
    const s = new ManualScheduler(clock);
    const a = worker('A', s);
    a.coordinator.on('leaseHandoff', (lease, newOwner) => a.handoffs.push({ lease, newOwner }));
    await a.coordinator.start();
    await s.advance(0, settled());
    const b = worker('B', s);
    await b.coordinator.start();
    await s.advance(R, settled());
    expect(a.handoffs).toHaveLength(1);
    await a.coordinator.stop();
    const rows = await refresher.listLeases();
    expect(rows.filter((l) => l.leaseOwner === 'B' && l.checkpointOwner === null)).toHaveLength(1);
    expect(rows.filter((l) => l.leaseOwner === null)).toHaveLength(1);
    await s.advance(P, settled());
    expect(b.taken).toHaveLength(1);
  });

  it('a taker that stops withdraws its requests: the holder keeps the lease, also when it was already draining', async () => {
    await createLeases(2);
    const s = new ManualScheduler(clock);
    const a = worker('A', s);
    a.coordinator.on('leaseHandoff', (lease, newOwner) => a.handoffs.push({ lease, newOwner })); // drains, not done yet
    await a.coordinator.start();
    await s.advance(0, settled());
    const b = worker('B', s);
    await b.coordinator.start();
    await s.advance(R, settled());
    expect(a.handoffs).toHaveLength(1);
    await b.coordinator.stop();
    const rows = await refresher.listLeases();
    expect(rows.every((l) => l.leaseOwner === 'A' && l.checkpointOwner === null)).toBe(true);
    const { lease } = a.handoffs[0] as { lease: HeldLease };
    expect(await a.coordinator.completeHandoff(lease.leaseKey, lease.concurrencyToken)).toBe('kept');
    await s.advance(3 * R, settled());
    expect(heldKeys(a)).toHaveLength(2);
    expect(a.lost).toEqual([]);
  });
});
