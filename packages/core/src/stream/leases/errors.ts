/**
 * The lease layer's errors: tiny classes that drive control flow (BullMQ style). Both extend
 * {@link DocorchError}, so code that only knows the shared taxonomy still classifies them.
 */
import { DocorchError } from '../../errors.js';

/** Why a worker no longer holds a lease. */
export type LeaseLostReason =
  /** This worker does not hold the lease (never took it, or already dropped it). */
  | 'not-held'
  /** The caller's concurrency token belongs to an earlier acquisition of the lease. */
  | 'stale-token'
  /** The lease was not renewed within the failover time, on this worker's clock. */
  | 'expired'
  /** A conditional write failed: another worker took the lease (or it was deleted). */
  | 'taken';

/**
 * The lease of a shard is no longer held by this acquisition (the KCL's ShutdownException):
 * stop processing the shard without checkpointing; another worker owns its progress now.
 */
export class LeaseLostError extends DocorchError {
  readonly leaseKey: string;
  readonly reason: LeaseLostReason;

  constructor(leaseKey: string, reason: LeaseLostReason) {
    super('CONFLICT', `Lease ${leaseKey} is not held by this worker (${reason})`, { details: { leaseKey, reason } });
    this.name = 'LeaseLostError';
    this.leaseKey = leaseKey;
    this.reason = reason;
  }
}

/** Why a checkpoint value was refused without writing it. */
export type InvalidCheckpointReason =
  /** Not a sequence number, a sentinel, or a valid sub-sequence number. */
  | 'malformed'
  /** Lower than the current checkpoint: checkpoints never move backwards. */
  | 'backwards'
  /** The shard already reached SHARD_END, which is terminal. */
  | 'shard-ended';

/** A checkpoint value that must never be written (a caller bug, not a lease problem). */
export class InvalidCheckpointError extends DocorchError {
  readonly leaseKey: string;
  readonly reason: InvalidCheckpointReason;

  constructor(leaseKey: string, reason: InvalidCheckpointReason, checkpoint: string, current?: string) {
    super('INVALID_REQUEST', `Checkpoint ${checkpoint} refused for lease ${leaseKey} (${reason}; current ${current ?? 'none'})`, {
      details: { leaseKey, reason, checkpoint, current },
    });
    this.name = 'InvalidCheckpointError';
    this.leaseKey = leaseKey;
    this.reason = reason;
  }
}
