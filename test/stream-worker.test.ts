/**
 * The stream Worker replaces a shard consumer whose read loop died while the lease is still held,
 * as the KCL retries a failed shard task: Kinesis refuses the first GetShardIterator calls of
 * every shard (a fault injected in the real client's middleware stack, on a real kinesalite
 * connection), and every record put on the stream is still handled. The replacement starts from
 * the checkpoint of what the failed consumer finished (written when it stops), not from the lease
 * as it was before: no record it handled is handled again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAwsClients, createLogger, loadConfig, Queue, Worker, type AwsClients, type Config } from '@docorch/core';
import { createIsolatedResources, type IsolatedResources } from '@docorch/testkit';
import { waitFor } from './helpers.js';

describe('stream worker: a failed shard consumer is restarted', () => {
  let resources: IsolatedResources;
  let config: Config;
  let aws: AwsClients;

  beforeAll(async () => {
    resources = await createIsolatedResources({ prefix: 'swr', shardCount: 2 });
    config = loadConfig({ ...process.env, ...resources.names, LOG_LEVEL: 'silent' });
    aws = createAwsClients(config);
  });

  afterAll(async () => {
    aws?.destroy();
    await resources?.cleanup();
  });

  it('handles every record although the first iterator requests of each shard failed', async () => {
    // A client of its own (thrown at the initialize step: before the SDK's retries).
    const faulty = createAwsClients(config);
    const kinesis = faulty.kinesis;
    let refused = 0;
    kinesis.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === 'GetShardIteratorCommand' && refused < 4) {
          refused++;
          throw Object.assign(new Error('injected: stream unreachable'), { name: 'ServiceUnavailable' });
        }
        return next(args);
      },
      { step: 'initialize', name: 'injectIteratorFailures' },
    );
    const seen = new Set<number>();
    const logger = createLogger({ service: 'stream-worker-test', level: 'silent' });
    const worker = new Worker(
      config.STREAM_NAME,
      {
        'chunk.ready': async (event) => {
          seen.add(event.payload.chunkIndex);
        },
      },
      {
        kinesis,
        dynamo: aws.doc,
        leaseTable: config.LEASES_TABLE,
        logger,
        failoverTimeMs: 3_000,
        idleReadMs: 100,
        onDeadLetter: async () => undefined,
      },
    );
    const queue = new Queue(aws.kinesis, config.STREAM_NAME);
    const n = 40;
    await queue.addBulk(
      Array.from({ length: n }, (_, i) => ({
        type: 'chunk.ready' as const,
        payload: { tenantId: 't', documentId: 'd', chunkIndex: i + 1, attempt: 1, analyses: ['summary' as const] },
        partitionKey: `d#${i + 1}`,
      })),
      { spread: true },
    );
    await worker.run();
    try {
      await waitFor('every record handled', () => (seen.size === n ? true : undefined), 60_000);
      expect(refused).toBe(4);
      expect(seen.size).toBe(n);
    } finally {
      await worker.close(1_000);
      faulty.destroy();
    }
  });

  it('starts the replacement after what the failed consumer finished: nothing it handled is handled again', async () => {
    const isolated = await createIsolatedResources({ prefix: 'swr1', shardCount: 1 });
    const cfg = loadConfig({ ...process.env, ...isolated.names, LOG_LEVEL: 'silent' });
    const clients = createAwsClients(cfg);
    const faulty = createAwsClients(cfg);
    // The first read returns the records; the second finds its iterator expired and the fresh
    // iterator is refused once: the read loop dies with every record handled and, the checkpoint
    // interval being long, none of them checkpointed yet.
    let reads = 0;
    let iterators = 0;
    faulty.kinesis.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === 'GetRecordsCommand' && ++reads === 2) {
          throw Object.assign(new Error('injected: iterator expired'), { name: 'ExpiredIteratorException' });
        }
        if (context.commandName === 'GetShardIteratorCommand' && ++iterators === 2) {
          throw Object.assign(new Error('injected: stream unreachable'), { name: 'ServiceUnavailable' });
        }
        return next(args);
      },
      { step: 'initialize', name: 'injectReadFailure' },
    );
    const handled = new Map<number, number>();
    const worker = new Worker(
      cfg.STREAM_NAME,
      {
        'chunk.ready': async (event) => {
          // Finishing one after the other: the first is checkpointed at once, the rest would only
          // be at the next interval (a minute), so at the failure most are done but not checkpointed.
          await new Promise((r) => setTimeout(r, event.payload.chunkIndex * 15));
          handled.set(event.payload.chunkIndex, (handled.get(event.payload.chunkIndex) ?? 0) + 1);
        },
      },
      {
        kinesis: faulty.kinesis,
        dynamo: clients.doc,
        leaseTable: cfg.LEASES_TABLE,
        logger: createLogger({ service: 'stream-worker-test', level: 'silent' }),
        failoverTimeMs: 3_000,
        idleReadMs: 100,
        checkpointIntervalMs: 60_000,
        onDeadLetter: async () => undefined,
      },
    );
    const queue = new Queue(clients.kinesis, cfg.STREAM_NAME);
    const put = (from: number, n: number) =>
      queue.addBulk(
        Array.from({ length: n }, (_, i) => ({
          type: 'chunk.ready' as const,
          payload: { tenantId: 't', documentId: 'd', chunkIndex: from + i, attempt: 1, analyses: ['summary' as const] },
          partitionKey: 'd',
        })),
      );
    await put(1, 20);
    await worker.run();
    try {
      await waitFor('the first 20 records handled', () => (handled.size === 20 ? true : undefined), 30_000);
      await waitFor('the consumer replaced', () => (iterators >= 3 ? true : undefined), 30_000);
      await put(21, 20);
      await waitFor('the next 20 records handled', () => (handled.size === 40 ? true : undefined), 30_000);
      expect(reads).toBeGreaterThanOrEqual(2);
      expect([...handled.entries()].filter(([, n]) => n > 1)).toEqual([]);
    } finally {
      await worker.close(1_000);
      faulty.destroy();
      clients.destroy();
      await isolated.cleanup();
    }
  });
});
