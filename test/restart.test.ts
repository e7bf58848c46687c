/**
 * Restart (issue 3): the whole local stack, the process `npm start` runs
 * (packages/testkit/src/stack/main.ts: emulators with their data on disk, API, 2 workers,
 * aggregator), is killed mid-job, every process at once (SIGKILL to its process group: no
 * drain, no checkpoint, no lease release), and started again on the same data directory. The
 * job completes with every chunk, each counted once, and no process of either run is left behind.
 *
 * The stack runs from source here (it then runs its services from source too), with a private
 * data directory and free ports; the analyzer is a fake Gemini in this process, which outlives
 * both runs.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { entryArgs, repoRoot, startFakeGemini, type FakeGemini } from '@docorch/testkit';
import { getResult, getStatus, submitGenerated, waitFor, waitForTerminal, type ApiTarget } from './helpers.js';

const PAGES = 150;
const PAGES_PER_CHUNK = 5;
const CHUNKS = PAGES / PAGES_PER_CHUNK;

/** A running stack: its process group and its output. */
interface Stack {
  child: ChildProcess;
  pgid: number;
  output: string[];
  exited: Promise<void>;
}

/** Pids of the live processes of a process group (none once the whole stack is gone). */
function processesOf(pgid: number): number[] {
  const out = execFileSync('ps', ['-eo', 'pid=,pgid=,stat='], { encoding: 'utf8' });
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter(([, group, stat]) => Number(group) === pgid && !String(stat).startsWith('Z'))
    .map(([pid]) => Number(pid));
}

/** A base port with base, base+10, base+11 and base+12 free (API, aggregator, two workers). */
async function freeBasePort(): Promise<number> {
  for (;;) {
    const base = 20_000 + Math.floor(Math.random() * 30_000);
    const probes = await Promise.all([0, 10, 11, 12].map((d) => portIsFree(base + d)));
    if (probes.every(Boolean)) return base;
  }
}

async function portIsFree(port: number): Promise<boolean> {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

function startStack(env: Record<string, string>): Stack {
  const child = spawn(process.execPath, entryArgs('packages/testkit/src/stack/main.ts', 'packages/testkit/dist/stack/main.js'), {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group: the stack and everything it starts can be killed at once.
    detached: true,
  });
  const output: string[] = [];
  const collect = (buf: Buffer) => {
    for (const line of buf.toString('utf8').split('\n')) if (line) output.push(line);
    if (output.length > 5_000) output.splice(0, output.length - 5_000);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return { child, pgid: child.pid as number, output, exited };
}

async function waitUntilUp(stack: Stack, base: number): Promise<void> {
  await waitFor(
    'the stack to serve (API, 2 workers, aggregator)',
    async () => {
      if (stack.child.exitCode !== null) throw new Error(`stack exited:\n${stack.output.slice(-40).join('\n')}`);
      const ok = await Promise.all(
        [base, base + 10, base + 11, base + 12].map((port) =>
          fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(1_000) }).then(
            (r) => r.ok,
            () => false,
          ),
        ),
      );
      return ok.every(Boolean) ? true : undefined;
    },
    90_000,
    250,
  ).catch((err: unknown) => {
    console.error(stack.output.slice(-60).join('\n'));
    throw err;
  });
}

/** Kills every process of the stack's group and waits until none is left. */
async function killGroup(stack: Stack, signal: NodeJS.Signals): Promise<void> {
  try {
    process.kill(-stack.pgid, signal);
  } catch {
    // already gone
  }
  await waitFor('every process of the stack to be gone', () => (processesOf(stack.pgid).length === 0 ? true : undefined), 30_000, 100);
}

describe('the whole local stack killed mid-job and started again', () => {
  let fake: FakeGemini;
  let dataDir: string;
  const stacks: Stack[] = [];

  beforeAll(async () => {
    fake = await startFakeGemini({ latencyMs: 1_000 });
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'docorch-restart-'));
  });

  afterAll(async () => {
    for (const stack of stacks) {
      if (processesOf(stack.pgid).length > 0) await killGroup(stack, 'SIGKILL').catch(() => undefined);
    }
    await fake?.close();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('completes the job with every chunk after a kill -9 of every process', { timeout: 240_000 }, async () => {
    const base = await freeBasePort();
    const env = {
      DOCORCH_DATA_DIR: dataDir,
      PORT: String(base),
      WORKERS: '2',
      SHARDS: '4',
      LOG_LEVEL: 'warn',
      ANALYZER: 'gemini',
      GEMINI_API_KEY: 'test',
      GEMINI_BASE_URL: fake.url,
      ANALYSIS_CONCURRENCY: '2',
      LEASE_FAILOVER_MS: '3000',
      CHUNK_CLAIM_TIMEOUT_MS: '3000',
      WORKER_GRACE_MS: '2000',
    };
    const first = startStack(env);
    stacks.push(first);
    let started = Date.now();
    await waitUntilUp(first, base);
    const firstStartMs = Date.now() - started;
    const apiKey = (await readFile(path.join(dataDir, 'dev-api-key'), 'utf8')).trim();
    const client: ApiTarget = { api: { baseUrl: `http://127.0.0.1:${base}` }, apiKey };

    const id = await submitGenerated(client, PAGES, { pagesPerChunk: String(PAGES_PER_CHUNK) });
    const before = await waitFor(
      'some chunks to succeed',
      async () => {
        const view = await getStatus(client, id);
        return view.progress.chunksSucceeded >= 4 ? view : undefined;
      },
      90_000,
      50,
    );
    expect(before.status).toBe('processing');
    // Every process at once: stack, emulator host, DynamoDB Local (Java), API, workers, aggregator.
    const groupBefore = processesOf(first.pgid).length;
    await killGroup(first, 'SIGKILL');
    const requestsAtKill = fake.log.length;
    const javaLeft = execFileSync('ps', ['-eo', 'args='], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l.includes('DynamoDBLocal') && l.includes(dataDir));
    expect(javaLeft).toEqual([]);

    started = Date.now();
    const second = startStack(env);
    stacks.push(second);
    await waitUntilUp(second, base);
    const secondStartMs = Date.now() - started;
    const final = await waitForTerminal(client, id, 120_000).catch((err: unknown) => {
      console.error(second.output.slice(-80).join('\n'));
      throw err;
    });
    expect(final.status).toBe('completed');
    expect(final.progress).toMatchObject({ chunksTotal: CHUNKS, chunksSucceeded: CHUNKS, chunksFailed: 0 });
    const result = await getResult(client, id);
    expect(result.pages).toEqual({ total: PAGES, analysed: PAGES, selection: 'all' });
    expect(result.failedPages).toEqual([]);
    const chunks = result.chunks as Array<{ index: number; pages: [number, number]; status: string }>;
    expect(chunks.map((c) => c.index)).toEqual(Array.from({ length: CHUNKS }, (_, i) => i));
    expect(chunks.every((c) => c.status === 'succeeded')).toBe(true);
    expect(chunks[0]?.pages[0]).toBe(1);
    expect(chunks[CHUNKS - 1]?.pages[1]).toBe(PAGES);
    for (let i = 1; i < CHUNKS; i++) expect(chunks[i]?.pages[0]).toBe((chunks[i - 1]?.pages[1] as number) + 1);

    // A graceful stop of the second run (SIGTERM to the stack) leaves nothing behind either.
    process.kill(second.pgid, 'SIGTERM');
    await Promise.race([second.exited, new Promise((r) => setTimeout(r, 60_000))]);
    await waitFor('the second stack to be gone', () => (processesOf(second.pgid).length === 0 ? true : undefined), 30_000, 100);

    console.log(
      `restart: ${JSON.stringify({
        chunksSucceededAtKill: before.progress.chunksSucceeded,
        processesKilled: groupBefore,
        chunkRequestsBeforeKill: requestsAtKill,
        chunkRequestsTotal: fake.log.filter((r) => r.pages.length > 0).length,
        firstStartMs,
        secondStartMs,
      })}`,
    );
  });
});
