/**
 * Decides which leases this worker takes, and takes them (the KCL's DynamoDBLeaseTaker).
 *
 * Each pass scans the lease table and remembers, per lease, when this worker last saw its
 * counter move, on this worker's own monotonic clock. A lease is expired when its counter has
 * not moved for `failoverTimeMs` on that clock; clocks of different hosts are never compared.
 * A lease seen for the first time counts as just renewed (its holder gets a full failover time),
 * except an unowned lease, which is available at once.
 *
 * Balancing is by lease count: target = ceil(leases / workers), where workers are the owners of
 * unexpired leases plus this worker. The taker takes available (expired or unowned) leases up to
 * its target, never more. Only when no lease is available and it is below target does it steal,
 * from the most loaded worker, `maxLeasesToStealAtOneTime` (1) per pass, and not when merely
 * short by one of a worker that is at target (that would only move the imbalance).
 */
import type { Logger } from '../../telemetry/logger.js';
import { systemClock, type Clock } from './clock.js';
import type { Lease } from './lease.js';
import type { LeaseRefresher } from './lease-refresher.js';
import { LEASE_DEFAULTS, renewIntervalFor, type LeaseTakerOptions } from './options.js';

/** What the taker knows of a lease: the row as last scanned, and when its counter last moved. */
interface Observed {
  lease: Lease;
  /** This worker's clock when the counter was last seen to change. */
  lastCounterIncrementMs: number;
}

/** Outcome of one decision, for logs and tests. */
export interface TakePlan {
  /** Leases in the table. */
  readonly totalLeases: number;
  /** Workers counted (owners of unexpired leases, plus this one). */
  readonly workers: number;
  /** Leases per worker this worker aims at (capped by maxLeasesForWorker). */
  readonly target: number;
  /** Unexpired leases this worker holds. */
  readonly held: number;
  /** Expired or unowned leases. */
  readonly available: number;
  /** Leases chosen to take (available ones, or stolen ones when none was available). */
  readonly toTake: readonly Lease[];
  /** True when `toTake` are steals. */
  readonly stealing: boolean;
}

/** Takes expired and unowned leases, and steals to balance the fleet. */
export class LeaseTaker {
  /** This worker's id. */
  readonly workerId: string;
  private readonly failoverTimeMs: number;
  private readonly clock: Clock;
  private readonly maxLeasesForWorker: number;
  private readonly maxLeasesToStealAtOneTime: number;
  private readonly random: () => number;
  private readonly slowScanThresholdMs: number;
  private readonly gracefulHandoff: boolean;
  /** Hand-offs this worker asked for, by lease key: when (its clock). */
  private readonly handoffs = new Map<string, number>();
  private readonly logger: Logger | undefined;
  private readonly observed = new Map<string, Observed>();
  private running: Promise<Map<string, Lease>> | undefined;
  private plan: TakePlan | undefined;

  constructor(
    private readonly refresher: LeaseRefresher,
    options: LeaseTakerOptions,
  ) {
    this.workerId = options.workerId;
    this.failoverTimeMs = options.failoverTimeMs ?? LEASE_DEFAULTS.failoverTimeMs;
    this.clock = options.clock ?? systemClock;
    this.maxLeasesForWorker = options.maxLeasesForWorker ?? LEASE_DEFAULTS.maxLeasesForWorker;
    this.maxLeasesToStealAtOneTime = options.maxLeasesToStealAtOneTime ?? LEASE_DEFAULTS.maxLeasesToStealAtOneTime;
    this.random = options.random ?? Math.random;
    this.slowScanThresholdMs = options.slowScanThresholdMs ?? renewIntervalFor(this.failoverTimeMs) / 2;
    this.gracefulHandoff = options.gracefulHandoff ?? false;
    this.logger = options.logger?.child({ component: 'lease-taker', workerId: this.workerId });
    if (!(this.failoverTimeMs > 0)) throw new RangeError('failoverTimeMs must be > 0');
    if (!(this.maxLeasesForWorker >= 1)) throw new RangeError('maxLeasesForWorker must be >= 1');
    if (!(this.maxLeasesToStealAtOneTime >= 1)) throw new RangeError('maxLeasesToStealAtOneTime must be >= 1');
  }

  /**
   * One pass: scan the table, decide, and take. Concurrent calls share one pass.
   * @returns the leases taken in this pass (owner = this worker, new counter), by lease key.
   */
  takeLeases(): Promise<Map<string, Lease>> {
    this.running ??= this.takeOnce().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** Every lease as of the last scan (copies). */
  allLeases(): Lease[] {
    return [...this.observed.values()].map((o) => o.lease);
  }

  /** The decision of the last pass (for metrics and tests); undefined before the first. */
  get lastPlan(): TakePlan | undefined {
    return this.plan;
  }

  /** Hand-offs this worker asked for and has not settled, with when it asked (its clock). */
  pendingHandoffs(): ReadonlyMap<string, number> {
    return this.handoffs;
  }

  /** Forgets a hand-off (taken, or moved elsewhere). */
  settleHandoff(leaseKey: string): void {
    this.handoffs.delete(leaseKey);
  }

  /**
   * When this worker last saw the counter of a lease move, on its own clock; undefined for a
   * lease not seen in the last scan.
   */
  lastCounterIncrementMs(leaseKey: string): number | undefined {
    return this.observed.get(leaseKey)?.lastCounterIncrementMs;
  }

  private async takeOnce(): Promise<Map<string, Lease>> {
    const scanStart = this.clock.nowMs();
    const leases = await this.refresher.listLeases();
    // Time of the scan is taken after it returns: a counter change seen now happened before now.
    const scanTime = this.clock.nowMs();
    this.updateObserved(leases, scanTime);

    const plan = this.computePlan(scanTime);
    this.plan = plan;
    let toTake = [...plan.toTake];
    if (plan.stealing && scanTime - scanStart > this.slowScanThresholdMs) {
      // A slow scan may hold an old view of the victim's lease; steal from its current state.
      toTake = await Promise.all(toTake.map(async (l) => (await this.refresher.getLease(l.leaseKey)) ?? l));
    }

    const taken = new Map<string, Lease>();
    const untaken: string[] = [];
    if (plan.stealing && this.gracefulHandoff) {
      // KCL 3.x: ask the holder to hand the lease over; the coordinator takes it once it has.
      const asked: string[] = [];
      for (const lease of toTake) {
        const result = await this.refresher.initiateHandoff(lease, this.workerId);
        if (result) {
          this.handoffs.set(result.leaseKey, this.clock.nowMs());
          this.observed.set(result.leaseKey, { lease: result, lastCounterIncrementMs: this.observed.get(result.leaseKey)?.lastCounterIncrementMs ?? scanTime });
          asked.push(result.leaseKey);
        } else {
          untaken.push(lease.leaseKey);
        }
      }
      this.logger?.info({ asked, untaken, target: plan.target, held: plan.held, workers: plan.workers, totalLeases: plan.totalLeases }, 'asked for graceful hand-offs');
      return taken;
    }
    for (const lease of toTake) {
      // The time before the write: the counter moved no earlier than this.
      const sentAt = this.clock.nowMs();
      const result = await this.refresher.takeLease(lease, this.workerId);
      if (result) {
        taken.set(result.leaseKey, result);
        this.observed.set(result.leaseKey, { lease: result, lastCounterIncrementMs: sentAt });
      } else {
        untaken.push(lease.leaseKey);
      }
    }
    if (taken.size > 0 || untaken.length > 0) {
      this.logger?.info(
        {
          taken: [...taken.keys()],
          untaken,
          stealing: plan.stealing,
          target: plan.target,
          held: plan.held,
          workers: plan.workers,
          totalLeases: plan.totalLeases,
          available: plan.available,
        },
        plan.stealing ? 'stole leases' : 'took leases',
      );
    }
    return taken;
  }

  /** Merges a scan into what this worker knows: counter moves are timed on its own clock. */
  private updateObserved(leases: readonly Lease[], scanTime: number): void {
    const seen = new Set<string>();
    for (const lease of leases) {
      seen.add(lease.leaseKey);
      const old = this.observed.get(lease.leaseKey);
      const lastCounterIncrementMs =
        old && old.lease.leaseCounter === lease.leaseCounter ? old.lastCounterIncrementMs : scanTime;
      this.observed.set(lease.leaseKey, { lease, lastCounterIncrementMs });
    }
    for (const key of [...this.observed.keys()]) if (!seen.has(key)) this.observed.delete(key);
  }

  private isAvailable(o: Observed, now: number): boolean {
    return o.lease.leaseOwner === null || now - o.lastCounterIncrementMs > this.failoverTimeMs;
  }

  /** Decides what to take as of `now`, from the last scan. Pure apart from the shuffles. */
  private computePlan(now: number): TakePlan {
    const all = [...this.observed.values()];
    const available: Lease[] = [];
    const counts = new Map<string, number>();
    for (const o of all) {
      if (this.isAvailable(o, now)) {
        available.push(o.lease);
      } else {
        const owner = o.lease.leaseOwner as string;
        counts.set(owner, (counts.get(owner) ?? 0) + 1);
      }
    }
    if (!counts.has(this.workerId)) counts.set(this.workerId, 0);

    const totalLeases = all.length;
    const workers = counts.size;
    const held = counts.get(this.workerId) ?? 0;
    const base = { totalLeases, workers, held, available: available.length };
    if (totalLeases === 0) return { ...base, target: 0, toTake: [], stealing: false };

    let target = workers >= totalLeases ? 1 : Math.ceil(totalLeases / workers);
    if (target > this.maxLeasesForWorker) {
      this.logger?.warn(
        { target, maxLeasesForWorker: this.maxLeasesForWorker },
        'lease target above maxLeasesForWorker: some shards may stay unprocessed',
      );
      target = this.maxLeasesForWorker;
    }
    const needed = target - held;
    if (needed <= 0) return { ...base, target, toTake: [], stealing: false };

    if (available.length > 0) {
      // Shuffled so that workers scanning at the same moment go for different leases.
      return { ...base, target, toTake: this.shuffle(available).slice(0, needed), stealing: false };
    }
    return { ...base, target, toTake: this.chooseLeasesToSteal(counts, needed, target), stealing: true };
  }

  private chooseLeasesToSteal(counts: Map<string, number>, needed: number, target: number): Lease[] {
    // Most loaded worker; ties broken at random so that thieves spread over equal victims.
    let victim: string | undefined;
    let victimCount = -1;
    for (const [worker, count] of this.shuffle([...counts.entries()])) {
      if (count > victimCount) {
        victim = worker;
        victimCount = count;
      }
    }
    if (victim === undefined || victim === this.workerId || victimCount < target) return [];
    let steal = Math.min(needed, victimCount - target);
    // A victim exactly at target gives one lease only to a worker short by more than one.
    if (steal === 0 && needed > 1) steal = 1;
    steal = Math.min(steal, this.maxLeasesToStealAtOneTime);
    if (steal <= 0) return [];
    // Not a lease in a hand-off: it is moving already.
    const candidates = [...this.observed.values()].map((o) => o.lease).filter((l) => l.leaseOwner === victim && l.checkpointOwner === null);
    return this.shuffle(candidates).slice(0, steal);
  }

  /** Fisher-Yates with the injected random source; returns a new array. */
  private shuffle<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1));
      [out[i], out[j]] = [out[j] as T, out[i] as T];
    }
    return out;
  }
}
