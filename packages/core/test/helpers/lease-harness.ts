/**
 * The KCL's TestHarnessBuilder, in TypeScript: builds leases in the table, moves a manual clock
 * with passTime(), and checks that what a taker took is exactly the original lease with
 * the take applied (counter + 1, new owner, one more owner switch if it changed hands).
 */
import { expect } from 'vitest';
import { newLease, type Lease } from '../../src/stream/leases/lease.js';
import type { LeaseRefresher } from '../../src/stream/leases/lease-refresher.js';
import type { LeaseTaker } from '../../src/stream/leases/lease-taker.js';
import { ManualClock } from './manual-time.js';

export class LeaseHarness {
  readonly clock = new ManualClock();
  private readonly leases = new Map<string, Lease>();

  constructor(private readonly refresher: LeaseRefresher) {}

  /** Adds a lease with checkpoint 'TRIM_HORIZON', one parent, counter 0. */
  withLease(shardId: string, owner: string | null = 'leaseOwner'): this {
    this.leases.set(shardId, newLease({ leaseKey: shardId, leaseOwner: owner, parentShardIds: ['parentShardId'] }));
    return this;
  }

  /** Writes the leases to the table. */
  async build(): Promise<Map<string, Lease>> {
    for (const lease of this.leases.values()) {
      if (!(await this.refresher.createLeaseIfNotExists(lease))) throw new Error(`lease ${lease.leaseKey} exists`);
    }
    return new Map(this.leases);
  }

  passTime(ms: number): void {
    this.clock.passTime(ms);
  }

  /** Runs one taker pass and asserts it took exactly `expected` (keys, or a count). */
  async takeMutateAssert(taker: LeaseTaker, expected: readonly string[] | number = []): Promise<Map<string, Lease>> {
    const taken = await taker.takeLeases();
    if (typeof expected === 'number') expect(taken.size).toBe(expected);
    else expect([...taken.keys()].sort()).toEqual([...expected].sort());
    for (const actual of taken.values()) {
      const original = this.leases.get(actual.leaseKey);
      expect(original, `unknown lease ${actual.leaseKey}`).toBeDefined();
      const switched = original!.leaseOwner !== null && original!.leaseOwner !== taker.workerId;
      const mutated: Lease = {
        ...original!,
        leaseOwner: taker.workerId,
        leaseCounter: original!.leaseCounter + 1,
        ownerSwitchesSinceCheckpoint: original!.ownerSwitchesSinceCheckpoint + (switched ? 1 : 0),
      };
      expect(actual).toEqual(mutated);
      this.leases.set(actual.leaseKey, actual);
    }
    return taken;
  }

  /** Renews every lease as its current owner (other workers keeping theirs alive). */
  async renewAllLeases(): Promise<void> {
    for (const lease of await this.refresher.listLeases()) {
      if (lease.leaseOwner === null) continue;
      const renewed = await this.refresher.renewLease(lease);
      if (renewed) this.leases.set(renewed.leaseKey, renewed);
    }
  }

  /** Renews the leases of one owner. */
  async renewLeasesOf(owner: string): Promise<void> {
    for (const lease of await this.refresher.listLeases()) {
      if (lease.leaseOwner !== owner) continue;
      const renewed = await this.refresher.renewLease(lease);
      if (renewed) this.leases.set(renewed.leaseKey, renewed);
    }
  }

  /** Leases per owner in the table now. */
  async ownerCounts(): Promise<Map<string | null, number>> {
    const counts = new Map<string | null, number>();
    for (const lease of await this.refresher.listLeases()) counts.set(lease.leaseOwner, (counts.get(lease.leaseOwner) ?? 0) + 1);
    return counts;
  }
}
