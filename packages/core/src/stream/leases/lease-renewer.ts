/**
 * Keeps the leases this worker holds (the KCL's DynamoDBLeaseRenewer): renews them, tells when
 * one is lost, and is the only path for writes of a held lease (checkpoints, release), each
 * checked against the caller's concurrency token.
 *
 * Timing, on this worker's monotonic clock: a held lease counts as renewed at the moment the
 * successful write was *sent* (the counter moved no earlier than that, so no other worker can
 * see it move earlier and judge it expired before this worker does). A lease not renewed within
 * `failoverTimeMs` is no longer reported as held and is dropped on the next renewal pass: by
 * then another worker may legitimately have taken it.
 *
 * Writes of one lease never overlap (one queue per lease), which is what lets the refresher read
 * a failed condition followed by "one more increment, still mine" as this worker's own write.
 */
import { randomUUID } from 'node:crypto';
import pLimit, { type LimitFunction } from 'p-limit';
import type { Logger } from '../../telemetry/logger.js';
import { systemClock, type Clock } from './clock.js';
import { LeaseLostError, type LeaseLostReason } from './errors.js';
import { toLease, type HeldLease, type Lease } from './lease.js';
import type { LeaseRefresher } from './lease-refresher.js';
import { LEASE_DEFAULTS, type LeaseRenewerOptions } from './options.js';
import type { ExtendedSequenceNumber } from './sequence-number.js';

/** A held lease and its bookkeeping. Replaced (never mutated into) on a new acquisition. */
interface Entry {
  lease: HeldLease;
  /** This worker's clock when the last successful write of the lease was sent. */
  lastCounterIncrementMs: number;
  /** Serialises the writes of this lease. */
  readonly queue: LimitFunction;
  /** The next owner, once a graceful hand-off was asked for (seen at a renewal). */
  handoffTo?: string;
}

/** A lease given up by this worker. */
export interface LostLease {
  readonly lease: HeldLease;
  readonly reason: LeaseLostReason;
}

/** Outcome of one renewal pass. */
export interface RenewalResult {
  /** Keys of the leases renewed. */
  readonly renewed: readonly string[];
  /** Leases found lost (also reported through `onLeaseLost`). */
  readonly lost: readonly LostLease[];
  /** Leases whose renewal failed for another reason (network, throttling); still held until they expire. */
  readonly failed: ReadonlyArray<{ readonly leaseKey: string; readonly error: unknown }>;
}

function copy(lease: HeldLease): HeldLease {
  return { ...lease, parentShardIds: [...lease.parentShardIds] };
}

/** Renews held leases and guards every write of them. */
export class LeaseRenewer {
  /** This worker's id. */
  readonly workerId: string;
  private readonly failoverTimeMs: number;
  private readonly clock: Clock;
  private readonly onLeaseLost: ((lease: HeldLease, reason: LeaseLostReason) => void) | undefined;
  private readonly onHandoffRequested: ((lease: HeldLease, newOwner: string) => void) | undefined;
  private readonly logger: Logger | undefined;
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly refresher: LeaseRefresher,
    options: LeaseRenewerOptions,
  ) {
    this.workerId = options.workerId;
    this.failoverTimeMs = options.failoverTimeMs ?? LEASE_DEFAULTS.failoverTimeMs;
    this.clock = options.clock ?? systemClock;
    this.onLeaseLost = options.onLeaseLost;
    this.onHandoffRequested = options.onHandoffRequested;
    this.logger = options.logger?.child({ component: 'lease-renewer', workerId: this.workerId });
    if (!(this.failoverTimeMs > 0)) throw new RangeError('failoverTimeMs must be > 0');
  }

  /**
   * Picks up leases the table says this worker owns (a restart with the same worker id): each is
   * renewed even if it looks expired, since it is held only once that renewal succeeded.
   * @returns the leases now held.
   */
  async initialize(): Promise<HeldLease[]> {
    // Not a lease being handed to or from this id: the other side of the hand-off finishes it.
    const mine = (await this.refresher.listLeases()).filter((l) => l.leaseOwner === this.workerId && l.checkpointOwner === null);
    const held: HeldLease[] = [];
    for (const lease of mine) {
      const sentAt = this.clock.nowMs();
      const renewed = await this.refresher.renewLease(lease);
      if (renewed) held.push(...this.addLeasesToRenew([renewed], sentAt));
    }
    return held;
  }

  /**
   * Starts holding leases this worker just took. Each gets a new concurrency token, so work
   * started under an earlier acquisition of the same lease can no longer write it.
   * @param lastCounterIncrementMs - this worker's clock when the take was sent
   *   (@defaultValue now); the lease expires `failoverTimeMs` after it unless renewed.
   * @returns copies of the held leases with their tokens.
   */
  addLeasesToRenew(leases: Iterable<Lease>, lastCounterIncrementMs: number = this.clock.nowMs()): HeldLease[] {
    const added: HeldLease[] = [];
    for (const lease of leases) {
      if (lease.leaseOwner !== this.workerId) {
        throw new Error(`Lease ${lease.leaseKey} is owned by ${String(lease.leaseOwner)}, not ${this.workerId}`);
      }
      const held: HeldLease = { ...toLease(lease), leaseOwner: this.workerId, concurrencyToken: randomUUID() };
      const previous = this.entries.get(lease.leaseKey);
      this.entries.set(lease.leaseKey, { lease: held, lastCounterIncrementMs, queue: pLimit(1) });
      // A re-take of a lease still in the map (it expired here, then was taken back) ends the old acquisition.
      if (previous) this.reportLost(previous, 'stale-token');
      added.push(copy(held));
    }
    return added;
  }

  /**
   * Renews every held lease once (in parallel). A lease already expired on this worker's clock
   * is not renewed but dropped: callers were already told it is not held.
   */
  async renewLeases(): Promise<RenewalResult> {
    const renewed: string[] = [];
    const lost: LostLease[] = [];
    const failed: Array<{ leaseKey: string; error: unknown }> = [];
    await Promise.all(
      [...this.entries.values()].map((entry) =>
        entry.queue(async () => {
          const key = entry.lease.leaseKey;
          if (this.entries.get(key) !== entry) return;
          const sentAt = this.clock.nowMs();
          if (this.isExpired(entry, sentAt)) {
            lost.push(this.drop(entry, 'expired'));
            return;
          }
          try {
            const result = await this.refresher.renewLease(entry.lease);
            if (result) {
              entry.lease = { ...result, leaseOwner: this.workerId, concurrencyToken: entry.lease.concurrencyToken };
              entry.lastCounterIncrementMs = sentAt;
              renewed.push(key);
              if (result.checkpointOwner === null && entry.handoffTo !== undefined) {
                // Withdrawn by its taker: a drain under way finds the lease kept when it completes.
                delete entry.handoffTo;
              }
              if (result.checkpointOwner === this.workerId && result.leaseOwner !== null && result.leaseOwner !== this.workerId && entry.handoffTo === undefined) {
                entry.handoffTo = result.leaseOwner;
                this.logger?.info({ leaseKey: key, newOwner: result.leaseOwner }, 'graceful hand-off requested');
                try {
                  this.onHandoffRequested?.(copy(entry.lease), result.leaseOwner);
                } catch (err) {
                  this.logger?.error({ err, leaseKey: key }, 'onHandoffRequested callback threw');
                }
              }
            } else if (this.entries.get(key) === entry) {
              lost.push(this.drop(entry, 'taken'));
            }
          } catch (error) {
            failed.push({ leaseKey: key, error });
            this.logger?.warn({ err: error, leaseKey: key }, 'lease renewal failed; retrying next pass');
          }
        }),
      ),
    );
    return { renewed, lost, failed };
  }

  /** Copies of the leases held now (not expired on this worker's clock), by lease key. */
  getCurrentlyHeldLeases(): Map<string, HeldLease> {
    const now = this.clock.nowMs();
    const held = new Map<string, HeldLease>();
    for (const [key, entry] of this.entries) if (!this.isExpired(entry, now)) held.set(key, copy(entry.lease));
    return held;
  }

  /** A copy of one held lease, or undefined when it is not held (or expired on this worker's clock). */
  getCurrentlyHeldLease(leaseKey: string): HeldLease | undefined {
    const entry = this.entries.get(leaseKey);
    if (!entry || this.isExpired(entry, this.clock.nowMs())) return undefined;
    return copy(entry.lease);
  }

  /**
   * Writes a checkpoint of a held lease, if `concurrencyToken` is the one of the current
   * acquisition. Counts as a renewal. A failed condition drops the lease at once.
   * @returns a copy of the updated lease.
   * @throws LeaseLostError when the lease is not held, the token is stale, it expired here, or it
   *   was taken meanwhile.
   * @throws InvalidCheckpointError when the value is malformed, behind the current checkpoint, or
   *   the shard already ended.
   */
  async updateCheckpoint(
    leaseKey: string,
    concurrencyToken: string,
    checkpoint: ExtendedSequenceNumber,
  ): Promise<HeldLease> {
    const entry = this.checkedEntry(leaseKey, concurrencyToken);
    return entry.queue(async () => {
      this.checkedEntry(leaseKey, concurrencyToken);
      const sentAt = this.clock.nowMs();
      if (this.isExpired(entry, sentAt)) throw new LeaseLostError(leaseKey, 'expired');
      const result = await this.refresher.updateCheckpoint(entry.lease, checkpoint);
      if (!result) {
        if (this.entries.get(leaseKey) === entry) this.drop(entry, 'taken');
        throw new LeaseLostError(leaseKey, 'taken');
      }
      entry.lease = { ...result, leaseOwner: this.workerId, concurrencyToken };
      entry.lastCounterIncrementMs = sentAt;
      return copy(entry.lease);
    });
  }

  /**
   * Ends a graceful hand-off of a held lease (after its last checkpoint): the next owner may take
   * it at once.
   * @returns true when written (no longer held); 'kept' when the taker withdrew its request (still
   *   held, outright); false when the lease was lost meanwhile (reported as lost).
   * @throws LeaseLostError when the token is not the current acquisition's.
   */
  async completeHandoff(leaseKey: string, concurrencyToken: string): Promise<boolean | 'kept'> {
    const entry = this.checkedEntry(leaseKey, concurrencyToken);
    return entry.queue(async () => {
      if (this.entries.get(leaseKey) !== entry) return false;
      const newOwner = entry.handoffTo;
      if (newOwner === undefined) return 'kept';
      const result = await this.refresher.completeHandoff(entry.lease, this.workerId, newOwner).catch((err: unknown) => {
        this.logger?.warn({ err, leaseKey }, 'hand-off completion failed; the next owner takes the lease after its timeout');
        return undefined;
      });
      if (!result) {
        // The taker withdrew (it stopped): the lease is this worker's again, outright.
        const current = await this.refresher.getLease(leaseKey).catch(() => undefined);
        if (current && current.leaseOwner === this.workerId && current.checkpointOwner === null && current.leaseCounter === entry.lease.leaseCounter) {
          entry.lease = { ...current, leaseOwner: this.workerId, concurrencyToken: entry.lease.concurrencyToken };
          delete entry.handoffTo;
          this.logger?.info({ leaseKey }, 'hand-off withdrawn by its taker; keeping the lease');
          return 'kept';
        }
        if (this.entries.get(leaseKey) === entry) this.drop(entry, 'taken');
        return false;
      }
      this.entries.delete(leaseKey);
      this.logger?.info({ leaseKey, newOwner: result.leaseOwner }, 'lease handed off');
      return true;
    });
  }

  /** The next owner of a held lease whose graceful hand-off was asked for, else undefined. */
  handoffTarget(leaseKey: string): string | undefined {
    return this.entries.get(leaseKey)?.handoffTo;
  }

  /**
   * Hands a held lease back (owner removed, so any worker can take it at once) and stops
   * holding it; a lease being handed off is handed to its next owner instead. No-op when not held.
   * @returns true when the release was written; false when the lease had changed hands already.
   */
  async releaseLease(leaseKey: string): Promise<boolean> {
    const entry = this.entries.get(leaseKey);
    if (!entry) return false;
    return entry.queue(async () => {
      if (this.entries.get(leaseKey) !== entry) return false;
      this.entries.delete(leaseKey);
      try {
        if (entry.handoffTo !== undefined) return (await this.refresher.completeHandoff(entry.lease, this.workerId, entry.handoffTo)) !== undefined;
        return (await this.refresher.evictLease(entry.lease)) !== undefined;
      } catch (err) {
        // Not released: it expires after the failover time instead.
        this.logger?.warn({ err, leaseKey }, 'lease release failed');
        return false;
      }
    });
  }

  /** Releases every held lease (graceful shutdown). @returns keys of the leases released. */
  async releaseLeases(): Promise<string[]> {
    const keys = [...this.entries.keys()];
    const results = await Promise.all(keys.map((key) => this.releaseLease(key)));
    return keys.filter((_, i) => results[i]);
  }

  /** Stops holding a lease without writing (e.g. its shard is finished). */
  dropLease(leaseKey: string): void {
    this.entries.delete(leaseKey);
  }

  /** Stops holding every lease without writing. */
  clearCurrentlyHeldLeases(): void {
    this.entries.clear();
  }

  private isExpired(entry: Entry, now: number): boolean {
    return now - entry.lastCounterIncrementMs > this.failoverTimeMs;
  }

  private checkedEntry(leaseKey: string, concurrencyToken: string): Entry {
    const entry = this.entries.get(leaseKey);
    if (!entry) throw new LeaseLostError(leaseKey, 'not-held');
    if (entry.lease.concurrencyToken !== concurrencyToken) throw new LeaseLostError(leaseKey, 'stale-token');
    return entry;
  }

  private drop(entry: Entry, reason: LeaseLostReason): LostLease {
    this.entries.delete(entry.lease.leaseKey);
    return this.reportLost(entry, reason);
  }

  private reportLost(entry: Entry, reason: LeaseLostReason): LostLease {
    const lease = copy(entry.lease);
    this.logger?.info({ leaseKey: lease.leaseKey, reason }, 'lost lease');
    try {
      this.onLeaseLost?.(lease, reason);
    } catch (err) {
      this.logger?.error({ err, leaseKey: lease.leaseKey }, 'onLeaseLost callback threw');
    }
    return { lease, reason };
  }
}
