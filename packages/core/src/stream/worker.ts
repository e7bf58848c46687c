/**
 * The consumer side of the stream (BullMQ's `Worker`) with the Kinesis Client Library's
 * semantics: leases over shards (./leases), one ShardConsumer per held lease, a shared cap on
 * records in flight, records that fail handled as dead letters so no shard ever stalls, and a
 * graceful close that drains, checkpoints and hands leases back.
 *
 * Lifecycle (Temporal's worker states): created -> running -> stopping -> stopped.
 */
import { ListShardsCommand, type KinesisClient, type _Record as KinesisRecord, type Shard } from '@aws-sdk/client-kinesis';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { toDocorchError } from '../errors.js';
import { sleep, withRetry } from '../retry/backoff.js';
import type { Logger } from '../telemetry/logger.js';
import { SpanKind, withSpan } from '../telemetry/tracing.js';
import { decodeEvent, type EventType, type StreamEvent } from './events.js';
import { newLease, type HeldLease } from './leases/lease.js';
import { LeaseCoordinator } from './leases/lease-coordinator.js';
import { LeaseRefresher } from './leases/lease-refresher.js';
import { SentinelCheckpoint } from './leases/sequence-number.js';
import { ShardConsumer } from './shard-consumer.js';

/** Where a record came from. */
export interface RecordInfo {
  shardId: string;
  sequenceNumber: string;
  /** Aborted on shutdown or when the shard's lease is lost. */
  signal: AbortSignal;
  /**
   * Aborted when the shard is handed off (graceful hand-off). A handler whose work has not begun
   * (a chunk waiting for an analysis slot) then gives the record back, and the next owner runs
   * it; work under way ignores it and runs on, detached. A handler that gave a record back
   * rejects, and the record is not checkpointed here.
   */
  handBack: AbortSignal;
}

/** Handlers by event type. A handler's rejection is retried, then the record is dead-lettered. */
export type Handlers = { [T in EventType]?: (event: StreamEvent<T>, info: RecordInfo) => Promise<unknown> };

/** A record that could not be processed. */
export interface DeadRecord {
  event?: StreamEvent;
  raw: KinesisRecord;
  shardId: string;
  error: Error;
  code: string;
}

/** Options of {@link Worker}. */
export interface WorkerOptions {
  kinesis: KinesisClient;
  /** Document client of the lease table. */
  dynamo: DynamoDBDocumentClient;
  leaseTable: string;
  logger: Logger;
  /** Unique id in the fleet. @defaultValue `${hostname}-${pid}-${random}` */
  workerId?: string;
  /** Records in flight across all shards of this worker. @defaultValue 8 */
  concurrency?: number;
  /** Lease failover time. @defaultValue 10000 */
  failoverTimeMs?: number;
  /** Lease taker interval: at most failover / 2 so a dead worker's shards move within ~2x failover. @defaultValue failoverTimeMs / 2 */
  takeIntervalMs?: number;
  /** Pause between reads of an idle shard. @defaultValue 250 */
  idleReadMs?: number;
  /** Records per GetRecords. @defaultValue 500 */
  maxRecordsPerRead?: number;
  /** Most often a shard's checkpoint is written. @defaultValue 1000 */
  checkpointIntervalMs?: number;
  /** How often the shard list is synchronised into the lease table. @defaultValue 30000 */
  shardSyncIntervalMs?: number;
  /**
   * Leases are taken for balance by graceful hand-off (KCL 3.x): the holder stops reading,
   * drains within {@link WorkerOptions.handoffDrainMs}, checkpoints and passes the lease on, and
   * the taker starts from that checkpoint at once. False: KCL 2.x steals (the holder learns it
   * lost the lease at its next renewal, while the taker already reads). @defaultValue true
   */
  gracefulHandoff?: boolean;
  /**
   * Longest a lease being handed off waits for its records in flight to finish; the rest are
   * aborted (their chunks handed back) before the final checkpoint. @defaultValue failoverTimeMs / 2
   */
  handoffDrainMs?: number;
  /** Handler attempts for one record before it is dead-lettered. @defaultValue 3 */
  maxHandlerAttempts?: number;
  /** Where dead records go (must not throw; it is retried if it does). */
  onDeadLetter: (dead: DeadRecord) => Promise<void>;
  /** Told after every read how far behind the tip each shard is, in ms (metrics). @defaultValue none */
  onShardRead?: (shardId: string, millisBehindLatest: number) => void;
}

/** What {@link Worker.balance} found. */
export interface FleetBalance {
  balanced: boolean;
  /** Unfinished shards (leases not at SHARD_END). */
  shards: number;
  /** Workers counted: the leases' owners and this worker. */
  workers: number;
  /** Shards held per worker id. */
  held: Record<string, number>;
}

/** Worker lifecycle. */
export type WorkerState = 'created' | 'running' | 'stopping' | 'stopped';

/** Events of {@link Worker}. */
export interface WorkerEvents {
  completed: [event: StreamEvent, info: RecordInfo];
  failed: [dead: DeadRecord];
  leaseTaken: [shardId: string];
  leaseLost: [shardId: string];
  /** A lease passed on to another worker by graceful hand-off, after its last checkpoint. */
  leaseHandedOff: [shardId: string, newOwner: string];
}

/** Pause before a shard consumer whose read loop failed is replaced. */
const CONSUMER_RESTART_DELAY_MS = 2_000;

/** A KCL-style consumer of one Kinesis stream. */
export class Worker extends EventEmitter<WorkerEvents> {
  readonly workerId: string;
  private lifecycle: WorkerState = 'created';
  private readonly refresher: LeaseRefresher;
  private readonly coordinator: LeaseCoordinator;
  private readonly consumers = new Map<string, ShardConsumer>();
  /** Leases being handed off: held and renewed, but no consumer may start on them. */
  private readonly handingOff = new Set<string>();
  /** Shards whose failed consumer is stopping (its last checkpoint being written) before it is replaced. */
  private readonly retiring = new Set<string>();
  private readonly handoffDrainMs: number;
  private readonly log: Logger;
  private readonly concurrency: number;
  private running = 0;
  private readonly waiters: Array<() => void> = [];
  private syncTimer: NodeJS.Timeout | undefined;
  private reconcileTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly streamName: string,
    private readonly handlers: Handlers,
    private readonly options: WorkerOptions,
  ) {
    super();
    this.workerId = options.workerId ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
    this.concurrency = options.concurrency ?? 8;
    this.log = options.logger.child({ component: 'stream-worker', workerId: this.workerId });
    this.refresher = new LeaseRefresher({ client: options.dynamo, tableName: options.leaseTable });
    const failoverTimeMs = options.failoverTimeMs ?? 10_000;
    this.handoffDrainMs = options.handoffDrainMs ?? Math.floor(failoverTimeMs / 2);
    this.coordinator = new LeaseCoordinator(this.refresher, {
      workerId: this.workerId,
      failoverTimeMs,
      takeIntervalMs: options.takeIntervalMs ?? Math.floor(failoverTimeMs / 2),
      gracefulHandoff: options.gracefulHandoff ?? true,
      // The holder learns of it within a renew interval (failover / 3), drains, then writes twice.
      handoffTimeoutMs: failoverTimeMs + this.handoffDrainMs,
      logger: this.log,
    });
    this.coordinator.on('leaseHandoff', (lease, newOwner) => void this.handOff(lease, newOwner));
    this.coordinator.on('leaseTaken', (lease) => {
      this.emit('leaseTaken', lease.leaseKey);
      this.reconcile();
    });
    this.coordinator.on('leaseLost', (lease, reason) => {
      this.log.warn({ shardId: lease.leaseKey, reason }, 'lease lost');
      this.emit('leaseLost', lease.leaseKey);
      const consumer = this.consumers.get(lease.leaseKey);
      this.consumers.delete(lease.leaseKey);
      void consumer?.stop(0);
    });
    this.coordinator.on('error', (err) => this.log.warn({ err }, 'lease loop error'));
  }

  get state(): WorkerState {
    return this.lifecycle;
  }

  /** Records in flight now. */
  get inFlight(): number {
    return this.running;
  }

  /** Shards this worker consumes now. */
  get shards(): string[] {
    return [...this.consumers.keys()].sort();
  }

  /**
   * How evenly the fleet holds the shards now (one scan of the lease table): balanced when every
   * unfinished shard has an owner, no hand-off is under way, and every worker (the owners, plus
   * this one) holds floor or ceil of shards / workers.
   */
  async balance(): Promise<FleetBalance> {
    const leases = (await this.refresher.listLeases()).filter((l) => l.checkpoint !== SentinelCheckpoint.SHARD_END);
    const held = new Map<string, number>([[this.workerId, 0]]);
    for (const l of leases) if (l.leaseOwner !== null) held.set(l.leaseOwner, (held.get(l.leaseOwner) ?? 0) + 1);
    const workers = held.size;
    const low = Math.floor(leases.length / workers);
    const high = Math.ceil(leases.length / workers);
    const balanced =
      leases.every((l) => l.leaseOwner !== null && l.checkpointOwner === null) && [...held.values()].every((n) => n >= low && n <= high);
    return { balanced, shards: leases.length, workers, held: Object.fromEntries(held) };
  }

  /** Synchronises shards into leases and starts taking leases and consuming. */
  async run(): Promise<void> {
    if (this.lifecycle !== 'created') throw new Error(`Worker cannot run when ${this.lifecycle}`);
    this.lifecycle = 'running';
    await this.syncShards();
    await this.coordinator.start();
    const every = this.options.shardSyncIntervalMs ?? 30_000;
    const loop = () => {
      this.syncTimer = setTimeout(() => {
        void this.syncShards()
          .catch((err: unknown) => this.log.warn({ err }, 'shard sync failed'))
          .finally(() => this.lifecycle === 'running' && loop());
      }, every);
      this.syncTimer.unref();
    };
    loop();
    const reconcileLoop = () => {
      this.reconcileTimer = setTimeout(() => {
        this.reconcile();
        if (this.lifecycle === 'running') reconcileLoop();
      }, 500);
      this.reconcileTimer.unref();
    };
    reconcileLoop();
    this.log.info('stream worker running');
  }

  /**
   * Stops: no new leases or reads; in-flight records get `graceMs` to finish (their watermark is
   * checkpointed), the rest are aborted and left for the next owner; then leases are handed back.
   */
  async close(graceMs = 30_000): Promise<void> {
    if (this.lifecycle === 'stopped' || this.lifecycle === 'stopping') return;
    this.lifecycle = 'stopping';
    clearTimeout(this.syncTimer);
    clearTimeout(this.reconcileTimer);
    await this.coordinator.stopLeaseTaker();
    await Promise.all([...this.consumers.values()].map((c) => c.stop(graceMs)));
    this.consumers.clear();
    await this.coordinator.stop();
    this.lifecycle = 'stopped';
    this.log.info('stream worker stopped');
  }

  /**
   * The holder's side of a graceful hand-off: stop reading the shard, let records in flight
   * finish for up to handoffDrainMs, checkpoint the watermark, and pass the lease on. Records
   * still in flight then run on, detached (an analysis is never cut off mid-call to be made
   * again); the next owner reads them again and finds them claimed or done.
   */
  private async handOff(lease: HeldLease, newOwner: string): Promise<void> {
    const shardId = lease.leaseKey;
    if (this.handingOff.has(shardId)) return;
    this.handingOff.add(shardId);
    const startedAt = Date.now();
    try {
      const consumer = this.consumers.get(shardId);
      this.consumers.delete(shardId);
      const inFlight = consumer?.pending ?? 0;
      if (consumer) await consumer.stop(this.handoffDrainMs, { detach: true });
      const passed = await this.coordinator.completeHandoff(shardId, lease.concurrencyToken);
      const outcome = passed === 'kept' ? 'hand-off withdrawn; the lease is kept (reading again)' : passed ? 'lease handed off' : 'lease lost during its hand-off';
      this.log.info({ shardId, newOwner, inFlight, left: consumer?.pending ?? 0, ms: Date.now() - startedAt }, outcome);
      if (passed === true) this.emit('leaseHandedOff', shardId, newOwner);
    } catch (err) {
      this.log.warn({ err, shardId }, 'hand-off failed; the next owner takes the lease after its timeout');
    } finally {
      this.handingOff.delete(shardId);
      // A kept lease gets a consumer again, from the checkpoint just written.
      this.reconcile();
    }
  }

  /** Creates a lease for every shard of the stream (idempotent; any worker may do it). */
  private async syncShards(): Promise<void> {
    const shards: Shard[] = [];
    let token: string | undefined;
    do {
      const out = await this.options.kinesis.send(
        new ListShardsCommand(token ? { NextToken: token } : { StreamName: this.streamName }),
      );
      shards.push(...(out.Shards ?? []));
      token = out.NextToken;
    } while (token);
    const known = new Set(shards.map((s) => s.ShardId));
    for (const shard of shards) {
      const parents = [shard.ParentShardId, shard.AdjacentParentShardId].filter(
        (p): p is string => typeof p === 'string' && known.has(p),
      );
      await this.refresher.createLeaseIfNotExists(
        newLease({ leaseKey: shard.ShardId as string, parentShardIds: parents, checkpoint: SentinelCheckpoint.TRIM_HORIZON }),
      );
    }
  }

  /** Starts a consumer for every held lease without one. */
  private reconcile(): void {
    if (this.lifecycle !== 'running') return;
    for (const [key, lease] of this.coordinator.getCurrentlyHeldLeases()) {
      if (this.handingOff.has(key)) continue;
      const existing = this.consumers.get(key);
      if (existing?.failedAt !== undefined) {
        // Its read loop died (e.g. the stream was unreachable while it fetched an iterator)
        // while the lease is still ours: replace it, after a pause, from the last checkpoint,
        // as the KCL retries a failed shard task. Records it had begun are re-delivered.
        if (Date.now() - existing.failedAt < CONSUMER_RESTART_DELAY_MS) continue;
        // Only once it has stopped: its stop checkpoints what it finished, and the replacement
        // must start from that checkpoint. Started from the lease as it was before, it would
        // deliver those records again and have its own checkpoints refused as going backwards.
        if (!this.retiring.has(key)) {
          this.retiring.add(key);
          void existing.stop(0).finally(() => {
            this.retiring.delete(key);
            if (this.consumers.get(key) === existing) this.consumers.delete(key);
            this.reconcile();
          });
        }
        continue;
      } else if (existing) {
        continue; // running, or ended at SHARD_END
      }
      const consumer = new ShardConsumer(lease, {
        kinesis: this.options.kinesis,
        streamName: this.streamName,
        refresher: this.refresher,
        writer: this.coordinator,
        logger: this.log,
        dispatch: (record, shardId, signal, handBack) => this.dispatch(record, shardId, signal, handBack),
        waitForCapacity: (signal) => this.waitForCapacity(signal),
        maxInFlight: this.concurrency,
        idleReadMs: this.options.idleReadMs ?? 250,
        maxRecordsPerRead: this.options.maxRecordsPerRead ?? 500,
        checkpointIntervalMs: this.options.checkpointIntervalMs ?? 1_000,
        ...(this.options.onShardRead ? { onRead: this.options.onShardRead } : {}),
      });
      this.consumers.set(key, consumer);
      consumer.start();
    }
    // Consumers whose lease is gone (expired on our clock without a loss event) stop.
    const held = this.coordinator.getCurrentlyHeldLeases();
    for (const [key, consumer] of this.consumers) {
      if (!held.has(key) && !consumer.ended) {
        this.consumers.delete(key);
        void consumer.stop(0);
      }
    }
  }

  /**
   * Waits for a free slot of the shared cap. An aborted wait removes itself from the queue: a
   * stale entry left behind would swallow the wake-up of a finished record, and a live waiter
   * behind it could then sleep while slots are free, stalling its whole shard.
   */
  private async waitForCapacity(signal: AbortSignal): Promise<void> {
    while (this.running >= this.concurrency) {
      signal.throwIfAborted();
      await new Promise<void>((resolve) => {
        const wake = () => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        };
        const onAbort = () => {
          const at = this.waiters.indexOf(wake);
          if (at >= 0) this.waiters.splice(at, 1);
          resolve();
        };
        this.waiters.push(wake);
        signal.addEventListener('abort', onAbort, { once: true });
      });
      // Woken for a free slot but aborted meanwhile: pass the slot on rather than lose it.
      if (signal.aborted && this.running < this.concurrency) this.waiters.shift()?.();
    }
    signal.throwIfAborted();
  }

  /** Runs a record's handler; rejects only when the record must not be checkpointed. */
  private async dispatch(record: KinesisRecord, shardId: string, signal: AbortSignal, handBack: AbortSignal): Promise<void> {
    this.running++;
    // Either: the record goes to the shard's next owner (retrying it here would be work begun).
    const leaving = AbortSignal.any([signal, handBack]);
    try {
      const info: RecordInfo = { shardId, sequenceNumber: record.SequenceNumber as string, signal, handBack };
      let event: StreamEvent;
      try {
        event = decodeEvent(record.Data ?? new Uint8Array());
      } catch (err) {
        await this.deadLetter({ raw: record, shardId, error: err as Error, code: 'DECODE_ERROR' });
        return;
      }
      const handler = this.handlers[event.type] as ((e: StreamEvent, i: RecordInfo) => Promise<unknown>) | undefined;
      if (!handler) {
        await this.deadLetter({ event, raw: record, shardId, error: new Error(`no handler for ${event.type}`), code: 'NO_HANDLER' });
        return;
      }
      try {
        // The record's span continues the trace of whoever published it (the envelope's traceparent).
        const payload = event.payload as Record<string, unknown>;
        const attributes = {
          'messaging.system': 'aws_kinesis',
          'messaging.destination.name': this.streamName,
          'docorch.shard_id': shardId,
          'docorch.tenant_id': typeof payload.tenantId === 'string' ? payload.tenantId : undefined,
          'docorch.document_id': typeof payload.documentId === 'string' ? payload.documentId : undefined,
          'docorch.chunk_index': typeof payload.chunkIndex === 'number' ? payload.chunkIndex : undefined,
        };
        const run = () => withSpan(event.type, { parent: event, attributes, kind: SpanKind.CONSUMER }, () => handler(event, info));
        await withRetry(run, {
          policy: { maxAttempts: this.options.maxHandlerAttempts ?? 3, baseMs: 200, capMs: 5_000 },
          shouldRetry: (err) => !leaving.aborted && toDocorchError(err).retry !== 'terminal',
          onRetry: (err, attempt) => this.log.warn({ err, attempt, shardId, type: event.type }, 'handler failed; retrying'),
          signal: leaving,
        });
        this.emit('completed', event, info);
      } catch (err) {
        if (leaving.aborted) throw err; // leave it for the next owner
        const e = toDocorchError(err);
        await this.deadLetter({ event, raw: record, shardId, error: e, code: e.code });
      }
    } finally {
      this.running--;
      this.waiters.shift()?.();
    }
  }

  private async deadLetter(dead: DeadRecord): Promise<void> {
    this.log.error({ shardId: dead.shardId, code: dead.code, err: dead.error, type: dead.event?.type }, 'record dead-lettered');
    this.emit('failed', dead);
    // Never lose it: keep trying to store it (the shard waits behind this one record only).
    for (let attempt = 0; ; attempt++) {
      try {
        await this.options.onDeadLetter(dead);
        return;
      } catch (err) {
        this.log.error({ err }, 'could not store a dead letter; retrying');
        await sleep(Math.min(30_000, 500 * 2 ** attempt));
      }
    }
  }
}
