/**
 * ShardCheckpointer against DynamoDB Local, alone and driven by a SequenceTracker for records
 * processed in parallel within a shard.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { InvalidCheckpointError, LeaseLostError } from '../src/stream/leases/errors.js';
import { leaseCheckpoint, newLease, type HeldLease } from '../src/stream/leases/lease.js';
import { LeaseRefresher } from '../src/stream/leases/lease-refresher.js';
import { LeaseRenewer } from '../src/stream/leases/lease-renewer.js';
import { compareSequenceNumbers } from '../src/stream/leases/sequence-number.js';
import { SequenceTracker } from '../src/stream/leases/sequence-tracker.js';
import { ShardCheckpointer, type CheckpointWriter } from '../src/stream/leases/shard-checkpointer.js';
import { createLeaseTableFixture, type LeaseTableFixture } from './helpers/lease-table.js';
import { ManualClock, seededRandom } from './helpers/manual-time.js';

let table: LeaseTableFixture;
let refresher: LeaseRefresher;
let renewer: LeaseRenewer;
let held: HeldLease;

beforeAll(async () => {
  table = await createLeaseTableFixture('checkpointer');
  refresher = new LeaseRefresher({ client: table.doc, tableName: table.tableName });
});
afterAll(async () => {
  await table?.dispose();
});
beforeEach(async () => {
  await table.clear();
  renewer = new LeaseRenewer(refresher, { workerId: 'me', failoverTimeMs: 10_000, clock: new ManualClock() });
  const lease = newLease({ leaseKey: 'shard-1', leaseOwner: 'me' });
  await refresher.createLeaseIfNotExists(lease);
  [held] = renewer.addLeasesToRenew([lease]) as [HeldLease];
});

const seq = (i: number): string => (49_590_338_271_490_256_608_559_692_538_361_571_095_921_575_989_136_588_898n + BigInt(i)).toString();

describe('ShardCheckpointer', () => {
  it('writes checkpoints while the lease is held', async () => {
    const cp = new ShardCheckpointer(renewer, 'shard-1', leaseCheckpoint(held));
    await cp.checkpoint(seq(1), held.concurrencyToken);
    await cp.checkpoint(seq(5), held.concurrencyToken);
    expect(cp.lastCheckpoint).toEqual({ sequenceNumber: seq(5), subSequenceNumber: 0 });
    expect((await refresher.getLease('shard-1'))?.checkpoint).toBe(seq(5));
  });

  it('writes the same value once', async () => {
    const cp = new ShardCheckpointer(renewer, 'shard-1');
    await cp.checkpoint(seq(1), held.concurrencyToken);
    await cp.checkpoint(seq(1), held.concurrencyToken);
    await cp.checkpoint(seq(1), held.concurrencyToken);
    expect((await refresher.getLease('shard-1'))?.leaseCounter).toBe(1);
  });

  it('still refuses a repeated value once the lease is lost', async () => {
    const cp = new ShardCheckpointer(renewer, 'shard-1');
    await cp.checkpoint(seq(1), held.concurrencyToken);
    renewer.dropLease('shard-1');
    await expect(cp.checkpoint(seq(1), held.concurrencyToken)).rejects.toMatchObject({ reason: 'not-held' });
  });

  it('never moves backwards: refused locally, before any write', async () => {
    const cp = new ShardCheckpointer(renewer, 'shard-1');
    await cp.checkpoint(seq(10), held.concurrencyToken);
    const error = await cp.checkpoint(seq(9), held.concurrencyToken).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidCheckpointError);
    expect((error as InvalidCheckpointError).reason).toBe('backwards');
    await expect(cp.checkpoint('TRIM_HORIZON', held.concurrencyToken)).rejects.toBeInstanceOf(InvalidCheckpointError);
    expect((await refresher.getLease('shard-1'))?.checkpoint).toBe(seq(10));
  });

  it('never moves backwards: a fresh checkpointer is refused by the lease table', async () => {
    await new ShardCheckpointer(renewer, 'shard-1').checkpoint(seq(10), held.concurrencyToken);
    const forgetful = new ShardCheckpointer(renewer, 'shard-1'); // no initial value
    await expect(forgetful.checkpoint(seq(3), held.concurrencyToken)).rejects.toMatchObject({ reason: 'backwards' });
    expect((await refresher.getLease('shard-1'))?.checkpoint).toBe(seq(10));
  });

  it('SHARD_END is terminal', async () => {
    const cp = new ShardCheckpointer(renewer, 'shard-1');
    await cp.checkpoint(seq(10), held.concurrencyToken);
    await cp.checkpointShardEnd(held.concurrencyToken);
    await expect(cp.checkpoint(seq(11), held.concurrencyToken)).rejects.toMatchObject({ reason: 'shard-ended' });
    await cp.checkpointShardEnd(held.concurrencyToken);
    expect((await refresher.getLease('shard-1'))?.checkpoint).toBe('SHARD_END');
  });

  it('refuses malformed values', async () => {
    const cp = new ShardCheckpointer(renewer, 'shard-1');
    await expect(cp.checkpoint('', held.concurrencyToken)).rejects.toMatchObject({ reason: 'malformed' });
    await expect(cp.checkpoint('1.5', held.concurrencyToken)).rejects.toMatchObject({ reason: 'malformed' });
    await expect(cp.checkpoint(seq(1), held.concurrencyToken, -1)).rejects.toMatchObject({ reason: 'malformed' });
  });

  it('refuses a stale token and a lease not held', async () => {
    await expect(new ShardCheckpointer(renewer, 'shard-1').checkpoint(seq(1), 'not-the-token')).rejects.toMatchObject({
      name: 'LeaseLostError',
      reason: 'stale-token',
    });
    await expect(new ShardCheckpointer(renewer, 'shard-2').checkpoint(seq(1), held.concurrencyToken)).rejects.toBeInstanceOf(
      LeaseLostError,
    );
    expect((await refresher.getLease('shard-1'))?.leaseCounter).toBe(0);
  });

  it('applies concurrent calls in call order', async () => {
    const cp = new ShardCheckpointer(renewer, 'shard-1');
    await Promise.all([1, 2, 3, 4, 5].map((i) => cp.checkpoint(seq(i), held.concurrencyToken)));
    expect((await refresher.getLease('shard-1'))?.checkpoint).toBe(seq(5));
  });
});

describe('parallel records within a shard: SequenceTracker + ShardCheckpointer', () => {
  it('checkpoints only below the oldest record in flight, never backwards, ending at the last record', async () => {
    const written: string[] = [];
    const spy: CheckpointWriter = {
      getCurrentlyHeldLease: (key) => renewer.getCurrentlyHeldLease(key),
      async updateCheckpoint(key, token, checkpoint) {
        const lease = await renewer.updateCheckpoint(key, token, checkpoint);
        written.push(lease.checkpoint);
        return lease;
      },
    };
    const cp = new ShardCheckpointer(spy, 'shard-1', leaseCheckpoint(held));
    const tracker = new SequenceTracker();
    const random = seededRandom(42);
    const total = 60;
    const cap = 6;
    const doneSet = new Set<string>();
    const checkpoints: Promise<void>[] = [];
    const inFlight = new Set<Promise<void>>();
    let maxInFlight = 0;

    for (let i = 0; i < total; i++) {
      while (inFlight.size >= cap) await Promise.race(inFlight);
      const s = seq(i * 7);
      tracker.begin(s);
      const work = (async () => {
        await new Promise((r) => setTimeout(r, Math.floor(random() * 15)));
        tracker.complete(s);
        doneSet.add(s);
        const safe = tracker.safeCheckpoint();
        // At-least-once: everything at or below the checkpoint is done.
        if (safe) for (let j = 0; j <= i; j++) if (compareSequenceNumbers(seq(j * 7), safe) <= 0) expect(doneSet.has(seq(j * 7))).toBe(true);
        if (safe) checkpoints.push(cp.checkpoint(safe, held.concurrencyToken));
      })();
      inFlight.add(work);
      maxInFlight = Math.max(maxInFlight, tracker.inFlight);
      void work.finally(() => inFlight.delete(work));
    }
    await Promise.all(inFlight);
    await Promise.all(checkpoints);

    expect(maxInFlight).toBe(cap);
    expect(written.length).toBeGreaterThan(0);
    for (let i = 1; i < written.length; i++) expect(compareSequenceNumbers(written[i]!, written[i - 1]!)).toBeGreaterThan(0);
    expect((await refresher.getLease('shard-1'))?.checkpoint).toBe(seq((total - 1) * 7));
  });
});
