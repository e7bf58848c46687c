import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generatePdf, startFakeGemini, startPipeline, type FakeGemini, type Pipeline, type ServiceProcess } from '@docorch/testkit';
import { StatusTable, type AwsClients, type Config } from '@docorch/core';
import { enableLeaseStream, pipelineClients, readLeaseWrites, scanLeases, startWorkerProcess, submitPdf, waitFor, waitForTerminal } from './helpers.js';

describe('probe', () => {
  let pipeline: Pipeline;
  const fakes: FakeGemini[] = [];
  const workers: ServiceProcess[] = [];
  let config: Config; let aws: AwsClients;
  beforeAll(async () => {
    for (let i = 0; i < 4; i++) fakes.push(await startFakeGemini({ latencyMs: i === 3 ? 0 : 400 }));
    pipeline = await startPipeline({ workers: 0, shards: 4, prefix: 'probe', env: { ANALYZER: 'gemini', GEMINI_BASE_URL: fakes[3]!.url, GEMINI_API_KEY: 'test', LOG_LEVEL: 'info', LEASE_FAILOVER_MS: '3000', CHUNK_CLAIM_TIMEOUT_MS: process.env.CLAIM ?? '3000', ANALYSIS_CONCURRENCY: '2' } });
    ({ config, aws } = pipelineClients(pipeline));
    await enableLeaseStream(aws, config.LEASES_TABLE);
    workers.push(...(await Promise.all([0, 1, 2].map((i) => startWorkerProcess(pipeline, `w${i + 1}`, { GEMINI_BASE_URL: fakes[i]!.url })))));
    await waitFor('balanced', async () => { const rows = await scanLeases(aws, config.LEASES_TABLE); return rows.length === 4 && new Set(rows.map((r) => r.leaseOwner)).size === 3 && rows.every((r) => r.leaseOwner) ? 1 : undefined; }, 30000, 200);
  });
  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop(5000)));
    await pipeline?.stop();
    await Promise.all(fakes.map((f) => f.close()));
  });
  it('works', { timeout: 120_000 }, async () => {
    const t0 = Date.now();
    const pdf = await generatePdf({ pages: 300, seed: 7 });
    const id = await submitPdf(pipeline, pdf.bytes, { pagesPerChunk: '5' });
    const final = await waitForTerminal(pipeline, id, Number(process.env.WAIT ?? 40000)).catch((e) => ({ status: String(e) }));
    console.log('done ms', Date.now() - t0, final.status);
    const writes = await readLeaseWrites(aws, config, config.LEASES_TABLE);
    for (const w of writes) if (w.old?.leaseOwner !== w.new?.leaseOwner) console.log('OWNER', w.leaseKey, w.old?.leaseOwner, '->', w.new?.leaseOwner, w.sequenceNumber);
    const rows = await new StatusTable(aws.doc, config.STATUS_TABLE).listChunks(pipeline.tenantId, id);
    console.log(JSON.stringify(rows.filter((r) => r.status !== 'succeeded')));
    {
      const { DescribeTableCommand } = await import('@aws-sdk/client-dynamodb');
      const { DynamoDBStreamsClient, DescribeStreamCommand, GetShardIteratorCommand, GetRecordsCommand } = await import('@aws-sdk/client-dynamodb-streams');
      const { unmarshall } = await import('@aws-sdk/util-dynamodb');
      const arn = (await aws.dynamodb.send(new DescribeTableCommand({ TableName: config.STATUS_TABLE }))).Table!.LatestStreamArn!;
      const st = new DynamoDBStreamsClient({ region: config.AWS_REGION, endpoint: config.DYNAMODB_ENDPOINT });
      const shards = (await st.send(new DescribeStreamCommand({ StreamArn: arn }))).StreamDescription!.Shards!;
      for (const sh of shards) {
        let it = (await st.send(new GetShardIteratorCommand({ StreamArn: arn, ShardId: sh.ShardId!, ShardIteratorType: 'TRIM_HORIZON' }))).ShardIterator;
        for (let e = 0; it && e < 2;) {
          const out = await st.send(new GetRecordsCommand({ ShardIterator: it }));
          if (!out.Records?.length) e++;
          for (const r of out.Records ?? []) {
            const n = r.dynamodb?.NewImage ? unmarshall(r.dynamodb.NewImage as any) : undefined;
            if (n && (n.sk === 'CHUNK#000000' || n.sk === 'CHUNK#000001' || n.sk === 'JOB')) console.log('ROW', n.sk, n.status, n.claimOwner, n.claimCounter, n.attempt, n.updatedAt, n.chunksSucceeded);
          }
          it = out.NextShardIterator;
        }
      }
      const { KinesisClient, ListShardsCommand, GetShardIteratorCommand: KIt, GetRecordsCommand: KGet } = await import('@aws-sdk/client-kinesis');
      const k = aws.kinesis;
      const ks = (await k.send(new ListShardsCommand({ StreamName: config.STREAM_NAME }))).Shards!;
      const seen = new Map<string, number>();
      for (const sh of ks) {
        let it = (await k.send(new KIt({ StreamName: config.STREAM_NAME, ShardId: sh.ShardId!, ShardIteratorType: 'TRIM_HORIZON' }))).ShardIterator;
        for (let e = 0; it && e < 2;) {
          const out = await k.send(new KGet({ ShardIterator: it }));
          if (!out.Records?.length) e++;
          for (const r of out.Records ?? []) { const ev = JSON.parse(Buffer.from(r.Data!).toString()); const key = ev.type + ':' + (ev.payload.chunkIndex ?? '') + ':' + ev.payload.attempt; seen.set(key, (seen.get(key) ?? 0) + 1); }
          it = out.NextShardIterator;
        }
      }
      console.log('KINESIS', JSON.stringify([...seen].filter(([, n]) => n > 1)), seen.size);
    }
    workers.forEach((w, i) => console.log(`w${i + 1}`, w.output.filter((l) => !l.includes('"level":30') || /lease|shard|stopped|taken/.test(l)).slice(-80).join('\n')));
  });
});
