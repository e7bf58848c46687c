/**
 * Every read and conditional write of the lease table, in one place (the KCL's
 * DynamoDBLeaseRefresher). Callers never build an UpdateExpression themselves.
 *
 * The optimistic lock is `leaseCounter`: each write of a lease is conditioned on the counter (and
 * owner) the writer last saw and bumps it, so a writer working from a stale view always loses.
 *
 * | transition        | condition                                                   | effect                                     |
 * | ----------------- | ----------------------------------------------------------- | ------------------------------------------ |
 * | create            | row absent                                                  | row at counter 0                           |
 * | renew             | counter = seen AND holder = me                              | counter + 1                                |
 * | take              | counter = seen AND owner = seen owner (or absent)           | owner = me, hand-off cleared, counter + 1, switches + 1 if the holder changed |
 * | evict / release   | owner = seen owner, no hand-off                             | owner removed, counter + 1                 |
 * | update checkpoint | counter = held AND holder = me AND checkpoint = held one    | checkpoint, switches = 0, counter + 1      |
 * | initiate hand-off | counter = seen AND owner = seen owner AND no hand-off       | owner = taker, checkpointOwner = old owner (counter unchanged) |
 * | complete hand-off | counter = held AND checkpointOwner = me                     | checkpointOwner removed, counter + 1, switches + 1 |
 * | cancel hand-off   | owner = taker AND a checkpointOwner                         | owner = checkpointOwner, checkpointOwner removed (counter unchanged) |
 * | delete            | none                                                        | row removed                                |
 *
 * "holder = me" is `(leaseOwner = me AND no checkpointOwner) OR checkpointOwner = me`: during a
 * hand-off the previous owner keeps renewing and checkpointing until it completes it.
 *
 * Writes that can be retried by the SDK after they landed (lost response) re-read the row on a
 * failed condition before reporting failure; see {@link LeaseRefresher.renewLease}.
 * Failures other than a failed condition (throttling, network) are thrown as the SDK raised them.
 */
import { isConditionFailure } from '../../aws/conditions.js';
import {
  DeleteCommand,
  GetCommand,
  PutCommand,
  ScanCommand,
  UpdateCommand,
  type DynamoDBDocumentClient,
} from '@aws-sdk/lib-dynamodb';
import { InvalidCheckpointError } from './errors.js';
import { LeaseAttribute, leaseCheckpoint, leaseHolder, type Lease } from './lease.js';
import type { LeaseRefresherOptions } from './options.js';
import {
  compareExtendedSequenceNumbers,
  isValidCheckpoint,
  SentinelCheckpoint,
  type ExtendedSequenceNumber,
} from './sequence-number.js';

const A = LeaseAttribute;

/** Condition "`:me` holds the lease" (see the table above); uses #owner, #cpo and :me. */
const HELD_BY_ME = '((#owner = :me AND attribute_not_exists(#cpo)) OR #cpo = :me)';


/** Lease -> DynamoDB item (document-client values). */
function toItem(lease: Lease): Record<string, unknown> {
  const item: Record<string, unknown> = {
    [A.leaseKey]: lease.leaseKey,
    [A.leaseCounter]: lease.leaseCounter,
    [A.checkpoint]: lease.checkpoint,
    [A.checkpointSubSequenceNumber]: lease.checkpointSubSequenceNumber,
    [A.ownerSwitchesSinceCheckpoint]: lease.ownerSwitchesSinceCheckpoint,
  };
  if (lease.leaseOwner !== null) item[A.leaseOwner] = lease.leaseOwner;
  // A string set cannot be empty: no parents means no attribute (as the KCL writes it).
  if (lease.parentShardIds.length > 0) item[A.parentShardIds] = new Set(lease.parentShardIds);
  if (lease.checkpointOwner !== null) item[A.checkpointOwner] = lease.checkpointOwner;
  return item;
}

function asNumber(value: unknown, fallback: number): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'bigint') return Number(value);
  if (typeof value === 'string' && value !== '') return Number(value);
  return fallback;
}

function asStringList(value: unknown): string[] {
  if (value instanceof Set) return [...value].map(String).sort();
  if (Array.isArray(value)) return value.map(String).sort();
  if (typeof value === 'string' && value !== '') return [value];
  return [];
}

/** DynamoDB item -> Lease. Tolerates rows written by the Java KCL (extra attributes are ignored). */
export function leaseFromItem(item: Record<string, unknown>): Lease {
  const leaseKey = item[A.leaseKey];
  if (typeof leaseKey !== 'string') throw new TypeError('Lease row without a string leaseKey');
  const owner = item[A.leaseOwner];
  const checkpoint = item[A.checkpoint];
  const checkpointOwner = item[A.checkpointOwner];
  return {
    leaseKey,
    leaseOwner: typeof owner === 'string' ? owner : null,
    leaseCounter: asNumber(item[A.leaseCounter], 0),
    checkpoint: typeof checkpoint === 'string' ? checkpoint : SentinelCheckpoint.TRIM_HORIZON,
    checkpointSubSequenceNumber: asNumber(item[A.checkpointSubSequenceNumber], 0),
    ownerSwitchesSinceCheckpoint: asNumber(item[A.ownerSwitchesSinceCheckpoint], 0),
    parentShardIds: asStringList(item[A.parentShardIds]),
    checkpointOwner: typeof checkpointOwner === 'string' ? checkpointOwner : null,
  };
}

/** Reads and conditionally writes lease rows. Stateless: safe to share between workers in one process. */
export class LeaseRefresher {
  /** The lease table. */
  readonly tableName: string;
  private readonly doc: DynamoDBDocumentClient;

  constructor(options: LeaseRefresherOptions) {
    this.doc = options.client;
    this.tableName = options.tableName;
  }

  /**
   * Creates a lease unless its row already exists (shard discovery may run on several workers).
   * @returns true when this call created it.
   */
  async createLeaseIfNotExists(lease: Lease): Promise<boolean> {
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: toItem(lease),
          ConditionExpression: 'attribute_not_exists(#key)',
          ExpressionAttributeNames: { '#key': A.leaseKey },
        }),
      );
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  /** Reads one lease, strongly consistent; undefined when absent. */
  async getLease(leaseKey: string): Promise<Lease | undefined> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: { [A.leaseKey]: leaseKey }, ConsistentRead: true }),
    );
    return out.Item ? leaseFromItem(out.Item) : undefined;
  }

  /**
   * Every lease of the table: a strongly consistent scan, all pages. Rows without a
   * `leaseCounter` are not leases (every lease is created with one) and are left out: the local
   * DynamoDB Streams poller of the aggregator keeps its checkpoints in the same table, and
   * counting them would make takers chase rows they can never take and miscount their target.
   */
  async listLeases(): Promise<Lease[]> {
    const leases: Lease[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const out = await this.doc.send(
        new ScanCommand({ TableName: this.tableName, ConsistentRead: true, ExclusiveStartKey: startKey }),
      );
      for (const item of out.Items ?? []) if (item[A.leaseCounter] !== undefined) leases.push(leaseFromItem(item));
      startKey = out.LastEvaluatedKey;
    } while (startKey);
    return leases;
  }

  /**
   * Renews a held lease: counter + 1, on condition that the counter is still the one in `lease`
   * and `lease.leaseOwner` still holds it (also while it hands the lease off: the returned row
   * then names the next owner in `leaseOwner` and the caller in `checkpointOwner`).
   *
   * On a failed condition the row is re-read before giving up: if it shows this owner and exactly
   * one more increment, that increment was this very write, applied once and then retried by
   * the SDK after a lost response (the KCL's "spurious renewal failure"), so the renewal
   * succeeded. Callers must not run two writes of one lease at once (the renewer serialises them),
   * or this inference would be wrong.
   * @returns the renewed lease, or undefined when the lease was lost.
   */
  async renewLease(lease: Lease): Promise<Lease | undefined> {
    const owner = requireOwner(lease);
    try {
      const out = await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { [A.leaseKey]: lease.leaseKey },
          UpdateExpression: 'SET #counter = :next',
          ConditionExpression: `#counter = :expected AND ${HELD_BY_ME}`,
          ExpressionAttributeNames: { '#counter': A.leaseCounter, '#owner': A.leaseOwner, '#cpo': A.checkpointOwner },
          ExpressionAttributeValues: { ':next': lease.leaseCounter + 1, ':expected': lease.leaseCounter, ':me': owner },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return out.Attributes ? leaseFromItem(out.Attributes) : { ...lease, leaseCounter: lease.leaseCounter + 1 };
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
      const current = await this.getLease(lease.leaseKey);
      if (current && leaseHolder(current) === owner && current.leaseCounter === lease.leaseCounter + 1) return current;
      return undefined;
    }
  }

  /**
   * Takes a lease for `owner`, on condition that nobody wrote it since `lease` was read (same
   * counter, same owner or still unowned). Counts an owner switch when it changes hands between
   * two workers (not when taken from nobody, as in the KCL).
   * @returns the taken lease, or undefined when another write came first.
   */
  async takeLease(lease: Lease, owner: string): Promise<Lease | undefined> {
    // Taking a lease whose hand-off is under way (expired, or forced by the next owner) ends it.
    const holder = leaseHolder(lease);
    const switched = holder !== null && holder !== owner;
    const ownerCondition = lease.leaseOwner === null ? 'attribute_not_exists(#owner)' : '#owner = :oldOwner';
    try {
      const out = await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { [A.leaseKey]: lease.leaseKey },
          UpdateExpression: switched
            ? 'SET #owner = :owner, #counter = :next, #switches = #switches + :one REMOVE #cpo'
            : 'SET #owner = :owner, #counter = :next REMOVE #cpo',
          ConditionExpression: `attribute_exists(#key) AND #counter = :expected AND ${ownerCondition}`,
          ExpressionAttributeNames: {
            '#key': A.leaseKey,
            '#owner': A.leaseOwner,
            '#counter': A.leaseCounter,
            '#cpo': A.checkpointOwner,
            ...(switched ? { '#switches': A.ownerSwitchesSinceCheckpoint } : {}),
          },
          ExpressionAttributeValues: {
            ':owner': owner,
            ':next': lease.leaseCounter + 1,
            ':expected': lease.leaseCounter,
            ...(lease.leaseOwner === null ? {} : { ':oldOwner': lease.leaseOwner }),
            ...(switched ? { ':one': 1 } : {}),
          },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return out.Attributes ? leaseFromItem(out.Attributes) : undefined;
    } catch (err) {
      if (isConditionFailure(err)) return undefined;
      throw err;
    }
  }

  /**
   * Removes the owner of a lease (counter + 1) so any worker can take it at once: graceful
   * release by its holder on shutdown, or eviction by an operator. Conditioned on the owner only
   * (not the counter), so a concurrent renewal of the holder does not make it fail, while a lease
   * that already changed hands is never touched.
   * @returns the released lease, or undefined when `lease.leaseOwner` no longer owns it.
   */
  async evictLease(lease: Lease): Promise<Lease | undefined> {
    const owner = requireOwner(lease);
    try {
      const out = await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { [A.leaseKey]: lease.leaseKey },
          UpdateExpression: 'REMOVE #owner SET #counter = #counter + :one',
          // A lease being handed off is not released: its holder completes the hand-off instead.
          ConditionExpression: 'attribute_exists(#key) AND #owner = :owner AND attribute_not_exists(#cpo)',
          ExpressionAttributeNames: { '#key': A.leaseKey, '#owner': A.leaseOwner, '#counter': A.leaseCounter, '#cpo': A.checkpointOwner },
          ExpressionAttributeValues: { ':owner': owner, ':one': 1 },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return out.Attributes ? leaseFromItem(out.Attributes) : undefined;
    } catch (err) {
      if (isConditionFailure(err)) return undefined;
      throw err;
    }
  }

  /**
   * Writes a checkpoint for the holder of `lease`: counter + 1, owner switches reset, on
   * condition that counter, owner and checkpoint are still the ones in `lease`. Because the stored
   * checkpoint must equal the one compared here, a checkpoint can never move backwards, even
   * against a writer with a stale view. SHARD_END is terminal.
   *
   * A failed condition is re-read like {@link LeaseRefresher.renewLease}: a row showing this owner,
   * one more increment and exactly this checkpoint was written by this call.
   * @returns the updated lease, or undefined when the lease was lost.
   * @throws InvalidCheckpointError when the value is malformed, lower than the lease's checkpoint,
   *   or the lease is already at SHARD_END; nothing is written then.
   */
  async updateCheckpoint(lease: Lease, checkpoint: ExtendedSequenceNumber): Promise<Lease | undefined> {
    const owner = requireOwner(lease);
    assertCheckpointMayFollow(lease, checkpoint);
    try {
      const out = await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { [A.leaseKey]: lease.leaseKey },
          UpdateExpression: 'SET #cp = :cp, #sub = :sub, #switches = :zero, #counter = :next',
          ConditionExpression: `#counter = :expected AND ${HELD_BY_ME} AND #cp = :prevCp AND #sub = :prevSub`,
          ExpressionAttributeNames: {
            '#cp': A.checkpoint,
            '#sub': A.checkpointSubSequenceNumber,
            '#switches': A.ownerSwitchesSinceCheckpoint,
            '#counter': A.leaseCounter,
            '#owner': A.leaseOwner,
            '#cpo': A.checkpointOwner,
          },
          ExpressionAttributeValues: {
            ':cp': checkpoint.sequenceNumber,
            ':sub': checkpoint.subSequenceNumber,
            ':zero': 0,
            ':next': lease.leaseCounter + 1,
            ':expected': lease.leaseCounter,
            ':me': owner,
            ':prevCp': lease.checkpoint,
            ':prevSub': lease.checkpointSubSequenceNumber,
          },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return out.Attributes ? leaseFromItem(out.Attributes) : undefined;
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
      const current = await this.getLease(lease.leaseKey);
      if (
        current &&
        leaseHolder(current) === owner &&
        current.leaseCounter === lease.leaseCounter + 1 &&
        compareExtendedSequenceNumbers(leaseCheckpoint(current), checkpoint) === 0
      ) {
        return current;
      }
      return undefined;
    }
  }

  /**
   * Asks the holder of `lease` to hand it to `newOwner` (KCL 3.x graceful hand-off): owner =
   * `newOwner`, checkpointOwner = the holder, on condition that nobody wrote it since `lease` was
   * read and no hand-off is under way. The counter does not move, so the holder's renewals and
   * checkpoints go on until it completes the hand-off.
   * @returns the lease as written, or undefined when another write came first.
   */
  async initiateHandoff(lease: Lease, newOwner: string): Promise<Lease | undefined> {
    const owner = requireOwner(lease);
    if (owner === newOwner) throw new TypeError(`Lease ${lease.leaseKey} is already owned by ${newOwner}`);
    try {
      const out = await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { [A.leaseKey]: lease.leaseKey },
          UpdateExpression: 'SET #owner = :next, #cpo = :old',
          ConditionExpression: 'attribute_exists(#key) AND #counter = :expected AND #owner = :old AND attribute_not_exists(#cpo)',
          ExpressionAttributeNames: { '#key': A.leaseKey, '#owner': A.leaseOwner, '#counter': A.leaseCounter, '#cpo': A.checkpointOwner },
          ExpressionAttributeValues: { ':next': newOwner, ':old': owner, ':expected': lease.leaseCounter },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return out.Attributes ? leaseFromItem(out.Attributes) : undefined;
    } catch (err) {
      if (isConditionFailure(err)) return undefined;
      throw err;
    }
  }

  /**
   * The holder's last write of a lease it hands off (after its final checkpoint): checkpointOwner
   * removed and counter + 1, on condition that the counter is the held one and the caller is
   * still the checkpoint owner. The next owner then takes it from the checkpoint at once.
   * A failed condition is re-read like {@link LeaseRefresher.renewLease}.
   * @param holder - the worker completing the hand-off (the lease's checkpointOwner).
   * @param newOwner - the worker it is handed to (the lease's leaseOwner).
   * @returns the lease as written, or undefined when the lease was taken meanwhile.
   */
  async completeHandoff(lease: Lease, holder: string, newOwner: string): Promise<Lease | undefined> {
    try {
      const out = await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { [A.leaseKey]: lease.leaseKey },
          UpdateExpression: 'SET #counter = :next, #switches = #switches + :one REMOVE #cpo',
          ConditionExpression: '#counter = :expected AND #cpo = :me',
          ExpressionAttributeNames: { '#counter': A.leaseCounter, '#cpo': A.checkpointOwner, '#switches': A.ownerSwitchesSinceCheckpoint },
          ExpressionAttributeValues: { ':next': lease.leaseCounter + 1, ':expected': lease.leaseCounter, ':me': holder, ':one': 1 },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return out.Attributes ? leaseFromItem(out.Attributes) : undefined;
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
      const current = await this.getLease(lease.leaseKey);
      // This write, landed and retried (or the new owner's outright take at the same moment:
      // either way the lease is the new owner's now).
      if (current && current.checkpointOwner === null && current.leaseOwner === newOwner && current.leaseCounter === lease.leaseCounter + 1) return current;
      return undefined;
    }
  }

  /**
   * Withdraws a hand-off `taker` asked for (the taker is stopping): leaseOwner back to the holder,
   * checkpointOwner removed, counter unchanged, on condition that the hand-off is still under way
   * to `taker`. The holder then keeps the lease (its renewals go on).
   * @returns the lease as written, or undefined when the hand-off had ended already.
   */
  async cancelHandoff(leaseKey: string, taker: string): Promise<Lease | undefined> {
    try {
      const out = await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { [A.leaseKey]: leaseKey },
          UpdateExpression: 'SET #owner = #cpo REMOVE #cpo',
          ConditionExpression: '#owner = :me AND attribute_exists(#cpo)',
          ExpressionAttributeNames: { '#owner': A.leaseOwner, '#cpo': A.checkpointOwner },
          ExpressionAttributeValues: { ':me': taker },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return out.Attributes ? leaseFromItem(out.Attributes) : undefined;
    } catch (err) {
      if (isConditionFailure(err)) return undefined;
      throw err;
    }
  }

  /** Deletes a lease row (after its shard reached SHARD_END and its children started). */
  async deleteLease(leaseKey: string): Promise<void> {
    await this.doc.send(new DeleteCommand({ TableName: this.tableName, Key: { [A.leaseKey]: leaseKey } }));
  }
}

function requireOwner(lease: Lease): string {
  if (lease.leaseOwner === null) throw new TypeError(`Lease ${lease.leaseKey} has no owner`);
  return lease.leaseOwner;
}

/**
 * Throws unless `checkpoint` may replace the checkpoint of `lease`: well formed, not lower,
 * and the lease not finished (SHARD_END may only be repeated).
 */
export function assertCheckpointMayFollow(lease: Lease, checkpoint: ExtendedSequenceNumber): void {
  const { sequenceNumber, subSequenceNumber } = checkpoint;
  if (!isValidCheckpoint(sequenceNumber) || !Number.isSafeInteger(subSequenceNumber) || subSequenceNumber < 0) {
    throw new InvalidCheckpointError(lease.leaseKey, 'malformed', sequenceNumber, lease.checkpoint);
  }
  if (lease.checkpoint === SentinelCheckpoint.SHARD_END && sequenceNumber !== SentinelCheckpoint.SHARD_END) {
    throw new InvalidCheckpointError(lease.leaseKey, 'shard-ended', sequenceNumber, lease.checkpoint);
  }
  if (compareExtendedSequenceNumbers(checkpoint, leaseCheckpoint(lease)) < 0) {
    throw new InvalidCheckpointError(lease.leaseKey, 'backwards', sequenceNumber, lease.checkpoint);
  }
}
