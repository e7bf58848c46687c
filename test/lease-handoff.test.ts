/**
 * Graceful lease hand-off in the stream Worker (KCL 3.x; docs/lease-lifecycle.md), on kinesalite
 * and DynamoDB Local: a second worker joins while the first is consuming every shard of a busy
 * stream. The first passes half of the shards on after draining and checkpointing: no record is
 * handled twice, no lease is lost, every record is handled, and both workers report the fleet
 * balanced. The same run with KCL 2.x steals (gracefulHandoff: false) is printed for comparison.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAwsClients, createLogger, loadConfig, Queue, Worker, type AwsClients, type Config } from '@docorch/core';
import { createIsolatedResources, type IsolatedResources } from '@docorch/testkit';
import { waitFor } from './helpers.js';

const RECORDS = 400;
const HANDLER_MS = 100;

async function run(graceful: boolean, prefix: string) {
  const resources: IsolatedResources = await createIsolatedResources({ prefix, shardCount: 4 });
  const config: Config = loadConfig({ ...process.env, ...resources.names, LOG_LEVEL: 'silent' });
  const aws: AwsClients = createAwsClients(config);
  const logger = createLogger({ service: 'lease-handoff-test', level: 'silent' });
  const handled = new Map<number, string[]>();
  const lost: string[] = [];
  const handedOff: string[] = [];
  const make = (id: string) => {
    const w = new Worker(
      config.STREAM_NAME,
      {
        'chunk.ready': async (event, info) => {
          // As a chunk handler: an aborted record is left for the shard's next owner.
          await sleep(HANDLER_MS, undefined, { signal: info.signal });
          const by = handled.get(event.payload.chunkIndex) ?? [];
          handled.set(event.payload.chunkIndex, [...by, id]);
        },
      },
      {
        kinesis: aws.kinesis,
        dynamo: aws.doc,
        leaseTable: config.LEASES_TABLE,
        logger,
        workerId: id,
        concurrency: 8,
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
    return { twice, lost, handedOff, balance, shards: { A: a.shards, B: b.shards } };
  } finally {
    await Promise.all([a.close(1_000), b.close(1_000)]);
    aws.destroy();
    await resources.cleanup();
  }
}

describe('graceful lease hand-off between stream workers', () => {
  let graceful: Awaited<ReturnType<typeof run>>;
  let steal: Awaited<ReturnType<typeof run>>;

  beforeAll(async () => {
    graceful = await run(true, 'lho');
    steal = await run(false, 'lhs');
    console.info(
      `lease hand-off: graceful: ${graceful.twice} of ${RECORDS} records handled twice, leases lost ${graceful.lost.length}, handed off ${graceful.handedOff.length}; ` +
        `KCL 2.x steal: ${steal.twice} handled twice, leases lost ${steal.lost.length}`,
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

  it('with KCL 2.x steals the old holder loses the leases instead (for comparison)', () => {
    expect(steal.lost.length).toBeGreaterThan(0);
    expect(steal.handedOff).toEqual([]);
  });
});
