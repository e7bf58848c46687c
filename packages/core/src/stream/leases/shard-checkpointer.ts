/**
 * Checkpoints one shard for its record processor (the KCL's ShardRecordProcessorCheckpointer
 * over DynamoDBCheckpointer).
 *
 * A checkpoint is written only while this worker holds the shard's lease under the caller's
 * concurrency token, with a conditional write on the lease's counter, owner and current
 * checkpoint. So a worker that lost the lease (even one that was paused, lost it, and took it
 * back under a new token) can never write one, and a checkpoint never moves backwards.
 */
import pLimit from 'p-limit';
import { InvalidCheckpointError, LeaseLostError } from './errors.js';
import type { HeldLease } from './lease.js';
import {
  compareExtendedSequenceNumbers,
  isValidCheckpoint,
  SentinelCheckpoint,
  type ExtendedSequenceNumber,
} from './sequence-number.js';

/** What a checkpointer writes through: a {@link LeaseCoordinator} or a {@link LeaseRenewer}. */
export interface CheckpointWriter {
  /** Writes a checkpoint of a held lease; throws LeaseLostError or InvalidCheckpointError. */
  updateCheckpoint(leaseKey: string, concurrencyToken: string, checkpoint: ExtendedSequenceNumber): Promise<HeldLease>;
  /** A copy of the lease if held. */
  getCurrentlyHeldLease(leaseKey: string): HeldLease | undefined;
}

/** Checkpoints of one shard. */
export class ShardCheckpointer {
  private last: ExtendedSequenceNumber | undefined;
  /** True once `last` was written by this checkpointer (not just the initial value). */
  private written = false;
  /** Calls run one at a time, in call order, so a caller's increasing values land in order. */
  private readonly serial = pLimit(1);

  /**
   * @param writer - the lease layer of this worker.
   * @param leaseKey - the shard id.
   * @param initial - the checkpoint the shard was started from (the lease's checkpoint when
   *   taken); later checkpoints may not be lower. @defaultValue none (any value is accepted
   *   locally; the lease table still refuses a backwards one)
   */
  constructor(
    private readonly writer: CheckpointWriter,
    readonly leaseKey: string,
    initial?: ExtendedSequenceNumber,
  ) {
    this.last = initial;
  }

  /** The last checkpoint written (or the initial one). */
  get lastCheckpoint(): ExtendedSequenceNumber | undefined {
    return this.last;
  }

  /**
   * Records that every record up to and including `sequenceNumber` is processed.
   * Calls are applied one at a time in call order. Writing the same value twice writes once.
   * @throws LeaseLostError when the lease is not held under `concurrencyToken` (stop the shard).
   * @throws InvalidCheckpointError when the value is malformed or lower than the last checkpoint,
   *   or the shard already reached SHARD_END.
   */
  checkpoint(sequenceNumber: string, concurrencyToken: string, subSequenceNumber = 0): Promise<void> {
    return this.serial(() => this.checkpointNow(sequenceNumber, concurrencyToken, subSequenceNumber));
  }

  /** Records that the shard was processed to its end (terminal; its children may start). */
  checkpointShardEnd(concurrencyToken: string): Promise<void> {
    return this.checkpoint(SentinelCheckpoint.SHARD_END, concurrencyToken);
  }

  private async checkpointNow(sequenceNumber: string, concurrencyToken: string, subSequenceNumber: number): Promise<void> {
    const next: ExtendedSequenceNumber = { sequenceNumber, subSequenceNumber };
    if (!isValidCheckpoint(sequenceNumber) || !Number.isSafeInteger(subSequenceNumber) || subSequenceNumber < 0) {
      throw new InvalidCheckpointError(this.leaseKey, 'malformed', sequenceNumber, this.last?.sequenceNumber);
    }
    if (this.last) {
      if (this.last.sequenceNumber === SentinelCheckpoint.SHARD_END && sequenceNumber !== SentinelCheckpoint.SHARD_END) {
        throw new InvalidCheckpointError(this.leaseKey, 'shard-ended', sequenceNumber, this.last.sequenceNumber);
      }
      const order = compareExtendedSequenceNumbers(next, this.last);
      if (order < 0) throw new InvalidCheckpointError(this.leaseKey, 'backwards', sequenceNumber, this.last.sequenceNumber);
      // Already written by this checkpointer; still verify the lease is held, as a write would.
      if (order === 0 && this.written) {
        this.assertHeld(concurrencyToken);
        return;
      }
    }
    const lease = await this.writer.updateCheckpoint(this.leaseKey, concurrencyToken, next);
    this.last = { sequenceNumber: lease.checkpoint, subSequenceNumber: lease.checkpointSubSequenceNumber };
    this.written = true;
  }

  private assertHeld(concurrencyToken: string): void {
    const lease = this.writer.getCurrentlyHeldLease(this.leaseKey);
    if (!lease || lease.concurrencyToken !== concurrencyToken) {
      throw new LeaseLostError(this.leaseKey, lease ? 'stale-token' : 'not-held');
    }
  }
}
