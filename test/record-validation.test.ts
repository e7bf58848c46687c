/**
 * Record validation as the KCL's own canary does it (RecordValidatorQueue): N records are put
 * across the shards while 3 stream Worker processes consume them and one of them is restarted;
 * per shard, the first deliveries come in increasing sequence-number order, duplicates are
 * allowed, and the number of distinct records delivered equals N.
 *
 * The workers are test/fixtures/canary-worker.ts: the core `Worker` with a handler that prints
 * each delivery (worker, shard, sequence number, payload id, a timestamp comparable across
 * processes). Restart is done two ways: a graceful one (SIGTERM: drain, checkpoint, release the
 * leases, then a new process with the same worker id) and an abrupt one (SIGKILL: its leases
 * expire and move to the others; the new process with the same id later takes its share back).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createAwsClients, loadConfig, Queue, type AwsClients } from '@docorch/core';
import { createIsolatedResources, repoRoot, type IsolatedResources } from '@docorch/testkit';
import { scanLeases, waitFor } from './helpers.js';

const N = 2_000;
const BATCHES = 4;
const SHARDS = 4;
const FAILOVER_MS = 3_000;

/** One delivery, as a canary worker printed it. */
interface Delivery {
  t: number;
  w: string;
  pid: number;
  shard: string;
  seq: string;
  n: number;
  /** Order of the line within its process's output. */
  line: number;
}

interface Canary {
  id: string;
  child: ChildProcess;
  deliveries: Delivery[];
  other: string[];
  ready: Promise<void>;
  exited: Promise<void>;
}

function startCanary(id: string, env: Record<string, string>): Canary {
  const child = spawn(process.execPath, ['--conditions=docorch-source', '--import', 'tsx', path.join(repoRoot, 'test/fixtures/canary-worker.ts')], {
    cwd: repoRoot,
    env: { ...process.env, ...env, WORKER_ID: id },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const deliveries: Delivery[] = [];
  const other: string[] = [];
  let markReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => (markReady = resolve));
  let buffered = '';
  let lineNo = 0;
  child.stdout?.on('data', (buf: Buffer) => {
    buffered += buf.toString('utf8');
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    for (const line of lines) {
      if (!line) continue;
      const parsed = JSON.parse(line) as Partial<Delivery> & { ready?: string };
      if (parsed.ready) markReady();
      else if (parsed.seq && parsed.shard && typeof parsed.n === 'number' && !('dead' in parsed)) deliveries.push({ ...(parsed as Delivery), line: lineNo++ });
      else other.push(line);
    }
  });
  child.stderr?.on('data', (buf: Buffer) => other.push(buf.toString('utf8')));
  const exited = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      other.push(`exited with ${code ?? signal}`);
      resolve();
    }),
  );
  return { id, child, deliveries, other, ready, exited };
}

describe('record validation (the KCL canary) with a restarted worker', () => {
  let resources: IsolatedResources | undefined;
  let aws: AwsClients | undefined;
  const canaries: Canary[] = [];

  afterEach(async () => {
    for (const c of canaries) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL');
    await Promise.all(canaries.map((c) => c.exited));
    canaries.length = 0;
    aws?.destroy();
    await resources?.cleanup();
  });

  for (const mode of ['graceful', 'kill'] as const) {
    it(`delivers every record, in order per shard (restart: ${mode})`, { timeout: 120_000 }, async () => {
      resources = await createIsolatedResources({ prefix: `canary-${mode}`, shardCount: SHARDS });
      const env = {
        ...resources.names,
        LOG_LEVEL: process.env.CANARY_LOG_LEVEL ?? 'warn',
        LEASE_FAILOVER_MS: String(FAILOVER_MS),
        STREAM_IDLE_READ_MS: '50',
      };
      const config = loadConfig({ ...process.env, ...env });
      const clients = createAwsClients(config);
      aws = clients;
      const queue = new Queue(clients.kinesis, config.STREAM_NAME);

      for (const id of ['c1', 'c2', 'c3']) canaries.push(startCanary(id, env));
      await Promise.all(canaries.map((c) => c.ready));
      await waitFor(
        'every shard leased by the three workers',
        async () => {
          const rows = await scanLeases(clients, config.LEASES_TABLE);
          return rows.length === SHARDS && rows.every((r) => r.leaseOwner) && new Set(rows.map((r) => r.leaseOwner)).size === 3 ? true : undefined;
        },
        30_000,
        200,
      ).catch(async (err: unknown) => {
        console.error(JSON.stringify(await scanLeases(clients, config.LEASES_TABLE)));
        canaries.forEach((c) => console.error(`${c.id} (pid ${c.child.pid}):\n${c.other.slice(-20).join('\n')}`));
        throw err;
      });

      const restarted = canaries[1] as Canary;
      for (let b = 0; b < BATCHES; b++) {
        const size = N / BATCHES;
        await queue.addBulk(
          Array.from({ length: size }, (_, i) => {
            const n = b * size + i;
            return {
              type: 'chunk.ready' as const,
              // Random partition keys spread the records over every shard.
              payload: { tenantId: 'canary', documentId: 'canary', chunkIndex: n, attempt: 1, analyses: ['summary' as const] },
              partitionKey: `k${Math.random()}`,
            };
          }),
        );
        if (b === 1) {
          // Restart one worker in the middle of the run.
          await waitFor('the restarted worker to have consumed some records', () => (restarted.deliveries.length > 50 ? true : undefined), 30_000, 20);
          restarted.child.kill(mode === 'graceful' ? 'SIGTERM' : 'SIGKILL');
          await restarted.exited;
          // After a kill, stay away past the failover time, so its leases expire and move.
          await new Promise((r) => setTimeout(r, mode === 'kill' ? FAILOVER_MS + 1_500 : 200));
          const again = startCanary(restarted.id, env);
          canaries.push(again);
          await again.ready;
        } else {
          await new Promise((r) => setTimeout(r, 500));
        }
      }

      const all = () => canaries.flatMap((c) => c.deliveries);
      await waitFor('every record to be delivered', () => (new Set(all().map((d) => d.n)).size >= N ? true : undefined), 60_000, 100).catch(
        (err: unknown) => {
          canaries.forEach((c) => console.error(`${c.id} (pid ${c.child.pid}):\n${c.other.slice(-20).join('\n')}`));
          throw err;
        },
      );

      const deliveries = all();
      // Unique total equals N, and a sequence number always carries the same record.
      const byN = new Map<number, Set<string>>();
      for (const d of deliveries) byN.set(d.n, (byN.get(d.n) ?? new Set()).add(`${d.shard}/${d.seq}`));
      expect(byN.size).toBe(N);
      expect([...byN.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: N }, (_, i) => i));
      expect([...byN.values()].every((s) => s.size === 1)).toBe(true);

      // Per shard: first deliveries in strictly increasing sequence order (over every process, in time order).
      const perShard = new Map<string, Delivery[]>();
      for (const d of deliveries) perShard.set(d.shard, [...(perShard.get(d.shard) ?? []), d]);
      expect(perShard.size).toBe(SHARDS);
      const summary: Record<string, { records: number; deliveries: number; duplicates: number; consumers: string[] }> = {};
      for (const [shard, list] of perShard) {
        list.sort((a, b) => a.t - b.t || (a.pid === b.pid ? a.line - b.line : 0));
        const seen = new Set<string>();
        let last = -1n;
        const consumers: string[] = [];
        for (const d of list) {
          if (!consumers.includes(`${d.w}/${d.pid}`)) consumers.push(`${d.w}/${d.pid}`);
          if (seen.has(d.seq)) continue;
          seen.add(d.seq);
          const value = BigInt(d.seq);
          expect(value > last, `${shard}: first delivery of ${d.seq} after ${last} (by ${d.w}/${d.pid})`).toBe(true);
          last = value;
        }
        summary[shard] = { records: seen.size, deliveries: list.length, duplicates: list.length - seen.size, consumers };
      }
      const deadLetters = canaries.flatMap((c) => c.other.filter((l) => l.includes('"dead":true')));
      expect(deadLetters).toEqual([]);
      console.log(`record-validation (${mode}): ${JSON.stringify({ records: N, deliveries: deliveries.length, perShard: summary })}`);

      // Graceful stop of the survivors (checkpoint and release), then cleanup.
      for (const c of canaries) if (c.child.exitCode === null) c.child.kill('SIGTERM');
      await Promise.all(canaries.map((c) => c.exited));
    });
  }
});
