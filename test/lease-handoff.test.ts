/**
 * Graceful lease hand-off in the stream Worker (KCL 3.x; docs/lease-lifecycle.md), on kinesalite
 * and DynamoDB Local: a second worker joins while the first is consuming every shard of a busy
 * stream. The first passes half of the shards on after draining and checkpointing: no record is
 * handled twice, no lease is lost, every record is handled, and both workers report the fleet
 * balanced. The same run with KCL 2.x steals (gracefulHandoff: false) is printed for comparison.
 * A third run puts the handler's work behind two slots, as chunk analyses wait for the worker's
 * analysis cap: at the hand-off, the records still waiting for a slot are handed back at once
 * and the next owner runs them, while work under way finishes.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAwsClients, createLogger, FairQueue, loadConfig, Queue, Worker, type AwsClients, type Config } from '@docorch/core';
import { createIsolatedResources, type IsolatedResources } from '@docorch/testkit';
import { waitFor } from './helpers.js';

const RECORDS = 400;
const HANDLER_MS = 100;

/**
 * Runs A alone, then B joining. With `slots`, each record's work waits for one of that many slots
 * first (a hand-off may take it back while it waits), and work begun or done elsewhere is not done
 * again (as the chunk claim keeps a chunk to one analysis).
 */
async function run(graceful: boolean, prefix: string, slots?: number) {
  const resources: IsolatedResources = await createIsolatedResources({ prefix, shardCount: 4 });
  const config: Config = loadConfig({ ...process.env, ...resources.names, LOG_LEVEL: 'silent' });
  const aws: AwsClients = createAwsClients(config);
  const logger = createLogger({ service: 'lease-handoff-test', level: 'silent' });
  const handled = new Map<number, string[]>();
  const lost: string[] = [];
  const handedOff: string[] = [];
  /** Records given back by their handler because of a hand-off (before their work began). */
  const handedBack: number[] = [];
  const working = new Map<number, Promise<void>>();
  const make = (id: string) => {
    const queue = new FairQueue(slots ?? 1);
    const work = async (i: number, signal: AbortSignal) => {
      // As a chunk handler: an aborted record is left for the shard's next owner.
      await sleep(HANDLER_MS, undefined, { signal });
      handled.set(i, [...(handled.get(i) ?? []), id]);
    };
    const w = new Worker(
      config.STREAM_NAME,
      {
        'chunk.ready': async (event, info) => {
          const i = event.payload.chunkIndex;
          if (slots === undefined) return work(i, info.signal);
          const waiting = AbortSignal.any([info.signal, info.handBack]);
          await queue
            .run({ flow: 't' }, async () => {
              const begun = working.get(i);
              if (begun) return begun;
              if (handled.has(i)) return;
              const job = work(i, info.signal).finally(() => working.delete(i));
              working.set(i, job);
              return job;
            }, waiting)
            .catch((err: unknown) => {
              if (info.handBack.aborted && !info.signal.aborted) handedBack.push(i);
              throw err;
            });
        },
      },
      {
        kinesis: aws.kinesis,
        dynamo: aws.doc,
        leaseTable: config.LEASES_TABLE,
        logger,
        workerId: id,
        concurrency: slots === undefined ? 8 : 40,
        failoverTimeMs: 3_000,
        takeIntervalMs: 1_000,
        idleReadMs: 100,
        maxRecordsPerRead: 50,
        gracefulHandoff: graceful,
        handoffDrainMs: 2_000,
        onDeadLetter: async () => undefined,
      },
    );
    w.on('leaseLost', (shard) => lost.push(`${id}:${shard}`));
    w.on('leaseHandedOff', (shard) => handedOff.push(`${id}:${shard}`));
    return w;
  };
  const queue = new Queue(aws.kinesis, config.STREAM_NAME);
  await queue.addBulk(
    Array.from({ length: RECORDS }, (_, i) => ({
      type: 'chunk.ready' as const,
      payload: { tenantId: 't', documentId: 'd', chunkIndex: i, attempt: 1, analyses: ['summary' as const] },
      partitionKey: `d#${i}`,
    })),
    { spread: true },
  );
  const a = make('A');
  const b = make('B');
  try {
    await a.run();
    await waitFor('A holding every shard and busy', () => (a.shards.length === 4 && handled.size >= 40 ? true : undefined), 60_000, 50);
    await b.run();
    await waitFor('every record handled', () => (handled.size === RECORDS ? true : undefined), 120_000, 100);
    const balance = await waitFor('the fleet balanced', async () => {
      const [va, vb] = await Promise.all([a.balance(), b.balance()]);
      return va.balanced && vb.balanced ? va : undefined;
    }, 30_000, 200);
    const twice = [...handled.values()].filter((by) => by.length > 1).length;
    return { twice, lost, handedOff, handedBack, balance, shards: { A: a.shards, B: b.shards } };
  } finally {
    await Promise.all([a.close(1_000), b.close(1_000)]);
    aws.destroy();
    await resources.cleanup();
  }
}

describe('graceful lease hand-off between stream workers', () => {
  let graceful: Awaited<ReturnType<typeof run>>;
  let steal: Awaited<ReturnType<typeof run>>;
  let queued: Awaited<ReturnType<typeof run>>;

  beforeAll(async () => {
    graceful = await run(true, 'lho');
    steal = await run(false, 'lhs');
    queued = await run(true, 'lhq', 2);
    console.info(
      `lease hand-off: graceful: ${graceful.twice} of ${RECORDS} records handled twice, leases lost ${graceful.lost.length}, handed off ${graceful.handedOff.length}; ` +
        `KCL 2.x steal: ${steal.twice} handled twice, leases lost ${steal.lost.length}; ` +
        `work behind 2 slots: ${queued.handedBack.length} records handed back at the hand-offs, ${queued.twice} handled twice, leases lost ${queued.lost.length}`,
    );
  }, 300_000);

  afterAll(() => undefined);

  it('the joining worker gets half of the shards by hand-off: none lost, none handled twice, balanced', () => {
    expect(graceful.handedOff).toHaveLength(2);
    expect(graceful.lost).toEqual([]);
    expect(graceful.twice).toBe(0);
    expect(graceful.shards.A).toHaveLength(2);
    expect(graceful.shards.B).toHaveLength(2);
    expect(graceful.balance).toMatchObject({ balanced: true, shards: 4, workers: 2, held: { A: 2, B: 2 } });
  });

  it('records still waiting to begin their work are handed back at once: the next owner runs them, none twice, none lost', () => {
    expect(queued.handedOff).toHaveLength(2);
    expect(queued.lost).toEqual([]);
    // 40 records in flight against 2 slots: most of those on a passed shard had not begun.
    expect(queued.handedBack.length).toBeGreaterThan(0);
    expect(queued.twice).toBe(0);
    expect(queued.balance).toMatchObject({ balanced: true, shards: 4, workers: 2, held: { A: 2, B: 2 } });
  });

  it('with KCL 2.x steals the old holder loses the leases instead (for comparison)', () => {
    expect(steal.lost.length).toBeGreaterThan(0);
    expect(steal.handedOff).toEqual([]);
  });
});
