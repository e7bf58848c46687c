import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ListShardsCommand, GetShardIteratorCommand, GetRecordsCommand } from '@aws-sdk/client-kinesis';
import { StatusTable } from '@docorch/core';
import { generatePdf } from '@docorch/testkit';
import { readTableWrites, startFleet, submitPdf, waitForTerminal, type Fleet } from './helpers.js';

describe('probe3', () => {
  let fleet: Fleet;
  beforeAll(async () => {
    fleet = await startFleet({ prefix: 'probe3', workers: 3, shards: 4, latencyMs: 400, env: { LOG_LEVEL: 'info', LEASE_FAILOVER_MS: '3000', CHUNK_CLAIM_TIMEOUT_MS: '3000', ANALYSIS_CONCURRENCY: '2', WORKER_GRACE_MS: '2000' } });
  });
  afterAll(async () => { await fleet?.stop(); });
  it('loop', { timeout: 600_000 }, async () => {
    const pdf = await generatePdf({ pages: 300, seed: 7 });
    for (let round = 0; round < Number(process.env.ROUNDS ?? 6); round++) {
      const t0 = Date.now();
      const id = await submitPdf(fleet.pipeline, pdf.bytes, { pagesPerChunk: '5' });
      if (process.env.FREEZE_MS) {
        const { execFileSync } = await import('node:child_process');
        const port = new URL(process.env.DYNAMODB_ENDPOINT!).port;
        const target = process.env.FREEZE_WHAT === 'host' ? 'emulator-host' : `-port ${port}`;
        const pids = execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' }).split('\n').filter((l) => l.includes(target) && !l.includes('ps -eo')).map((l) => Number(l.trim().split(/\s+/)[0]));
        const { getStatus } = await import('./helpers.js');
        for (;;) { const v = await getStatus(fleet.pipeline, id); if (v.progress.chunksSucceeded >= 8 + round * 6) break; await new Promise((r) => setTimeout(r, 50)); }
        for (const pid of pids) process.kill(pid, 'SIGSTOP');
        console.log('FROZE', pids, process.env.FREEZE_MS);
        await new Promise((r) => setTimeout(r, Number(process.env.FREEZE_MS)));
        for (const pid of pids) process.kill(pid, 'SIGCONT');
      }
      const final = await waitForTerminal(fleet.pipeline, id, 60_000).catch((e) => ({ status: 'STUCK', progress: String(e) }));
      const notCounted = fleet.workers.flatMap((w) => w.output.filter((l) => l.includes(id) && /not counted|taken over|claim lost|handler failed|dead-lettered/.test(l)));
      console.log('ROUND', round, final.status, Date.now() - t0, 'notCounted', notCounted.length);
      if (final.status !== 'completed' || notCounted.length > 0) {
        const rows = await new StatusTable(fleet.aws.doc, fleet.config.STATUS_TABLE).listChunks(fleet.pipeline.tenantId, id);
        const bad = rows.filter((r) => r.status !== 'succeeded');
        console.log('BAD', JSON.stringify(bad));
        const idx = new Set([...bad.map((r) => r.index), ...notCounted.map((l) => JSON.parse(l).chunkIndex as number)]);
        const writes = await readTableWrites(fleet.aws, fleet.config, fleet.config.STATUS_TABLE);
        for (const w of writes) {
          const n = w.new ?? w.old;
          if (n?.pk !== `${fleet.pipeline.tenantId}#${id}`) continue;
          const i = n.sk === 'JOB' ? -1 : Number(String(n.sk).slice(6));
          if (n.sk === 'JOB' || idx.has(i)) console.log('W', w.raw.dynamodb?.ApproximateCreationDateTime?.toISOString?.() ?? '', n.sk, w.old?.status, '->', w.new?.status, 'owner', w.old?.claimOwner, '->', w.new?.claimOwner, 'ctr', w.old?.claimCounter, '->', w.new?.claimCounter, 'att', w.new?.attempt, 'js', w.new?.chunksSucceeded);
        }
        const k = fleet.aws.kinesis;
        const shards = (await k.send(new ListShardsCommand({ StreamName: fleet.config.STREAM_NAME }))).Shards!;
        for (const sh of shards) {
          let it = (await k.send(new GetShardIteratorCommand({ StreamName: fleet.config.STREAM_NAME, ShardId: sh.ShardId!, ShardIteratorType: 'TRIM_HORIZON' }))).ShardIterator;
          for (let e = 0; it && e < 2;) {
            const out = await k.send(new GetRecordsCommand({ ShardIterator: it }));
            if (!out.Records?.length) e++;
            for (const r of out.Records ?? []) { const ev = JSON.parse(Buffer.from(r.Data!).toString()); if (ev.payload.documentId === id && (ev.type !== 'chunk.ready' || idx.has(ev.payload.chunkIndex))) console.log('K', sh.ShardId, r.SequenceNumber, ev.type, ev.payload.chunkIndex, ev.payload.attempt); }
            it = out.NextShardIterator;
          }
        }
        for (const [wi, w] of fleet.workers.entries()) for (const l of w.output) { if (!l.includes('"level"')) continue; const j = JSON.parse(l); if ((j.documentId === id && idx.has(j.chunkIndex)) || /lease|stole|took|split|dead|handler/.test(j.msg ?? '')) console.log(`w${wi + 1}`, j.time, j.msg, j.chunkIndex ?? '', j.shardId ?? j.leaseKey ?? '', JSON.stringify(j.taken ?? ''), j.err?.message ?? ''); }
        if (final.status !== 'completed') {
          console.log('LEASES', JSON.stringify(await (await import('./helpers.js')).scanLeases(fleet.aws, fleet.config.LEASES_TABLE)));
          for (const w of fleet.workers) console.log('HEALTH', JSON.stringify(await (await import('./helpers.js')).workerHealth(w)));
          break;
        }
      }
      for (const w of fleet.workers) w.output.length = 0;
    }
  });
});
