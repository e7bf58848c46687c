/**
 * The lease model: one row of the lease table per shard, with the KCL 2.x attribute names, so the
 * table reads the same as one written by the Java KCL.
 *
 * | attribute                      | type | meaning                                                  |
 * | ------------------------------ | ---- | -------------------------------------------------------- |
 * | `leaseKey`                     | S    | hash key: the shard id                                   |
 * | `leaseOwner`                   | S    | worker id of the holder; absent when unowned             |
 * | `leaseCounter`                 | N    | bumped by every write of the holder (renewal, checkpoint) |
 * | `checkpoint`                   | S    | sequence number, or TRIM_HORIZON / LATEST / SHARD_END    |
 * | `checkpointSubSequenceNumber`  | N    | KPL sub-sequence number of the checkpoint                |
 * | `ownerSwitchesSinceCheckpoint` | N    | owner changes since the last checkpoint                  |
 * | `parentShardId`                | SS   | parent shard ids (KCL's name, a string set; absent if none) |
 * | `checkpointOwner`              | S    | KCL 3.x graceful hand-off: the previous owner, still draining and allowed to checkpoint, while `leaseOwner` names the next one; absent otherwise |
 *
 * Graceful hand-off (KCL 3.x): a worker that takes a lease for balance does not take it outright.
 * It writes itself as `leaseOwner` and the holder as `checkpointOwner` (no counter change, so the
 * holder's renewals go on). The holder sees this at its next renewal, stops reading, drains or
 * hands back its records within a bound, checkpoints, and removes `checkpointOwner`; the new owner
 * then takes the lease from that checkpoint at once. A holder that does not finish in time has the
 * lease taken outright (docs/lease-lifecycle.md).
 */
import { SentinelCheckpoint, type ExtendedSequenceNumber } from './sequence-number.js';

/** DynamoDB attribute names of a lease row (KCL 2.x). */
export const LeaseAttribute = {
  leaseKey: 'leaseKey',
  leaseOwner: 'leaseOwner',
  leaseCounter: 'leaseCounter',
  checkpoint: 'checkpoint',
  checkpointSubSequenceNumber: 'checkpointSubSequenceNumber',
  ownerSwitchesSinceCheckpoint: 'ownerSwitchesSinceCheckpoint',
  parentShardIds: 'parentShardId',
  checkpointOwner: 'checkpointOwner',
} as const;

/** A lease as stored in the lease table. Values are immutable snapshots. */
export interface Lease {
  /** The unit of work, a shard id. */
  readonly leaseKey: string;
  /** Worker id of the holder, `null` when nobody holds it. */
  readonly leaseOwner: string | null;
  /** Optimistic-lock counter, incremented by every write (renew, take, checkpoint, release). */
  readonly leaseCounter: number;
  /** Last checkpoint: a sequence number or a sentinel. */
  readonly checkpoint: string;
  /** KPL sub-sequence number of the checkpoint. */
  readonly checkpointSubSequenceNumber: number;
  /** Distinct owners since the last checkpoint (a growing number means a shard keeps failing over). */
  readonly ownerSwitchesSinceCheckpoint: number;
  /** Parent shards (after a split or merge); the shard may start only after they reached SHARD_END. */
  readonly parentShardIds: readonly string[];
  /**
   * During a graceful hand-off, the previous owner (still the holder: it renews, drains and
   * checkpoints) while `leaseOwner` is the next one; `null` otherwise.
   */
  readonly checkpointOwner: string | null;
}

/**
 * The worker that holds a lease now: its `checkpointOwner` during a hand-off, else its
 * `leaseOwner`. The one whose renewals and checkpoints the table accepts.
 */
export function leaseHolder(lease: Pick<Lease, 'leaseOwner' | 'checkpointOwner'>): string | null {
  return lease.checkpointOwner ?? lease.leaseOwner;
}

/** True when a hand-off of the lease to its `leaseOwner` is under way. */
export function isHandoffPending(lease: Pick<Lease, 'leaseOwner' | 'checkpointOwner'>): boolean {
  return lease.checkpointOwner !== null && lease.checkpointOwner !== lease.leaseOwner;
}

/**
 * A lease this worker holds. `concurrencyToken` is generated for each acquisition and never
 * stored: a worker that lost and regained a lease gets a new token, so work started under the
 * old acquisition cannot checkpoint.
 */
export interface HeldLease extends Lease {
  readonly leaseOwner: string;
  readonly concurrencyToken: string;
}

/** Fields of a lease to create. */
export interface NewLease {
  /** The shard id. */
  leaseKey: string;
  /** Where a new holder starts. @defaultValue 'TRIM_HORIZON' */
  checkpoint?: string;
  /** @defaultValue 0 */
  checkpointSubSequenceNumber?: number;
  /** @defaultValue [] */
  parentShardIds?: readonly string[];
  /** Initial owner. @defaultValue null (unowned: immediately takeable) */
  leaseOwner?: string | null;
}

/** Builds the first version of a lease (counter 0). */
export function newLease(fields: NewLease): Lease {
  return {
    leaseKey: fields.leaseKey,
    leaseOwner: fields.leaseOwner ?? null,
    leaseCounter: 0,
    checkpoint: fields.checkpoint ?? SentinelCheckpoint.TRIM_HORIZON,
    checkpointSubSequenceNumber: fields.checkpointSubSequenceNumber ?? 0,
    ownerSwitchesSinceCheckpoint: 0,
    parentShardIds: [...(fields.parentShardIds ?? [])].sort(),
    checkpointOwner: null,
  };
}

/** The checkpoint of a lease as an ordered position. */
export function leaseCheckpoint(lease: Lease): ExtendedSequenceNumber {
  return { sequenceNumber: lease.checkpoint, subSequenceNumber: lease.checkpointSubSequenceNumber };
}

/** True when the shard was processed to its end (the lease is finished; children may start). */
export function isShardEnd(lease: Lease): boolean {
  return lease.checkpoint === SentinelCheckpoint.SHARD_END;
}

/** A plain copy of the persisted fields (drops in-memory fields such as the concurrency token). */
export function toLease(lease: Lease): Lease {
  return {
    leaseKey: lease.leaseKey,
    leaseOwner: lease.leaseOwner,
    leaseCounter: lease.leaseCounter,
    checkpoint: lease.checkpoint,
    checkpointSubSequenceNumber: lease.checkpointSubSequenceNumber,
    ownerSwitchesSinceCheckpoint: lease.ownerSwitchesSinceCheckpoint,
    parentShardIds: [...lease.parentShardIds],
    checkpointOwner: lease.checkpointOwner,
  };
}
