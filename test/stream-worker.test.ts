/**
 * The stream Worker replaces a shard consumer whose read loop died while the lease is still held,
 * as the KCL retries a failed shard task: Kinesis refuses the first GetShardIterator calls of
 * every shard (a fault injected in the real client's middleware stack, on a real kinesalite
 * connection), and every record put on the stream is still handled.
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
});
