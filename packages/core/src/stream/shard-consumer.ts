/**
 * Consumes one shard while this worker holds its lease (the KCL's ShardConsumer): waits for its
 * parents to reach SHARD_END, reads from the lease's checkpoint, dispatches records in parallel
 * (the worker's cap is shared by every shard), and checkpoints the watermark below which every
 * record is done. At the end of a closed shard it checkpoints SHARD_END, which starts its children.
 */
import {
  ExpiredIteratorException,
  GetRecordsCommand,
  GetShardIteratorCommand,
  type KinesisClient,
  type _Record as KinesisRecord,
  type ShardIteratorType,
} from '@aws-sdk/client-kinesis';
import { sleep } from '../retry/backoff.js';
import type { Logger } from '../telemetry/logger.js';
import { LeaseLostError } from './leases/errors.js';
import { leaseCheckpoint, type HeldLease } from './leases/lease.js';
import type { LeaseRefresher } from './leases/lease-refresher.js';
import { SentinelCheckpoint } from './leases/sequence-number.js';
import { SequenceTracker } from './leases/sequence-tracker.js';
import { ShardCheckpointer, type CheckpointWriter } from './leases/shard-checkpointer.js';

/** Longest {@link ShardConsumer.stop} waits for aborted handlers to wind down. */
const ABORTED_SETTLE_MS = 5_000;

/** What the worker gives a shard consumer. */
export interface ShardConsumerDeps {
  kinesis: KinesisClient;
  streamName: string;
  refresher: LeaseRefresher;
  writer: CheckpointWriter;
  logger: Logger;
  /**
   * Processes one record; resolves when it may be checkpointed, rejects when it must not be
   * (shutdown, lease lost, handed back): the record is then left for the shard's next owner.
   * `signal` aborts its work (shutdown, lease lost); `handBack` aborts when the shard is handed
   * off and asks only for work not begun yet (see {@link RecordInfo.handBack}).
   */
  dispatch: (record: KinesisRecord, shardId: string, signal: AbortSignal, handBack: AbortSignal) => Promise<void>;
  /** Waits until the worker has room for another record (the shared cap). */
  waitForCapacity: (signal: AbortSignal) => Promise<void>;
  /** Most records begun and not yet done in this shard. */
  maxInFlight: number;
  /** Pause between reads of an idle shard, in ms (Kinesis allows 5 GetRecords per second per shard). */
  idleReadMs: number;
  /** Most records per GetRecords. */
  maxRecordsPerRead: number;
  /** Most often a checkpoint is written, in ms. */
  checkpointIntervalMs: number;
  /** Told after every read how far behind the tip of the stream this shard is (MillisBehindLatest). */
  onRead?: (shardId: string, millisBehindLatest: number) => void;
}

/** A running shard consumer. */
export class ShardConsumer {
  readonly shardId: string;
  /** Aborts the handlers of begun records (and the read loop). */
  private readonly abort = new AbortController();
  /** Ends the read loop only (a hand-off detaches its handlers: they run on). */
  private readonly readAbort = new AbortController();
  /** A hand-off: asks the handlers for the records whose work has not begun (see stop). */
  private readonly handBack = new AbortController();
  /** Set once the consumer handed its lease on: records finishing later are not checkpointed here. */
  private detached = false;
  private readonly tracker = new SequenceTracker();
  private readonly checkpointer: ShardCheckpointer;
  private readonly log: Logger;
  private readonly inFlight = new Set<Promise<void>>();
  private lastCheckpointAt = 0;
  private checkpointTimer: NodeJS.Timeout | undefined;
  private loop: Promise<void> | undefined;
  /** True once SHARD_END was checkpointed. */
  ended = false;
  /** When the read loop died of an error (the worker then replaces the consumer), else undefined. */
  failedAt: number | undefined;

  constructor(
    private readonly lease: HeldLease,
    private readonly deps: ShardConsumerDeps,
  ) {
    this.shardId = lease.leaseKey;
    this.log = deps.logger.child({ shardId: this.shardId });
    this.checkpointer = new ShardCheckpointer(deps.writer, this.shardId, leaseCheckpoint(lease));
  }

  /** Starts the read loop. */
  start(): void {
    this.loop = this.run().catch((err: unknown) => {
      if (this.abort.signal.aborted) return;
      this.failedAt = Date.now();
      this.log.error({ err }, 'shard consumer failed; it will be restarted from the last checkpoint');
    });
  }

  /** Records begun and not yet done. */
  get pending(): number {
    return this.tracker.inFlight;
  }

  /**
   * Stops reading. With `graceMs`, in-flight records get that long to finish and their
   * watermark is checkpointed; then (or at once without grace) the rest are aborted and left to
   * the shard's next owner, or, with `detach` (a graceful hand-off), left to finish on their own.
   * A hand-off first hands back at once the records whose work has not begun (waiting for an
   * analysis slot, say): the next owner runs them, so the drain waits only for work under way.
   */
  async stop(graceMs = 0, options: { detach?: boolean } = {}): Promise<void> {
    this.stopReading = true;
    if (options.detach) this.handBack.abort(new Error('shard handed off'));
    if (graceMs > 0 && this.inFlight.size > 0) {
      await Promise.race([Promise.allSettled([...this.inFlight]), sleep(graceMs)]);
    }
    if (options.detach) {
      // A hand-off: records still in flight are NOT aborted. An analysis cut off mid-call would be
      // made again by the next owner; left running, each finishes its chunk under its claim (the
      // next owner's delivery of it waits for the claim and then skips a done chunk). The
      // checkpoint is the watermark reached now; the next owner reads from there.
      this.readAbort.abort(new Error('shard consumer handed off'));
      await this.loop;
      clearTimeout(this.checkpointTimer);
      await this.flushCheckpoint();
      this.detached = true;
      return;
    }
    this.abort.abort(new Error('shard consumer stopped'));
    await this.loop;
    // Aborted handlers hand their work back (a chunk re-published, then released): let them
    // finish, so that the shard's next owner finds those chunks free, not claimed.
    if (this.inFlight.size > 0) await Promise.race([Promise.allSettled([...this.inFlight]), sleep(ABORTED_SETTLE_MS)]);
    clearTimeout(this.checkpointTimer);
    await this.flushCheckpoint();
  }

  private stopReading = false;

  private async run(): Promise<void> {
    const signal = AbortSignal.any([this.abort.signal, this.readAbort.signal]);
    // Handlers get the consumer's abort only: a hand-off ends the loop and leaves them running.
    const handlerSignal = this.abort.signal;
    if (this.lease.checkpoint === SentinelCheckpoint.SHARD_END) {
      this.ended = true;
      return;
    }
    await this.waitForParents(signal);
    let iterator = await this.iteratorFrom(this.lease.checkpoint, signal);
    let lastRead: string | undefined;
    while (!this.stopReading && !signal.aborted) {
      if (this.tracker.inFlight >= this.deps.maxInFlight) {
        await Promise.race([...this.inFlight, sleep(this.deps.idleReadMs, signal)]).catch(() => undefined);
        continue;
      }
      if (!iterator) {
        // Closed shard fully read: once every record is done, mark SHARD_END.
        await Promise.allSettled([...this.inFlight]);
        if (signal.aborted || this.stopReading) return;
        await this.flushCheckpoint();
        if (this.tracker.inFlight === 0) {
          await this.checkpointer.checkpointShardEnd(this.lease.concurrencyToken);
          this.ended = true;
          this.log.info('shard ended');
        }
        return;
      }
      let out;
      try {
        out = await this.deps.kinesis.send(
          new GetRecordsCommand({ ShardIterator: iterator, Limit: this.deps.maxRecordsPerRead }),
          { abortSignal: signal },
        );
      } catch (err) {
        if (signal.aborted) return;
        if (err instanceof ExpiredIteratorException || (err instanceof Error && err.name === 'ExpiredIteratorException')) {
          iterator = await this.iteratorFrom(lastRead ?? this.checkpointer.lastCheckpoint?.sequenceNumber ?? SentinelCheckpoint.TRIM_HORIZON, signal);
          continue;
        }
        this.log.warn({ err }, 'GetRecords failed; retrying');
        await sleep(Math.max(this.deps.idleReadMs, 1_000), signal).catch(() => undefined);
        continue;
      }
      iterator = out.NextShardIterator;
      if (out.MillisBehindLatest !== undefined) this.deps.onRead?.(this.shardId, out.MillisBehindLatest);
      const records = out.Records ?? [];
      for (const record of records) {
        // Stopping (a hand-off's drain, a shutdown): begin nothing more; what is begun may finish.
        if (signal.aborted || this.stopReading) return;
        await this.deps.waitForCapacity(signal);
        if (this.stopReading) return;
        const seq = record.SequenceNumber as string;
        lastRead = seq;
        this.tracker.begin(seq);
        const task: Promise<void> = this.deps
          .dispatch(record, this.shardId, handlerSignal, this.handBack.signal)
          .then(() => {
            this.tracker.complete(seq);
            this.scheduleCheckpoint();
          })
          .catch(() => {
            // Not done (shutdown, lease lost): stays below the watermark for the next owner.
          })
          .finally(() => this.inFlight.delete(task));
        this.inFlight.add(task);
      }
      if (records.length === 0 || (out.MillisBehindLatest ?? 0) === 0) await sleep(this.deps.idleReadMs, signal).catch(() => undefined);
    }
  }

  private async waitForParents(signal: AbortSignal): Promise<void> {
    for (const parent of this.lease.parentShardIds) {
      for (;;) {
        const lease = await this.deps.refresher.getLease(parent);
        // A parent without a lease is gone from the stream (trimmed) or was never tracked.
        if (!lease || lease.checkpoint === SentinelCheckpoint.SHARD_END) break;
        this.log.debug({ parent }, 'waiting for the parent shard to end');
        await sleep(Math.max(1_000, this.deps.idleReadMs), signal);
      }
    }
  }

  private async iteratorFrom(checkpoint: string, signal: AbortSignal): Promise<string | undefined> {
    const type: ShardIteratorType =
      checkpoint === SentinelCheckpoint.TRIM_HORIZON
        ? 'TRIM_HORIZON'
        : checkpoint === SentinelCheckpoint.LATEST
          ? 'LATEST'
          : 'AFTER_SEQUENCE_NUMBER';
    const out = await this.deps.kinesis.send(
      new GetShardIteratorCommand({
        StreamName: this.deps.streamName,
        ShardId: this.shardId,
        ShardIteratorType: type,
        ...(type === 'AFTER_SEQUENCE_NUMBER' ? { StartingSequenceNumber: checkpoint } : {}),
      }),
      { abortSignal: signal },
    );
    return out.ShardIterator;
  }

  private scheduleCheckpoint(): void {
    if (this.checkpointTimer || this.detached) return;
    const wait = Math.max(0, this.lastCheckpointAt + this.deps.checkpointIntervalMs - Date.now());
    this.checkpointTimer = setTimeout(() => {
      this.checkpointTimer = undefined;
      void this.flushCheckpoint();
    }, wait);
    this.checkpointTimer.unref();
  }

  /** Writes the watermark if it moved; a lost lease is logged, never thrown. */
  private async flushCheckpoint(): Promise<void> {
    const safe = this.tracker.safeCheckpoint();
    if (safe === undefined || this.ended || this.detached) return;
    this.lastCheckpointAt = Date.now();
    try {
      await this.checkpointer.checkpoint(safe, this.lease.concurrencyToken);
    } catch (err) {
      if (err instanceof LeaseLostError) {
        this.log.warn({ reason: err.reason }, 'checkpoint refused: lease lost');
        this.stopReading = true;
        this.abort.abort(err);
      } else {
        this.log.warn({ err }, 'checkpoint failed; will retry');
      }
    }
  }
}
