/**
 * The producer side of the stream (BullMQ's `Queue`): `add` and `addBulk` publish events with
 * batched PutRecords, retrying only the entries Kinesis reports as failed, with full-jitter backoff.
 */
import { ListShardsCommand, PutRecordsCommand, type KinesisClient, type PutRecordsRequestEntry } from '@aws-sdk/client-kinesis';
import { DocorchError } from '../errors.js';
import { backoffPolicy, fullJitterDelay, sleep, type BackoffPolicy } from '../retry/backoff.js';
import { createEvent, encodeEvent, type EventPayload, type EventType, type StreamEvent } from './events.js';

/** PutRecords limits (Kinesis Data Streams quotas). */
const MAX_RECORDS_PER_CALL = 500;
const MAX_BYTES_PER_CALL = 5 * 1024 * 1024;
const MAX_RECORD_BYTES = 1024 * 1024;

/** One event to publish. */
export interface QueueItem<T extends EventType = EventType> {
  type: T;
  payload: EventPayload<T>;
  /** Decides the shard: chunks of one document use distinct keys to spread over the fleet. */
  partitionKey: string;
  /**
   * With {@link AddBulkOptions.spread}: the item goes to open shard `slot mod shards` (shards in
   * hash-key order, the same in every process) instead of the next one in turn. @defaultValue in turn
   */
  slot?: number;
}

/** Options of {@link Queue.addBulk}. */
export interface AddBulkOptions {
  /**
   * Deal the items round-robin over the open shards (an explicit hash key in each shard's range)
   * instead of hashing their partition keys: a large document then loads every shard, and so
   * every worker, evenly. @defaultValue false
   */
  spread?: boolean;
}

/** Options of {@link Queue}. */
export interface QueueOptions {
  /** Retry of failed entries. @defaultValue 8 attempts, 100 ms base, 5 s cap */
  retry?: Partial<BackoffPolicy>;
}

/** Publishes events to one Kinesis stream. */
export class Queue {
  private readonly retry: BackoffPolicy;

  constructor(
    private readonly kinesis: KinesisClient,
    readonly streamName: string,
    options: QueueOptions = {},
  ) {
    this.retry = backoffPolicy({ maxAttempts: 8, baseMs: 100, capMs: 5_000, ...options.retry });
  }

  /** Publishes one event. */
  async add<T extends EventType>(type: T, payload: EventPayload<T>, options: { partitionKey: string }): Promise<StreamEvent<T>> {
    const event = createEvent(type, payload);
    await this.putAll([{ event, partitionKey: options.partitionKey }]);
    return event;
  }

  /** Publishes many events in as few PutRecords calls as the limits allow. */
  async addBulk(items: readonly QueueItem[], options: AddBulkOptions = {}): Promise<StreamEvent[]> {
    const hashKeys = options.spread ? await this.shardHashKeys() : [];
    const events = items.map((item) => ({
      event: createEvent(item.type, item.payload),
      partitionKey: item.partitionKey,
      // One cursor across calls: a document published in many small batches (the splitter
      // streams its chunks) is still dealt evenly, not from a fresh start each time.
      ...(hashKeys.length > 0
        ? { explicitHashKey: hashKeys[(item.slot !== undefined ? Math.abs(Math.trunc(item.slot)) : this.spreadCursor++) % hashKeys.length] }
        : {}),
    }));
    await this.putAll(events);
    return events.map((e) => e.event);
  }

  private hashKeyCache: { keys: string[]; until: number } | undefined;
  /** Next shard of {@link AddBulkOptions.spread} (random start, so processes do not all begin at one shard). */
  private spreadCursor = Math.floor(Math.random() * 1_000_000);

  /** The middle of each open shard's hash-key range (closed shards have an ending sequence number; cached for a minute). */
  private async shardHashKeys(): Promise<string[]> {
    if (this.hashKeyCache && this.hashKeyCache.until > Date.now()) return this.hashKeyCache.keys;
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const out = await this.kinesis.send(
        new ListShardsCommand(token ? { NextToken: token } : { StreamName: this.streamName }),
      );
      for (const shard of out.Shards ?? []) {
        const range = shard.HashKeyRange;
        if (!range?.StartingHashKey || !range.EndingHashKey || shard.SequenceNumberRange?.EndingSequenceNumber) continue;
        keys.push(((BigInt(range.StartingHashKey) + BigInt(range.EndingHashKey)) / 2n).toString());
      }
      token = out.NextToken;
    } while (token);
    keys.sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : BigInt(a) > BigInt(b) ? 1 : 0));
    this.hashKeyCache = { keys, until: Date.now() + 60_000 };
    return keys;
  }

  private async putAll(items: ReadonlyArray<{ event: StreamEvent; partitionKey: string; explicitHashKey?: string }>): Promise<void> {
    let batch: PutRecordsRequestEntry[] = [];
    let bytes = 0;
    for (const { event, partitionKey, explicitHashKey } of items) {
      const data = encodeEvent(event);
      if (data.length > MAX_RECORD_BYTES) {
        throw new DocorchError('INTERNAL', `Event ${event.type} is ${data.length} bytes, over the 1 MiB record limit`);
      }
      const size = data.length + Buffer.byteLength(partitionKey);
      if (batch.length === MAX_RECORDS_PER_CALL || bytes + size > MAX_BYTES_PER_CALL) {
        await this.putBatch(batch);
        batch = [];
        bytes = 0;
      }
      batch.push({ Data: data, PartitionKey: partitionKey, ...(explicitHashKey ? { ExplicitHashKey: explicitHashKey } : {}) });
      bytes += size;
    }
    if (batch.length > 0) await this.putBatch(batch);
  }

  /** PutRecords with retry of exactly the failed entries (partial failures are normal under load). */
  private async putBatch(entries: PutRecordsRequestEntry[]): Promise<void> {
    let pending = entries;
    for (let attempt = 1; ; attempt++) {
      let failed: PutRecordsRequestEntry[];
      let lastError = '';
      try {
        const out = await this.kinesis.send(new PutRecordsCommand({ StreamName: this.streamName, Records: pending }));
        failed = (out.Records ?? []).flatMap((r, i) => (r.ErrorCode ? [pending[i] as PutRecordsRequestEntry] : []));
        lastError = out.Records?.find((r) => r.ErrorCode)?.ErrorCode ?? '';
      } catch (err) {
        // The whole call failed (network, throttling of the call): every entry is retried.
        failed = pending;
        lastError = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
      }
      if (failed.length === 0) return;
      if (attempt >= this.retry.maxAttempts) {
        throw new DocorchError('UPSTREAM_UNAVAILABLE', `${failed.length} record(s) not accepted by Kinesis after ${attempt} attempts: ${lastError}`);
      }
      pending = failed;
      await sleep(fullJitterDelay(attempt - 1, this.retry));
    }
  }
}
