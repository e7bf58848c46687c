/**
 * The `docorch` command line as a user meets it, against the whole pipeline (a fake model at
 * 300 ms a call, so a 60-page document takes a few seconds):
 * - in a terminal (tmux, a real pseudo-terminal; captured with capture-pane at several moments),
 *   `analyze` on a 60-page PDF draws a bar that advances and exits 0 with the result saved;
 *   three files at once draw three bars;
 * - piped, the same command prints plain lines (no terminal control codes);
 * - a bad key exits 1 with the problem's message; `result ID > out.json` writes the JSON.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { entryArgs, generatePdf, repoRoot, startFakeGemini, startPipeline, type FakeGemini, type Pipeline } from '@docorch/testkit';

const TMUX = spawnSync('tmux', ['-V']).status === 0;
// Compiled under `npm test`, else from source (no build needed); it runs in the user's folder.
const CLI = [process.execPath, ...entryArgs('packages/cli/src/main.ts', 'packages/cli/dist/main.js')];
const sh = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;

function runCli(args: string[], env: Record<string, string>, cwd: string): Promise<{ code: number | null; out: string; err: string }> {
  const [bin, ...rest] = CLI as [string, ...string[]];
  const child = spawn(bin, [...rest, ...args], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, out, err })));
}

/** Runs a command line in a detached tmux session and captures the pane until it prints EXIT=. */
async function inTerminal(session: string, command: string, cwd: string, timeoutMs = 90_000): Promise<{ captures: string[]; exit: number }> {
  spawnSync('tmux', ['kill-session', '-t', session]);
  const script = path.join(cwd, `${session}.sh`);
  await writeFile(script, `cd ${sh(cwd)}\n${command}\necho EXIT=$?\nsleep 60\n`);
  const started = spawnSync('tmux', ['new-session', '-d', '-s', session, '-x', '160', '-y', '24', `bash ${sh(script)}`]);
  if (started.status !== 0) throw new Error(`tmux: ${started.stderr.toString()}`);
  const captures: string[] = [];
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      const pane = spawnSync('tmux', ['capture-pane', '-p', '-t', session]).stdout.toString();
      if (captures.at(-1) !== pane) captures.push(pane);
      const exit = /EXIT=(\d+)/.exec(pane);
      if (exit) return { captures, exit: Number(exit[1]) };
      if (Date.now() > deadline) throw new Error(`no EXIT= in the pane after ${timeoutMs} ms:\n${pane}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  } finally {
    spawnSync('tmux', ['kill-session', '-t', session]);
  }
}

describe('the docorch command line', () => {
  let pipeline: Pipeline;
  let fake: FakeGemini;
  let dir: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    fake = await startFakeGemini({ latencyMs: 300 });
    pipeline = await startPipeline({
      workers: 2,
      shards: 2,
      prefix: 'cli',
      env: { ANALYZER: 'gemini', GEMINI_API_KEY: 'test', GEMINI_BASE_URL: fake.url },
    });
    dir = await mkdtemp(path.join(tmpdir(), 'docorch-cli-'));
    for (const [name, pages, seed] of [['sixty.pdf', 60, 71], ['a.pdf', 20, 72], ['b.pdf', 24, 73], ['c.pdf', 16, 74]] as const) {
      await writeFile(path.join(dir, name), (await generatePdf({ pages, seed })).bytes);
    }
    // What `npm start` prints to configure the client, for this pipeline.
    env = { DOCORCH_URL: pipeline.api.baseUrl, DOCORCH_API_KEY: pipeline.apiKey, DOCORCH_CONFIG: path.join(dir, 'no-profile.json') };
  }, 120_000);

  afterAll(async () => {
    await pipeline?.stop();
    await fake?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const cmd = (args: string) => `DOCORCH_URL=${sh(env.DOCORCH_URL as string)} DOCORCH_API_KEY=${sh(env.DOCORCH_API_KEY as string)} DOCORCH_CONFIG=${sh(env.DOCORCH_CONFIG as string)} ${CLI.map(sh).join(' ')} ${args}`;

  it.skipIf(!TMUX)('draws a progress bar that advances on a terminal, and exits 0 with the result saved', async () => {
    const { captures, exit } = await inTerminal('docorch-cli-one', cmd('analyze sixty.pdf --wait --pages-per-chunk 3 --out results'), dir);
    const shots = await screenshots('one', captures);
    console.log(`[cli] ${captures.length} captures of the pane; e.g.\n${shots.join('\n')}`);
    expect(exit).toBe(0);
    const bars = captures.map((c) => /sixty\.pdf\s+\|[█░]+\| (\d+)\/(\d+|\?) chunks \| 60 pages \| \d+s \| ETA \S+ \| (\S+)/.exec(c)).filter((m) => m !== null);
    const done = bars.map((m) => Number(m[1]));
    // The bar advanced through several states, never backwards, to 20 of 20.
    expect(new Set(done).size).toBeGreaterThanOrEqual(3);
    expect(done).toEqual([...done].sort((a, b) => a - b));
    expect(bars.at(-1)?.slice(1, 4)).toEqual(['20', '20', 'completed']);
    expect(captures.at(-1)).toMatch(/sixty\.pdf: completed in \d+s \(60 pages, 20 chunks\) -> results\/sixty\.json/);
    const saved = JSON.parse(await readFile(path.join(dir, 'results/sixty.json'), 'utf8')) as { status: string; pages: { total: number }; chunks: unknown[] };
    expect(saved).toMatchObject({ status: 'completed', pages: { total: 60 } });
    expect(saved.chunks).toHaveLength(20);
  }, 120_000);

  it.skipIf(!TMUX)('draws three bars for three files at once', async () => {
    const { captures, exit } = await inTerminal('docorch-cli-three', cmd('analyze a.pdf b.pdf c.pdf --wait --mode async --pages-per-chunk 2 --out results'), dir);
    expect(exit).toBe(0);
    const bar = (c: string, f: string, total: string) => new RegExp(`${f.replace('.', '\\.')}\\s+\\|[█░]+\\| \\d+/${total} chunks`).test(c);
    const all = (c: string, total: string) => ['a.pdf', 'b.pdf', 'c.pdf'].every((f) => bar(c, f, total));
    // Prefer a moment when all three are being analysed; any moment with three bars otherwise.
    const threeAtOnce = captures.find((c) => all(c, '\\d+') && /processing/.test(c)) ?? captures.find((c) => all(c, '(\\d+|\\?)') && /processing|splitting|queued/.test(c));
    expect(threeAtOnce, captures.join('\n----\n')).toBeDefined();
    console.log(`[cli] three bars:\n${threeAtOnce}`);
    await screenshots('three', [threeAtOnce as string]);
    for (const f of ['a', 'b', 'c']) expect(JSON.parse(await readFile(path.join(dir, `results/${f}.json`), 'utf8'))).toMatchObject({ status: 'completed' });
  }, 120_000);

  it('prints plain lines when not on a terminal', async () => {
    const run = await runCli(['analyze', 'a.pdf', '--wait', '--mode', 'async', '--pages-per-chunk', '2'], env, dir);
    expect(run.code).toBe(0);
    expect(run.err).not.toMatch(/\u001b\[/); // no terminal control codes
    expect(run.err).not.toMatch(/[█░]/);
    const lines = run.err.trim().split('\n');
    expect(lines.some((l) => /^a\.pdf: processing \d+\/10 chunks \(\d+%\), 20 pages, \d+s$/.test(l))).toBe(true);
    expect(lines.at(-1)).toMatch(/^a\.pdf: completed in \d+s \(20 pages, 10 chunks\)$/);
    expect(run.out).toMatch(/^a\.pdf: completed, 20 pages, sentiment \w+/);
  }, 90_000);

  it('exits 1 with the problem message for a bad key, 3 for a usage error; result ID > out.json writes the JSON', async () => {
    const bad = await runCli(['analyze', 'a.pdf', '--wait'], { ...env, DOCORCH_API_KEY: 'dk_live_notakey_000000000000000000000000000000' }, dir);
    expect(bad.code).toBe(1);
    expect(bad.err).toContain('UNAUTHENTICATED: The API key is not valid');
    expect((await runCli(['analyze', 'a.pdf', '--mode', 'fast'], env, dir)).code).toBe(3);
    expect((await runCli(['status'], env, dir)).code).toBe(3);

    const listed = await runCli(['list', '--json', '--limit', '1'], env, dir);
    const [latest] = JSON.parse(listed.out) as Array<{ id: string }>;
    const out = path.join(dir, 'out.json');
    const [bin, ...rest] = CLI as [string, ...string[]];
    const { openSync, closeSync } = await import('node:fs');
    const fd = openSync(out, 'w');
    const code = await new Promise<number | null>((resolve) =>
      spawn(bin, [...rest, 'result', latest?.id as string], { cwd: dir, env: { ...process.env, ...env }, stdio: ['ignore', fd, 'inherit'] }).on('exit', resolve),
    );
    closeSync(fd);
    expect(code).toBe(0);
    expect(JSON.parse(await readFile(out, 'utf8'))).toMatchObject({ documentId: latest?.id, schemaVersion: 1 });
    const status = await runCli(['status', latest?.id as string], env, dir);
    expect(status.out).toMatch(new RegExp(`^${latest?.id}  completed  \\d+/\\d+ chunks \\(100%\\)`));
  }, 90_000);

  /** Saves captures as text files under a folder it names (what the terminal showed). */
  async function screenshots(name: string, captures: string[]): Promise<string[]> {
    const folder = path.join(repoRoot, '.data', 'test-artifacts', 'cli');
    const { mkdir } = await import('node:fs/promises');
    await mkdir(folder, { recursive: true });
    const picked = captures.length <= 4 ? captures : [captures[1], captures[Math.floor(captures.length / 3)], captures[Math.floor((2 * captures.length) / 3)], captures.at(-1)];
    const out: string[] = [];
    for (const [i, c] of picked.entries()) {
      const file = path.join(folder, `${name}-${i + 1}.txt`);
      await writeFile(file, c ?? '');
      out.push(`${file}:\n${(c ?? '').trim()}`);
    }
    return out;
  }
});
