/**
 * LeaseCoordinator against DynamoDB Local: several workers on one lease table, with a manual
 * clock and schedulers (time moves only between passes), and one run on real timers.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { systemClock, systemScheduler } from '../src/stream/leases/clock.js';
import { LeaseLostError, type LeaseLostReason } from '../src/stream/leases/errors.js';
import { newLease, type HeldLease } from '../src/stream/leases/lease.js';
import { LeaseCoordinator } from '../src/stream/leases/lease-coordinator.js';
import { LeaseRefresher } from '../src/stream/leases/lease-refresher.js';
import type { LeaseCoordinatorOptions } from '../src/stream/leases/options.js';
import { ShardCheckpointer } from '../src/stream/leases/shard-checkpointer.js';
import { createLeaseTableFixture, type LeaseTableFixture } from './helpers/lease-table.js';
import { flush, ManualClock, ManualScheduler, seededRandom } from './helpers/manual-time.js';

const F = 3_000; // failover time
const T = 1_500; // take interval
const R = 1_000; // renew interval (F / 3, epsilon 0)

let table: LeaseTableFixture;
let refresher: LeaseRefresher;
let clock: ManualClock;
let running: LeaseCoordinator[];

beforeAll(async () => {
  table = await createLeaseTableFixture('coordinator');
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

interface Observed {
  coordinator: LeaseCoordinator;
  taken: HeldLease[];
  lost: Array<{ leaseKey: string; reason: LeaseLostReason }>;
  released: string[];
}

type WorkerOptions = Partial<LeaseCoordinatorOptions> & { refresher?: LeaseRefresher };

function worker(workerId: string, scheduler: ManualScheduler, { refresher: via, ...options }: WorkerOptions = {}): Observed {
  const coordinator = new LeaseCoordinator(via ?? refresher, {
    workerId,
    failoverTimeMs: F,
    epsilonMs: 0,
    takeIntervalMs: T,
    clock,
    scheduler,
    random: seededRandom(workerId.charCodeAt(0)),
    ...options,
  });
  const observed: Observed = { coordinator, taken: [], lost: [], released: [] };
  coordinator.on('leaseTaken', (lease) => observed.taken.push(lease));
  coordinator.on('leaseLost', (lease, reason) => observed.lost.push({ leaseKey: lease.leaseKey, reason }));
  coordinator.on('leaseReleased', (key) => observed.released.push(key));
  running.push(coordinator);
  return observed;
}

/** Waits until no coordinator has a pass in flight, so time never moves during a DynamoDB call. */
function settled(): () => Promise<void> {
  return async () => {
    await flush();
    await Promise.all(running.map((c) => c.whenIdle()));
  };
}

async function createLeases(n: number, owner: string | null = null): Promise<string[]> {
  const keys = Array.from({ length: n }, (_, i) => `shardId-${String(i).padStart(12, '0')}`);
  for (const leaseKey of keys) await refresher.createLeaseIfNotExists(newLease({ leaseKey, leaseOwner: owner }));
  return keys;
}

async function owners(): Promise<Map<string | null, number>> {
  const counts = new Map<string | null, number>();
  for (const l of await refresher.listLeases()) counts.set(l.leaseOwner, (counts.get(l.leaseOwner) ?? 0) + 1);
  return counts;
}

const heldKeys = (o: Observed): string[] => [...o.coordinator.getCurrentlyHeldLeases().keys()].sort();

describe('LeaseCoordinator', () => {
  it('takes unowned leases at start and renews them at a fixed rate', async () => {
    const keys = await createLeases(3);
    const s = new ManualScheduler(clock);
    const a = worker('A', s);
    await a.coordinator.start();
    await s.advance(0, settled());
    expect(a.taken.map((l) => l.leaseKey).sort()).toEqual(keys);
    expect(new Set(a.taken.map((l) => l.concurrencyToken)).size).toBe(3);
    expect(a.coordinator.state).toBe('running');

    await s.advance(R, settled());
    expect((await refresher.listLeases()).map((l) => l.leaseCounter)).toEqual([2, 2, 2]);
    await s.advance(2 * R, settled());
    expect((await refresher.listLeases()).map((l) => l.leaseCounter)).toEqual([4, 4, 4]);
    expect(heldKeys(a)).toEqual(keys);
    expect(a.lost).toEqual([]);
  });

  it('balances: a new worker steals one lease per take pass until both hold the same', async () => {
    await createLeases(4);
    const s = new ManualScheduler(clock);
    const a = worker('A', s);
    await a.coordinator.start();
    await s.advance(0, settled());
    expect(heldKeys(a)).toHaveLength(4);

    const b = worker('B', s);
    await b.coordinator.start();
    await s.advance(0, settled());
    expect(b.taken).toHaveLength(1); // one steal per pass
    await s.advance(T, settled());
    expect(b.taken).toHaveLength(2);
    await s.advance(3 * T, settled());
    expect(b.taken).toHaveLength(2); // at target: no more

    expect(Object.fromEntries(await owners())).toEqual({ A: 2, B: 2 });
    expect(heldKeys(a)).toHaveLength(2);
    expect(a.lost.map((l) => l.reason)).toEqual(['taken', 'taken']);
    expect(a.lost.map((l) => l.leaseKey).sort()).toEqual(b.taken.map((l) => l.leaseKey).sort());
  });

  it('a crashed worker: the survivor takes its leases after the failover time, not before', async () => {
    await createLeases(4);
    const s = new ManualScheduler(clock);
    const a = worker('A', s, { releaseOnStop: false });
    const b = worker('B', s);
    await a.coordinator.start();
    await s.advance(0, settled());
    await b.coordinator.start();
    await s.advance(2 * T, settled());
    expect(Object.fromEntries(await owners())).toEqual({ A: 2, B: 2 });

    // kill -9: no more renewals, nothing released.
    const crashedAt = clock.nowMs();
    await a.coordinator.stop();
    expect(a.released).toEqual([]);
    let takenOverAt: number | undefined;
    while (takenOverAt === undefined && clock.nowMs() - crashedAt < 10 * F) {
      await s.advance(100, settled());
      if (heldKeys(b).length === 4) takenOverAt = clock.nowMs();
    }
    expect(takenOverAt).toBeDefined();
    // A's last renewal was at most one renew interval before the crash.
    expect(takenOverAt! - crashedAt).toBeGreaterThan(F - R);
    // Worst case: one take interval to observe the last renewal, then failover rounded up to passes.
    expect(takenOverAt! - crashedAt).toBeLessThanOrEqual(F + 2 * T);
    expect(Object.fromEntries(await owners())).toEqual({ B: 4 });
  });

  it('graceful stop hands leases back; the survivor takes them on its next pass', async () => {
    await createLeases(4);
    const s = new ManualScheduler(clock);
    const a = worker('A', s);
    const b = worker('B', s);
    await a.coordinator.start();
    await s.advance(0, settled());
    await b.coordinator.start();
    await s.advance(2 * T, settled());
    const aKeys = heldKeys(a);
    expect(aKeys).toHaveLength(2);

    const lostBefore = a.lost.length; // the two leases B stole while balancing
    await a.coordinator.stop();
    expect(a.coordinator.state).toBe('stopped');
    expect(a.released.sort()).toEqual(aKeys);
    expect(a.lost).toHaveLength(lostBefore);
    expect((await owners()).get(null)).toBe(2);

    const stoppedAt = clock.nowMs();
    await s.advance(T, settled());
    expect(heldKeys(b)).toHaveLength(4);
    expect(clock.nowMs() - stoppedAt).toBeLessThan(F);
  });

  it('stopLeaseTaker: no more takes, held leases keep being renewed', async () => {
    await createLeases(2);
    const s = new ManualScheduler(clock);
    const a = worker('A', s, { maxLeasesForWorker: 1 });
    await a.coordinator.start();
    await s.advance(0, settled());
    expect(heldKeys(a)).toHaveLength(1);
    await a.coordinator.stopLeaseTaker();
    await refresher.createLeaseIfNotExists(newLease({ leaseKey: 'late' }));
    await s.advance(5 * T, settled());
    expect(a.taken).toHaveLength(1);
    expect(heldKeys(a)).toHaveLength(1);
    const [key] = heldKeys(a);
    expect((await refresher.getLease(key!))?.leaseCounter).toBeGreaterThan(5);
  });

  it('zombie: a worker paused past the failover time can never checkpoint again', async () => {
    await createLeases(1);
    const [key] = (await refresher.listLeases()).map((l) => l.leaseKey);
    const sA = new ManualScheduler(clock);
    const sB = new ManualScheduler(clock);
    const a = worker('A', sA);
    await a.coordinator.start();
    await sA.advance(0, settled());
    const tokenA = a.taken[0]!.concurrencyToken;
    const cpA = new ShardCheckpointer(a.coordinator, key!);
    await cpA.checkpoint('100', tokenA);

    // SIGSTOP A: its timers stop firing while the clock goes on; B runs.
    const b = worker('B', sB);
    await b.coordinator.start();
    const pausedAt = clock.nowMs();
    while (heldKeys(b).length === 0 && clock.nowMs() - pausedAt < 20 * F) await sB.advance(100, settled());
    expect(heldKeys(b)).toEqual([key]);
    const cpB = new ShardCheckpointer(b.coordinator, key!);
    await cpB.checkpoint('200', b.taken[0]!.concurrencyToken);

    // SIGCONT A: it still has its old state, but its own clock says the lease expired.
    const error = await cpA.checkpoint('150', tokenA).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LeaseLostError);
    expect((error as LeaseLostError).reason).toBe('expired');
    await expect(cpA.checkpoint('300', tokenA)).rejects.toBeInstanceOf(LeaseLostError);
    await sA.advance(0, settled()); // overdue renew pass drops it
    expect(a.lost).toEqual([{ leaseKey: key, reason: 'expired' }]);
    expect(await refresher.getLease(key!)).toMatchObject({ leaseOwner: 'B', checkpoint: '200' });
  });

  it('zombie with a checkpoint in flight: the write lands after the takeover and is refused', async () => {
    await createLeases(1);
    const [key] = (await refresher.listLeases()).map((l) => l.leaseKey);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const paused = Object.create(refresher) as LeaseRefresher;
    paused.updateCheckpoint = async (lease, checkpoint) => {
      await gate; // the process stops with the request unsent
      return refresher.updateCheckpoint(lease, checkpoint);
    };
    const sA = new ManualScheduler(clock);
    const sB = new ManualScheduler(clock);
    const a = worker('A', sA, { refresher: paused });
    await a.coordinator.start();
    await sA.advance(0, settled());
    const tokenA = a.taken[0]!.concurrencyToken;
    const inFlight = new ShardCheckpointer(a.coordinator, key!).checkpoint('150', tokenA).catch((e: unknown) => e);

    try {
      const b = worker('B', sB);
      await b.coordinator.start();
      const pausedAt = clock.nowMs();
      while (heldKeys(b).length === 0 && clock.nowMs() - pausedAt < 20 * F) {
        await sB.advance(100, async () => {
          await flush();
          await b.coordinator.whenIdle();
        });
      }
      expect(heldKeys(b)).toEqual([key]);
      await new ShardCheckpointer(b.coordinator, key!).checkpoint('200', b.taken[0]!.concurrencyToken);
    } finally {
      release();
    }
    const error = await inFlight;
    expect(error).toBeInstanceOf(LeaseLostError);
    expect((error as LeaseLostError).reason).toBe('taken');
    expect(a.lost).toEqual([{ leaseKey: key, reason: 'taken' }]);
    expect(await refresher.getLease(key!)).toMatchObject({ leaseOwner: 'B', checkpoint: '200' });
  });

  it('a regained lease gets a new token; checkpoints with the old one are refused', async () => {
    await createLeases(1);
    const [key] = (await refresher.listLeases()).map((l) => l.leaseKey);
    const s = new ManualScheduler(clock);
    const a = worker('A', s);
    await a.coordinator.start();
    await s.advance(0, settled());
    const oldToken = a.taken[0]!.concurrencyToken;

    // A stalls (no renewals) past the failover time, then resumes: it drops the lease and its
    // taker takes it back as an expired lease: a new acquisition.
    clock.passTime(F + T);
    await s.advance(0, settled());
    await s.advance(T, settled());
    expect(a.lost.map((l) => l.reason)).toContain('expired');
    const regained = a.taken.at(-1)!;
    expect(a.taken).toHaveLength(2);
    expect(regained.concurrencyToken).not.toBe(oldToken);

    const cp = new ShardCheckpointer(a.coordinator, key!);
    await expect(cp.checkpoint('100', oldToken)).rejects.toMatchObject({ name: 'LeaseLostError', reason: 'stale-token' });
    await cp.checkpoint('100', regained.concurrencyToken);
    expect((await refresher.getLease(key!))?.checkpoint).toBe('100');
  });

  it('resumes leases still owned by its worker id after a restart', async () => {
    await createLeases(2, 'A');
    const s = new ManualScheduler(clock);
    const a = worker('A', s);
    await a.coordinator.start();
    expect(a.taken).toHaveLength(2);
    expect(heldKeys(a)).toHaveLength(2);
  });

  it('refuses to start twice and stops idempotently', async () => {
    const s = new ManualScheduler(clock);
    const a = worker('A', s);
    await a.coordinator.start();
    await expect(a.coordinator.start()).rejects.toThrow(/cannot start/);
    await a.coordinator.stop();
    await a.coordinator.stop();
    expect(s.pending).toBe(0);
  });

  it('stop is bounded by stopTimeoutMs when a DynamoDB call hangs', async () => {
    await createLeases(1);
    let hang = false;
    const hanging = Object.create(refresher) as LeaseRefresher;
    hanging.renewLease = async (lease) => {
      if (hang) return new Promise<never>(() => {});
      return refresher.renewLease(lease);
    };
    const s = new ManualScheduler(clock);
    const a = worker('A', s, { refresher: hanging, stopTimeoutMs: 200 });
    await a.coordinator.start();
    await s.advance(0, settled());
    hang = true;
    await s.advance(R, flush); // a renew pass now hangs
    running = running.filter((c) => c !== a.coordinator);
    const started = performance.now();
    await a.coordinator.stop();
    expect(a.coordinator.state).toBe('stopped');
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(a.released).toEqual([]);
  });

  it('reports failing passes and keeps going', async () => {
    await createLeases(1);
    const broken = Object.create(refresher) as LeaseRefresher;
    let fail = true;
    broken.listLeases = async () => {
      if (fail) throw new Error('scan failed');
      return refresher.listLeases();
    };
    const s = new ManualScheduler(clock);
    const a = worker('A', s, { refresher: broken });
    const errors: unknown[] = [];
    a.coordinator.on('error', (e) => errors.push(e));
    await a.coordinator.start(); // the initial scan fails too: reported, not thrown
    await s.advance(0, settled());
    expect(errors).toHaveLength(2);
    fail = false;
    await s.advance(T, settled());
    expect(a.taken).toHaveLength(1);
  });
});

describe('LeaseCoordinator on real timers', () => {
  it('two workers balance, and the survivor takes over a killed worker within 3x the failover time', async () => {
    const failover = 600;
    await createLeases(4);
    const make = (workerId: string, releaseOnStop: boolean) => {
      const c = new LeaseCoordinator(refresher, {
        workerId,
        failoverTimeMs: failover,
        takeIntervalMs: failover / 2,
        clock: systemClock,
        scheduler: systemScheduler,
        releaseOnStop,
      });
      running.push(c);
      return c;
    };
    const a = make('real-A', false);
    const b = make('real-B', true);
    await a.start();
    await b.start();
    const until = async (predicate: () => Promise<boolean>, timeoutMs: number): Promise<number> => {
      const started = performance.now();
      while (!(await predicate())) {
        if (performance.now() - started > timeoutMs) throw new Error('timed out');
        await new Promise((r) => setTimeout(r, 20));
      }
      return performance.now() - started;
    };
    await until(async () => {
      const counts = await owners();
      return counts.get('real-A') === 2 && counts.get('real-B') === 2;
    }, 20 * failover);

    await a.stop(); // releaseOnStop false: like kill -9
    const takeover = await until(async () => b.getCurrentlyHeldLeases().size === 4, 10 * failover);
    expect(takeover).toBeLessThanOrEqual(3 * failover);
    await b.stop();
    expect((await owners()).get(null)).toBe(4);
  });
});
