/**
 * Runs the lease taker and renewer loops of one worker (the KCL's DynamoDBLeaseCoordinator) and
 * tells the rest of the worker what it holds, through events.
 *
 * - The renewer runs at a fixed rate (every failover / 3 - epsilon) so that a slow pass does not
 *   push renewals late; the taker runs with a fixed delay ((failover + epsilon) x 2), so that it
 *   backs off when DynamoDB is slow.
 * - Time and timers are injected ({@link Clock}, {@link Scheduler}); tests drive both by hand.
 * - {@link LeaseCoordinator.stop} stops both loops, waits for the passes in flight, and hands the
 *   held leases back so other workers take them at once.
 */
import { EventEmitter } from 'node:events';
import type { Logger } from '../../telemetry/logger.js';
import { systemClock, systemScheduler, type Clock, type Scheduler, type TimerHandle } from './clock.js';
import type { LeaseLostReason } from './errors.js';
import type { HeldLease, Lease } from './lease.js';
import type { LeaseRefresher } from './lease-refresher.js';
import { LeaseRenewer, type RenewalResult } from './lease-renewer.js';
import { LeaseTaker } from './lease-taker.js';
import { LEASE_DEFAULTS, renewIntervalFor, takeIntervalFor, type LeaseCoordinatorOptions } from './options.js';
import type { ExtendedSequenceNumber } from './sequence-number.js';

/** Events of a {@link LeaseCoordinator}. */
export interface LeaseCoordinatorEvents {
  /** This worker took a lease (a new acquisition, with a new concurrency token). */
  leaseTaken: [lease: HeldLease];
  /** This worker no longer holds a lease it did not release: stop processing its shard. */
  leaseLost: [lease: HeldLease, reason: LeaseLostReason];
  /** This worker handed a lease back on stop. */
  leaseReleased: [leaseKey: string];
  /**
   * Another worker asked for a held lease (graceful hand-off): stop reading its shard, drain,
   * checkpoint, then call {@link LeaseCoordinator.completeHandoff}. Without a listener the
   * coordinator completes the hand-off at once.
   */
  leaseHandoff: [lease: HeldLease, newOwner: string];
  /** A taker or renewer pass failed (it is retried on the next tick). Only emitted when listened to. */
  error: [error: unknown];
}

/** Lifecycle of a coordinator. */
export type LeaseCoordinatorState = 'created' | 'running' | 'stopping' | 'stopped';

/** One worker's lease loops. */
export class LeaseCoordinator extends EventEmitter<LeaseCoordinatorEvents> {
  /** This worker's id. */
  readonly workerId: string;
  /** The taker (exposed for inspection and tests). */
  readonly taker: LeaseTaker;
  /** The renewer (exposed for inspection and tests). */
  readonly renewer: LeaseRenewer;
  /** Renew loop period. */
  readonly renewIntervalMs: number;
  /** Take loop delay. */
  readonly takeIntervalMs: number;
  private readonly clock: Clock;
  private readonly scheduler: Scheduler;
  private readonly releaseOnStop: boolean;
  private readonly stopTimeoutMs: number;
  private readonly logger: Logger | undefined;
  private lifecycle: LeaseCoordinatorState = 'created';
  private takerStopped = false;
  private renewTimer: TimerHandle | undefined;
  private takeTimer: TimerHandle | undefined;
  private renewPass: Promise<unknown> | undefined;
  private takePass: Promise<unknown> | undefined;
  private handoffTimer: TimerHandle | undefined;
  private handoffPass: Promise<unknown> | undefined;
  /** Hand-offs this coordinator is completing on its own (no `leaseHandoff` listener). */
  private readonly completions = new Set<Promise<void>>();
  /** Hand-offs asked for and not completed after this long are ended by an outright take. */
  readonly handoffTimeoutMs: number;
  private readonly handoffPollMs: number;

  constructor(
    readonly refresher: LeaseRefresher,
    options: LeaseCoordinatorOptions,
  ) {
    super();
    const failoverTimeMs = options.failoverTimeMs ?? LEASE_DEFAULTS.failoverTimeMs;
    const epsilonMs = options.epsilonMs ?? LEASE_DEFAULTS.epsilonMs;
    this.workerId = options.workerId;
    this.clock = options.clock ?? systemClock;
    this.scheduler = options.scheduler ?? systemScheduler;
    this.releaseOnStop = options.releaseOnStop ?? true;
    this.stopTimeoutMs = options.stopTimeoutMs ?? failoverTimeMs;
    this.renewIntervalMs = options.renewIntervalMs ?? renewIntervalFor(failoverTimeMs, epsilonMs);
    this.takeIntervalMs = options.takeIntervalMs ?? takeIntervalFor(failoverTimeMs, epsilonMs);
    this.handoffTimeoutMs = options.handoffTimeoutMs ?? 2 * failoverTimeMs;
    this.handoffPollMs = options.handoffPollMs ?? Math.min(500, this.renewIntervalMs);
    this.logger = options.logger?.child({ component: 'lease-coordinator', workerId: this.workerId });
    if (this.renewIntervalMs >= failoverTimeMs) throw new RangeError('renewIntervalMs must be below failoverTimeMs');
    this.taker = new LeaseTaker(refresher, { ...options, failoverTimeMs, clock: this.clock });
    this.renewer = new LeaseRenewer(refresher, {
      workerId: options.workerId,
      failoverTimeMs,
      clock: this.clock,
      ...(options.logger ? { logger: options.logger } : {}),
      onLeaseLost: (lease, reason) => this.emit('leaseLost', lease, reason),
      onHandoffRequested: (lease, newOwner) => {
        if (this.listenerCount('leaseHandoff') > 0) this.emit('leaseHandoff', lease, newOwner);
        else this.trackCompletion(this.completeHandoff(lease.leaseKey, lease.concurrencyToken));
      },
    });
  }

  /** Where the coordinator is in its lifecycle. */
  get state(): LeaseCoordinatorState {
    return this.lifecycle;
  }

  /**
   * Picks up leases this worker id still owns, then starts the renew and take loops (both run a
   * first pass at once).
   */
  async start(): Promise<void> {
    if (this.lifecycle !== 'created') throw new Error(`LeaseCoordinator cannot start when ${this.lifecycle}`);
    this.lifecycle = 'running';
    try {
      const resumed = await this.renewer.initialize();
      for (const lease of resumed) this.emit('leaseTaken', lease);
    } catch (err) {
      // Not fatal (as in the KCL): leases this worker id still owns expire and are taken again.
      this.report(err, { loop: 'initialize' });
    }
    if (this.lifecycle !== 'running') return; // stopped during initialisation
    this.scheduleRenew(0);
    this.scheduleTake(0);
    this.scheduleHandoffWatch();
  }

  /**
   * Ends a graceful hand-off of a held lease after its last checkpoint; see
   * {@link LeaseRenewer.completeHandoff}.
   */
  completeHandoff(leaseKey: string, concurrencyToken: string): Promise<boolean | 'kept'> {
    return this.renewer.completeHandoff(leaseKey, concurrencyToken);
  }

  /**
   * One look at the hand-offs this worker asked for: a lease its holder passed on is taken at
   * once (from the holder's last checkpoint); one still not passed on after
   * {@link LeaseCoordinator.handoffTimeoutMs} is taken outright; one that went elsewhere (it
   * expired and another worker took it) is forgotten. Public for tests.
   * @returns the leases taken.
   */
  async runHandoffWatch(): Promise<HeldLease[]> {
    const held: HeldLease[] = [];
    for (const [leaseKey, askedAt] of [...this.taker.pendingHandoffs()]) {
      const lease = await this.refresher.getLease(leaseKey);
      if (!lease || lease.leaseOwner !== this.workerId) {
        this.taker.settleHandoff(leaseKey);
        continue;
      }
      const forced = lease.checkpointOwner !== null;
      if (forced && this.clock.nowMs() - askedAt < this.handoffTimeoutMs) continue;
      const sentAt = this.clock.nowMs();
      const taken = await this.refresher.takeLease(lease, this.workerId);
      // Lost a race (the holder renewed, or completed, between the read and the take): still ours
      // to take, so it stays asked for and the next look tries again. Forgotten here, it stayed
      // named for this worker (counted as its own by every taker) while nobody read it, until
      // the holder's renewals stopped and it expired.
      if (!taken) continue;
      this.taker.settleHandoff(leaseKey);
      if (this.lifecycle !== 'running' || this.takerStopped) {
        await this.refresher.evictLease(taken).catch(() => undefined);
        continue;
      }
      if (forced) this.logger?.warn({ leaseKey, holder: lease.checkpointOwner, handoffTimeoutMs: this.handoffTimeoutMs }, 'hand-off not completed in time; lease taken outright');
      else this.logger?.info({ leaseKey }, 'took a lease handed off to this worker');
      held.push(...this.renewer.addLeasesToRenew([taken], sentAt));
    }
    for (const lease of held) this.emit('leaseTaken', lease);
    return held;
  }

  /**
   * One taker pass: scan, take, and hold what was taken. Public so tests (and a worker that
   * just freed capacity) can run one at a chosen moment.
   * @returns the leases taken, with their concurrency tokens.
   */
  async runLeaseTaker(): Promise<HeldLease[]> {
    const startedAt = this.clock.nowMs();
    const taken = await this.taker.takeLeases();
    if (this.lifecycle === 'stopping' || this.lifecycle === 'stopped' || this.takerStopped) {
      // Taken while stopping: hand it straight back rather than let it sit until it expires.
      await Promise.all([...taken.values()].map((lease) => this.refresher.evictLease(lease).catch(() => undefined)));
      return [];
    }
    const held: HeldLease[] = [];
    for (const lease of taken.values()) {
      held.push(...this.renewer.addLeasesToRenew([lease], this.taker.lastCounterIncrementMs(lease.leaseKey) ?? startedAt));
    }
    for (const lease of held) this.emit('leaseTaken', lease);
    return held;
  }

  /** One renewer pass. Public for tests. */
  runLeaseRenewer(): Promise<RenewalResult> {
    return this.renewer.renewLeases();
  }

  /** Copies of the leases held now, by lease key. */
  getCurrentlyHeldLeases(): Map<string, HeldLease> {
    return this.renewer.getCurrentlyHeldLeases();
  }

  /** A copy of one held lease, or undefined. */
  getCurrentlyHeldLease(leaseKey: string): HeldLease | undefined {
    return this.renewer.getCurrentlyHeldLease(leaseKey);
  }

  /** Every lease as of the taker's last scan. */
  allLeases(): Lease[] {
    return this.taker.allLeases();
  }

  /** Writes a checkpoint of a held lease; see {@link LeaseRenewer.updateCheckpoint}. */
  updateCheckpoint(leaseKey: string, concurrencyToken: string, checkpoint: ExtendedSequenceNumber): Promise<HeldLease> {
    return this.renewer.updateCheckpoint(leaseKey, concurrencyToken, checkpoint);
  }

  /** Stops holding a lease without writing it (its shard is finished). */
  dropLease(leaseKey: string): void {
    this.renewer.dropLease(leaseKey);
  }

  /** Resolves when no taker, renewer or hand-off pass, nor a hand-off completion, is running (tests; shutdown). */
  async whenIdle(): Promise<void> {
    while (this.renewPass || this.takePass || this.handoffPass || this.completions.size > 0) {
      await Promise.all([this.renewPass, this.takePass, this.handoffPass, ...this.completions]);
    }
  }

  /**
   * A hand-off completed without a listener runs after the renewal that saw the request (queued
   * behind it on the lease): kept here so that {@link LeaseCoordinator.whenIdle} and stop wait
   * for it too.
   */
  private trackCompletion(completion: Promise<unknown>): void {
    const tracked: Promise<void> = completion.then(
      () => undefined,
      () => undefined,
    ).finally(() => this.completions.delete(tracked));
    this.completions.add(tracked);
  }

  /**
   * Stops taking new leases, keeps renewing held ones: the first step of a graceful shutdown,
   * while in-flight work finishes and checkpoints.
   */
  async stopLeaseTaker(): Promise<void> {
    this.takerStopped = true;
    if (this.takeTimer !== undefined) this.scheduler.clearTimeout(this.takeTimer);
    this.takeTimer = undefined;
    await this.takePass;
  }

  /**
   * Stops both loops, waits for passes in flight, then releases the held leases (unless
   * `releaseOnStop` is false) and forgets them. Idempotent.
   */
  async stop(): Promise<void> {
    if (this.lifecycle === 'stopped' || this.lifecycle === 'stopping') return;
    this.lifecycle = 'stopping';
    this.takerStopped = true;
    for (const timer of [this.takeTimer, this.renewTimer, this.handoffTimer]) if (timer !== undefined) this.scheduler.clearTimeout(timer);
    this.takeTimer = undefined;
    this.renewTimer = undefined;
    this.handoffTimer = undefined;
    // A hung DynamoDB call must not hang shutdown: past the grace period, leases are left to expire.
    const finished = await withinGrace(
      (async () => {
        await this.whenIdle();
        // Hand-offs asked for and not taken yet are withdrawn (their holders keep the leases), or,
        // when already passed to this worker, released: never left to a worker that is gone.
        await Promise.all(
          [...this.taker.pendingHandoffs().keys()].map(async (leaseKey) => {
            this.taker.settleHandoff(leaseKey);
            const withdrawn = await this.refresher.cancelHandoff(leaseKey, this.workerId).catch(() => undefined);
            if (withdrawn) return;
            const lease = await this.refresher.getLease(leaseKey).catch(() => undefined);
            if (lease?.leaseOwner === this.workerId && lease.checkpointOwner === null) await this.refresher.evictLease(lease).catch(() => undefined);
          }),
        );
        if (this.releaseOnStop) {
          const released = await this.renewer.releaseLeases();
          for (const key of released) this.emit('leaseReleased', key);
        }
      })(),
      this.stopTimeoutMs,
    );
    if (!finished) this.logger?.warn({ stopTimeoutMs: this.stopTimeoutMs }, 'lease coordinator stop timed out; leases left to expire');
    this.renewer.clearCurrentlyHeldLeases();
    this.lifecycle = 'stopped';
  }

  private scheduleRenew(delayMs: number): void {
    this.renewTimer = this.scheduler.setTimeout(() => {
      this.renewTimer = undefined;
      if (this.lifecycle !== 'running') return;
      const startedAt = this.clock.nowMs();
      this.renewPass = this.runLeaseRenewer()
        .then((result) => {
          for (const { leaseKey, error } of result.failed) this.report(error, { leaseKey, loop: 'renew' });
        })
        .catch((err: unknown) => this.report(err, { loop: 'renew' }))
        .finally(() => {
          this.renewPass = undefined;
          // Fixed rate: the next pass is due one interval after this one started.
          if (this.lifecycle === 'running') {
            this.scheduleRenew(Math.max(0, this.renewIntervalMs - (this.clock.nowMs() - startedAt)));
          }
        });
    }, delayMs);
  }

  private scheduleHandoffWatch(): void {
    this.handoffTimer = this.scheduler.setTimeout(() => {
      this.handoffTimer = undefined;
      if (this.lifecycle !== 'running') return;
      const pass = this.taker.pendingHandoffs().size > 0 ? this.runHandoffWatch() : Promise.resolve([]);
      this.handoffPass = pass
        .catch((err: unknown) => this.report(err, { loop: 'handoff' }))
        .finally(() => {
          this.handoffPass = undefined;
          if (this.lifecycle === 'running') this.scheduleHandoffWatch();
        });
    }, this.handoffPollMs);
  }

  private scheduleTake(delayMs: number): void {
    this.takeTimer = this.scheduler.setTimeout(() => {
      this.takeTimer = undefined;
      if (this.lifecycle !== 'running' || this.takerStopped) return;
      this.takePass = this.runLeaseTaker()
        .catch((err: unknown) => this.report(err, { loop: 'take' }))
        .finally(() => {
          this.takePass = undefined;
          // Fixed delay: a slow pass pushes the next one back.
          if (this.lifecycle === 'running' && !this.takerStopped) this.scheduleTake(this.takeIntervalMs);
        });
    }, delayMs);
  }

  private report(error: unknown, context: Record<string, unknown>): void {
    this.logger?.warn({ err: error, ...context }, 'lease loop pass failed');
    if (this.listenerCount('error') > 0) this.emit('error', error);
  }
}

/**
 * Resolves true when `work` settles within `ms`, false otherwise. Uses a real (unref'd) timer on
 * purpose: it bounds shutdown in wall time, whatever scheduler drives the lease loops.
 */
async function withinGrace(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
    timer.unref();
  });
  try {
    // A failure inside counts as finished: stop must always reach 'stopped'.
    return await Promise.race([work.then(() => true, () => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
