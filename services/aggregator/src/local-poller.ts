/**
 * Local stand-in for Lambda's DynamoDB Streams event source mapping: reads the status table's
 * stream (DynamoDB Local) and invokes the same handler with the same event shape. Like the
 * mapping it retries a batch from its first reported failure with backoff, and after
 * `maxRetries` sends the record to the dead-letter store (the mapping's on-failure destination)
 * so one poison record cannot block a shard. Positions are checkpointed in the lease table, so a
 * restart resumes where it stopped.
 */
import {
  DescribeStreamCommand,
  DynamoDBStreamsClient,
  GetRecordsCommand,
  GetShardIteratorCommand,
  type Shard,
  type _Record as StreamRecord,
} from '@aws-sdk/client-dynamodb-streams';
import { DescribeTableCommand } from '@aws-sdk/client-dynamodb';
import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import type { DynamoDBRecord, DynamoDBStreamEvent } from 'aws-lambda';
import { sleep, type PipelineContext } from '@docorch/core';
import type { StreamHandler } from './handler.js';

/** Options of {@link StreamPoller}. */
export interface StreamPollerOptions {
  /** Records per invocation (the mapping's BatchSize). @defaultValue 100 */
  batchSize?: number;
  /** Pause between reads of an idle shard. @defaultValue 250 */
  idleMs?: number;
  /** Retries of a failing record before it is dead-lettered. @defaultValue 10 */
  maxRetries?: number;
  /** How often the shard list is refreshed. @defaultValue 10000 */
  shardRefreshMs?: number;
}

/** Polls every shard of the status table's stream. */
export class StreamPoller {
  private readonly streams: DynamoDBStreamsClient;
  private readonly abort = new AbortController();
  private readonly running = new Map<string, Promise<void>>();
  private readonly finished = new Set<string>();
  private loop: Promise<void> | undefined;

  constructor(
    private readonly ctx: PipelineContext,
    private readonly handler: StreamHandler,
    private readonly options: StreamPollerOptions = {},
  ) {
    const endpoint = ctx.config.DYNAMODB_STREAMS_ENDPOINT ?? ctx.config.DYNAMODB_ENDPOINT;
    this.streams = new DynamoDBStreamsClient({ region: ctx.config.AWS_REGION, ...(endpoint ? { endpoint } : {}) });
  }

  start(): void {
    this.loop = this.run().catch((err: unknown) => {
      if (!this.abort.signal.aborted) this.ctx.logger.error({ err }, 'stream poller failed');
    });
  }

  async stop(): Promise<void> {
    this.abort.abort(new Error('poller stopped'));
    await this.loop;
    await Promise.allSettled([...this.running.values()]);
    this.streams.destroy();
  }

  private async run(): Promise<void> {
    const { signal } = this.abort;
    const table = await this.ctx.aws.dynamodb.send(new DescribeTableCommand({ TableName: this.ctx.config.STATUS_TABLE }));
    const streamArn = table.Table?.LatestStreamArn;
    if (!streamArn) throw new Error(`${this.ctx.config.STATUS_TABLE} has no stream`);
    while (!signal.aborted) {
      const shards = await this.listShards(streamArn);
      const ids = new Set(shards.map((s) => s.ShardId));
      for (const shard of shards) {
        const id = shard.ShardId as string;
        if (this.running.has(id) || this.finished.has(id)) continue;
        // A child waits for its parent, as the event source mapping keeps per-item order.
        const parent = shard.ParentShardId;
        if (parent && ids.has(parent) && !this.finished.has(parent)) continue;
        const task = this.pollShardUntilDone(streamArn, id).finally(() => this.running.delete(id));
        this.running.set(id, task);
      }
      await sleep(this.options.shardRefreshMs ?? 10_000, signal).catch(() => undefined);
    }
  }

  private async listShards(streamArn: string): Promise<Shard[]> {
    const shards: Shard[] = [];
    let start: string | undefined;
    do {
      const out = await this.streams.send(new DescribeStreamCommand({ StreamArn: streamArn, ExclusiveStartShardId: start }));
      shards.push(...(out.StreamDescription?.Shards ?? []));
      start = out.StreamDescription?.LastEvaluatedShardId;
    } while (start);
    return shards;
  }

  private checkpointKey(shardId: string): string {
    return `ddbstream#${this.ctx.config.STATUS_TABLE}#${shardId}`;
  }

  private async readCheckpoint(shardId: string): Promise<string | undefined> {
    const out = await this.ctx.aws.doc.send(
      new GetCommand({ TableName: this.ctx.config.LEASES_TABLE, Key: { leaseKey: this.checkpointKey(shardId) }, ConsistentRead: true }),
    );
    return typeof out.Item?.checkpoint === 'string' ? out.Item.checkpoint : undefined;
  }

  private async writeCheckpoint(shardId: string, sequenceNumber: string): Promise<void> {
    await this.ctx.aws.doc.send(
      new PutCommand({
        TableName: this.ctx.config.LEASES_TABLE,
        Item: { leaseKey: this.checkpointKey(shardId), checkpoint: sequenceNumber, updatedAt: new Date().toISOString() },
      }),
    );
  }

  /** Polls a shard, restarting from its checkpoint after any error (never takes the process down). */
  private async pollShardUntilDone(streamArn: string, shardId: string): Promise<void> {
    const log = this.ctx.logger.child({ component: 'stream-poller', shardId });
    for (let attempt = 0; !this.abort.signal.aborted; attempt++) {
      try {
        await this.pollShard(streamArn, shardId, log);
        return;
      } catch (err) {
        if (this.abort.signal.aborted) return;
        log.warn({ err }, 'stream shard poll failed; resuming from the checkpoint');
        await sleep(Math.min(10_000, 250 * 2 ** Math.min(attempt, 6)), this.abort.signal).catch(() => undefined);
      }
    }
  }

  private async iterator(streamArn: string, shardId: string): Promise<string | undefined> {
    const checkpoint = await this.readCheckpoint(shardId);
    const get = (type: 'AFTER_SEQUENCE_NUMBER' | 'TRIM_HORIZON') =>
      this.streams.send(
        new GetShardIteratorCommand({
          StreamArn: streamArn,
          ShardId: shardId,
          ShardIteratorType: type,
          ...(type === 'AFTER_SEQUENCE_NUMBER' ? { SequenceNumber: checkpoint } : {}),
        }),
      );
    try {
      return (await get(checkpoint ? 'AFTER_SEQUENCE_NUMBER' : 'TRIM_HORIZON')).ShardIterator;
    } catch (err) {
      // The checkpointed record was trimmed (24 h retention): start from the oldest one left.
      if (checkpoint && err instanceof Error && err.name === 'TrimmedDataAccessException') return (await get('TRIM_HORIZON')).ShardIterator;
      throw err;
    }
  }

  private async pollShard(streamArn: string, shardId: string, log: PipelineContext['logger']): Promise<void> {
    const { signal } = this.abort;
    let iterator = await this.iterator(streamArn, shardId);
    let pending: StreamRecord[] = [];
    let failures = 0;
    while (!signal.aborted && (iterator || pending.length > 0)) {
      if (pending.length === 0 && iterator) {
        let out;
        try {
          out = await this.streams.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: this.options.batchSize ?? 100 }));
        } catch (err) {
          // Expired or trimmed iterator: take a fresh one from the checkpoint.
          if (err instanceof Error && (err.name === 'ExpiredIteratorException' || err.name === 'TrimmedDataAccessException')) {
            log.debug({ err: err.name }, 'iterator invalid; renewing it');
            await sleep(this.options.idleMs ?? 250, signal).catch(() => undefined);
            iterator = await this.iterator(streamArn, shardId);
            continue;
          }
          throw err;
        }
        iterator = out.NextShardIterator;
        pending = out.Records ?? [];
        // DynamoDB Streams has no MillisBehindLatest: the age of the newest record read stands for it (0 when idle).
        const newest = pending.at(-1)?.dynamodb?.ApproximateCreationDateTime;
        this.ctx.metrics.iteratorAgeMs.set({ stream: 'status', shard: shardId }, newest ? Math.max(0, Date.now() - newest.getTime()) : 0);
        if (pending.length === 0) {
          await sleep(this.options.idleMs ?? 250, signal).catch(() => undefined);
          continue;
        }
      }
      const batch = pending.slice(0, this.options.batchSize ?? 100);
      const event: DynamoDBStreamEvent = { Records: batch.map(toLambdaRecord) };
      let firstFailed: number;
      try {
        const result = await this.handler(event, { awsRequestId: 'local-poller' });
        const failed = new Set(result.batchItemFailures.map((f) => f.itemIdentifier));
        firstFailed = batch.findIndex((r) => failed.has(r.dynamodb?.SequenceNumber ?? ''));
      } catch (err) {
        log.error({ err }, 'handler threw; retrying the whole batch');
        firstFailed = 0;
      }
      const doneUpTo = firstFailed === -1 ? batch.length : firstFailed;
      if (doneUpTo > 0) {
        await this.writeCheckpoint(shardId, batch[doneUpTo - 1]?.dynamodb?.SequenceNumber as string);
        pending = pending.slice(doneUpTo);
        failures = 0;
      }
      if (firstFailed !== -1) {
        failures++;
        if (failures > (this.options.maxRetries ?? 10)) {
          const poison = pending[0] as StreamRecord;
          log.error({ sequenceNumber: poison.dynamodb?.SequenceNumber }, 'record failed too often; dead-lettering it');
          this.ctx.metrics.deadLetters.inc({ source: 'aggregator', code: 'AGGREGATION_FAILED' });
          await this.ctx.deadLetters.put({
            id: poison.dynamodb?.SequenceNumber ?? poison.eventID ?? 'unknown',
            code: 'AGGREGATION_FAILED',
            message: 'stream record failed repeatedly in the aggregator',
            record: toLambdaRecord(poison),
            shardId,
          });
          await this.writeCheckpoint(shardId, poison.dynamodb?.SequenceNumber as string);
          pending = pending.slice(1);
          failures = 0;
        } else {
          await sleep(Math.min(30_000, 200 * 2 ** failures), signal).catch(() => undefined);
        }
      }
    }
    if (!signal.aborted) this.finished.add(shardId);
  }
}

/** SDK stream record -> the Lambda event record shape. */
function toLambdaRecord(r: StreamRecord): DynamoDBRecord {
  return {
    eventID: r.eventID,
    eventName: r.eventName as DynamoDBRecord['eventName'],
    eventVersion: r.eventVersion,
    eventSource: 'aws:dynamodb',
    awsRegion: r.awsRegion,
    dynamodb: r.dynamodb as DynamoDBRecord['dynamodb'],
  };
}
