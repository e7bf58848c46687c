/**
 * The checkpoint watermark of one shard whose records are processed in parallel.
 *
 * Records are begun in shard order (increasing sequence numbers) and may complete in any order.
 * The safe checkpoint is the highest begun sequence number below which (and at which) every begun
 * record is complete: a restart from it redelivers every record that was not finished, and
 * possibly some that were (at-least-once), but skips none.
 *
 * ```
 * begun:     s1  s2  s3  s4  s5
 * complete:  ✓   ✓       ✓   ✓
 *                 ^ safeCheckpoint() = s2   (s3 still in flight)
 * ```
 *
 * Pure and synchronous; O(1) amortised per record.
 */
import { isSequenceNumber } from './sequence-number.js';

interface Slot {
  readonly sequenceNumber: string;
  done: boolean;
}

/** Tracks in-flight records of a shard and the checkpoint it is safe to write. */
export class SequenceTracker {
  /** Begun records not yet under the watermark, in begin order, from index `head`. */
  private window: Slot[] = [];
  private head = 0;
  private readonly open = new Map<string, Slot>();
  private safe: string | undefined;
  private last: bigint | undefined;
  private lastBegunSequenceNumber: string | undefined;

  /**
   * Registers a record as started.
   * @throws RangeError when the value is not a sequence number, or not above every record begun before
   *   (records of a shard arrive in increasing order).
   */
  begin(sequenceNumber: string): void {
    if (!isSequenceNumber(sequenceNumber)) throw new RangeError(`Not a sequence number: ${JSON.stringify(sequenceNumber)}`);
    const value = BigInt(sequenceNumber);
    if (this.last !== undefined && value <= this.last) {
      throw new RangeError(`Sequence number ${sequenceNumber} begun after ${String(this.lastBegunSequenceNumber)}`);
    }
    const slot: Slot = { sequenceNumber, done: false };
    this.window.push(slot);
    this.open.set(sequenceNumber, slot);
    this.last = value;
    this.lastBegunSequenceNumber = sequenceNumber;
  }

  /**
   * Marks a begun record as finished (processed, or given up on and dead-lettered: either way it
   * must not be redelivered), and moves the watermark over every finished record at its head.
   * @throws RangeError when the record was not begun, or was already completed.
   */
  complete(sequenceNumber: string): void {
    const slot = this.open.get(sequenceNumber);
    if (!slot) throw new RangeError(`Sequence number ${sequenceNumber} is not in flight`);
    this.open.delete(sequenceNumber);
    slot.done = true;
    let first = this.window[this.head];
    while (first?.done) {
      this.safe = first.sequenceNumber;
      this.head++;
      first = this.window[this.head];
    }
    // Drop the consumed prefix now and then, so the array does not grow without bound.
    if (this.head > 1024 && this.head * 2 > this.window.length) {
      this.window = this.window.slice(this.head);
      this.head = 0;
    }
  }

  /**
   * The highest sequence number at and below which every begun record is complete; undefined
   * while the first record begun is still in flight.
   */
  safeCheckpoint(): string | undefined {
    return this.safe;
  }

  /** Records begun and not completed. */
  get inFlight(): number {
    return this.open.size;
  }

  /** Records begun and not yet under the watermark (in flight, or done behind one in flight). */
  get pending(): number {
    return this.window.length - this.head;
  }

  /** The last sequence number begun, if any. */
  get lastBegun(): string | undefined {
    return this.lastBegunSequenceNumber;
  }

  /** True when `sequenceNumber` was begun and is not completed. */
  isInFlight(sequenceNumber: string): boolean {
    return this.open.has(sequenceNumber);
  }
}
