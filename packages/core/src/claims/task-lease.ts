/**
 * A lease on a fleet-wide task (the reconciler's sweep): at most one holder at a time, with the
 * discipline of the stream leases (stream/leases, KCL): the holder renews by bumping a counter
 * with a conditional write; a taker never compares wall clocks across hosts, it watches the
 * counter on its own monotonic clock and takes the lease only after it stood still for the whole
 * lease duration; a write whose response was lost is recognised on re-read. The rules in prose:
 * docs/claims.md.
 *
 * The row lives in the stream's lease table under `task#<name>`, with its own attributes
 * (`taskOwner`, `taskCounter`): rows without `leaseCounter` are not shard leases, so the shard
 * lease taker never sees it.
 */
import { GetCommand, PutCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { isConditionFailure } from '../aws/conditions.js';
import { LEASES_TABLE_KEYS } from '../aws/resources.js';
import { systemClock, type Clock } from '../stream/leases/clock.js';

/** Options of {@link TaskLease}. */
export interface TaskLeaseOptions {
  doc: DynamoDBDocumentClient;
  /** The stream's lease table. */
  tableName: string;
  /** Task name; the row's key is `task#<name>`. */
  name: string;
  /** This process's id. */
  owner: string;
  /** A lease whose counter stands still this long (on the taker's clock) may be taken. */
  durationMs: number;
  /** Monotonic clock. @defaultValue systemClock */
  clock?: Clock;
}

interface Row {
  owner?: string;
  counter: number;
}

/** A lease on one fleet-wide task. Call {@link TaskLease.acquire} at least every `durationMs / 3` while holding. */
export class TaskLease {
  private held: number | undefined;
  private seen: { counter: number; owner: string | undefined; since: number } | undefined;
  private readonly clock: Clock;
  private readonly key: Record<string, string>;

  constructor(private readonly options: TaskLeaseOptions) {
    this.clock = options.clock ?? systemClock;
    this.key = { [LEASES_TABLE_KEYS.leaseKey]: `task#${options.name}` };
  }

  /** True while this process holds the lease (as of its last renewal). */
  get holding(): boolean {
    return this.held !== undefined;
  }

  /**
   * Renews the lease if held, else takes it when it is free (no row, no owner) or its counter
   * stood still for `durationMs`. Returns whether this process holds it now.
   */
  async acquire(): Promise<boolean> {
    if (this.held !== undefined) {
      this.held = await this.write(this.held, true);
      if (this.held !== undefined) return true;
    }
    const row = await this.read();
    const now = this.clock.nowMs();
    if (!row) {
      this.held = await this.create();
      return this.held !== undefined;
    }
    if (row.owner === this.options.owner) {
      // Ours (a renewal whose answer we lost, then re-read): keep renewing from its counter.
      this.held = await this.write(row.counter, true);
      return this.held !== undefined;
    }
    if (!this.seen || this.seen.counter !== row.counter || this.seen.owner !== row.owner) {
      this.seen = { counter: row.counter, owner: row.owner, since: now };
    }
    const free = row.owner === undefined || now - this.seen.since >= this.options.durationMs;
    if (!free) return false;
    this.held = await this.write(row.counter, false);
    return this.held !== undefined;
  }

  /** Gives the lease up (the next taker need not wait); harmless when not held. */
  async release(): Promise<void> {
    const counter = this.held;
    this.held = undefined;
    if (counter === undefined) return;
    try {
      await this.options.doc.send(
        new UpdateCommand({
          TableName: this.options.tableName,
          Key: this.key,
          UpdateExpression: 'REMOVE taskOwner ADD taskCounter :one',
          ConditionExpression: 'taskOwner = :me AND taskCounter = :c',
          ExpressionAttributeValues: { ':me': this.options.owner, ':c': counter, ':one': 1 },
        }),
      );
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
  }

  private async read(): Promise<Row | undefined> {
    const out = await this.options.doc.send(new GetCommand({ TableName: this.options.tableName, Key: this.key, ConsistentRead: true }));
    if (!out.Item) return undefined;
    const owner = out.Item.taskOwner;
    return { owner: typeof owner === 'string' ? owner : undefined, counter: Number(out.Item.taskCounter ?? 0) };
  }

  private async create(): Promise<number | undefined> {
    try {
      await this.options.doc.send(
        new PutCommand({
          TableName: this.options.tableName,
          Item: { ...this.key, taskOwner: this.options.owner, taskCounter: 1 },
          ConditionExpression: 'attribute_not_exists(#k)',
          ExpressionAttributeNames: { '#k': LEASES_TABLE_KEYS.leaseKey },
        }),
      );
      return 1;
    } catch (err) {
      if (isConditionFailure(err)) return undefined;
      throw err;
    }
  }

  /**
   * Counter + 1 and owner = us, on condition that the counter is `counter` (and, for a renewal,
   * that we own it). On a failed condition the row is re-read: ours at exactly `counter + 1` means
   * this very write landed and its answer was lost (the KCL's spurious renewal failure).
   */
  private async write(counter: number, renewal: boolean): Promise<number | undefined> {
    try {
      await this.options.doc.send(
        new UpdateCommand({
          TableName: this.options.tableName,
          Key: this.key,
          UpdateExpression: 'SET taskOwner = :me ADD taskCounter :one',
          ConditionExpression: renewal ? 'taskOwner = :me AND taskCounter = :c' : 'taskCounter = :c',
          ExpressionAttributeValues: { ':me': this.options.owner, ':c': counter, ':one': 1 },
        }),
      );
      return counter + 1;
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
      const row = await this.read();
      if (row?.owner === this.options.owner && row.counter === counter + 1) return row.counter;
      return undefined;
    }
  }
}
