/**
 * `pnpm bench:cold`: the first document after `npm start` says it is ready, against the same
 * document on the warm fleet. Runs the local stack itself (packages/testkit/src/stack/main.ts,
 * from source, 2 workers on 4 shards, a private data directory and free ports) with a fake model
 * of fixed latency; submits a 120-page document the moment the banner is printed, then the same
 * document again, BENCH_WARM_RUNS times. Prints the time from the start to the banner, the cold
 * document's time, the warm median, and cold / warm.
 *
 * Knobs (env): BENCH_PAGES (120), BENCH_LATENCY_MS (300), BENCH_WARM_RUNS (5).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { repoRoot, startFakeGemini, writePdf } from '@docorch/testkit';
import { knob, submitAndWait } from './lib.js';

const PAGES = knob('BENCH_PAGES', 120);
const L = knob('BENCH_LATENCY_MS', 300);
const WARM_RUNS = knob('BENCH_WARM_RUNS', 5);

/** A base port with the 13 above it free (API, aggregator +10, workers +11, +12). */
async function freeBase(): Promise<number> {
  for (;;) {
    const base = 20_000 + Math.floor(Math.random() * 30_000);
    const free = await Promise.all(
      [0, 10, 11, 12].map(
        (d) =>
          new Promise<boolean>((resolve) => {
            const srv = net.createServer();
            srv.once('error', () => resolve(false));
            srv.listen(base + d, '127.0.0.1', () => srv.close(() => resolve(true)));
          }),
      ),
    );
    if (free.every(Boolean)) return base;
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

const dir = await mkdtemp(path.join(os.tmpdir(), 'docorch-bench-cold-'));
const fake = await startFakeGemini({ latencyMs: L });
const base = await freeBase();
const file = path.join(dir, 'doc.pdf');
await writePdf(file, { pages: PAGES, seed: 11 });
const startedAt = performance.now();
const stack = spawn(process.execPath, ['--conditions=docorch-source', '--import', 'tsx', path.join(repoRoot, 'packages/testkit/src/stack/main.ts')], {
  cwd: repoRoot,
  env: {
    ...process.env,
    DOCORCH_DATA_DIR: path.join(dir, 'data'),
    PORT: String(base),
    WORKERS: '2',
    SHARDS: '4',
    LOG_LEVEL: 'warn',
    ANALYZER: 'gemini',
    GEMINI_API_KEY: 'bench',
    GEMINI_BASE_URL: fake.url,
  },
  stdio: ['ignore', 'pipe', 'pipe'],
  detached: true,
});
const output: string[] = [];
stack.stderr?.on('data', (b: Buffer) => output.push(b.toString()));
try {
  const banner = await new Promise<string>((resolve, reject) => {
    let text = '';
    stack.stdout?.on('data', (b: Buffer) => {
      text += b.toString();
      if (text.includes('Ctrl-C stops everything')) resolve(text);
    });
    stack.once('exit', (code) => reject(new Error(`the stack exited (${code}):\n${output.join('').slice(-3000)}`)));
  });
  const readyMs = performance.now() - startedAt;
  const fleet = banner.split('\n').find((l) => l.includes('Fleet:'))?.trim() ?? '';
  const apiKey = (await readFile(path.join(dir, 'data', 'dev-api-key'), 'utf8')).trim();
  const target = { api: { baseUrl: `http://127.0.0.1:${base}` }, apiKey };
  const cold = await submitAndWait(target, file, 10);
  const warm: number[] = [];
  for (let i = 0; i < WARM_RUNS; i++) {
    const run = await submitAndWait(target, file, 10);
    if (run.status !== 'completed') throw new Error(`warm run ${i + 1}: ${run.status}`);
    warm.push(run.doneAt - run.submittedAt);
  }
  const coldMs = cold.doneAt - cold.submittedAt;
  console.log(`bench:cold: ${PAGES} pages (10 a chunk), fake model ${L} ms, npm start's stack (2 workers, 4 shards)`);
  console.log(`  start -> banner (ready, balanced): ${(readyMs / 1000).toFixed(1)} s   ${fleet}`);
  console.log(`  first document after ready:       ${(coldMs / 1000).toFixed(2)} s (${cold.status})`);
  console.log(`  warm, median of ${WARM_RUNS}:                ${(median(warm) / 1000).toFixed(2)} s   [${warm.map((w) => (w / 1000).toFixed(2)).join(', ')}]`);
  console.log(`  cold / warm: ${(coldMs / median(warm)).toFixed(2)}`);
} finally {
  try {
    process.kill(-(stack.pid as number), 'SIGINT');
  } catch {
    // gone
  }
  await new Promise<void>((resolve) => (stack.exitCode !== null ? resolve() : stack.once('exit', () => resolve())));
  await fake.close();
  await rm(dir, { recursive: true, force: true });
}
