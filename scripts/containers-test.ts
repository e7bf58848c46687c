/**
 * `pnpm containers:test`: the images and the compose stack, for real.
 *
 * 1. Builds the api, worker and emulator images from their Dockerfiles with podman (base images
 *    `node:<major>-bookworm-slim` made locally by ../shared/containers/local-base-images.sh where no
 *    registry is reachable; the script is run when they are missing).
 * 2. Starts docker-compose.yml through podman's docker-compatible socket on free ports, with a fresh
 *    project (its own volumes), and waits for the API's /readyz.
 * 3. Uploads a 3-page PDF (answered in the request) and a 60-page PDF (async, split over both workers,
 *    assembled by the aggregator poller) through the published port, and checks both results.
 * 4. Checks what production relies on: the services run as a non-root user on a read-only root
 *    filesystem, and stop cleanly (exit 0) on SIGTERM within their grace period.
 * 5. Stops and removes everything, whatever happened.
 *
 * Where podman is not installed it says so, runs the checks that need no container engine
 * (docker-compose config, the Dockerfiles' shape) and exits 0, naming exactly what it skipped.
 */
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { generateApiKey } from '@docorch/core';
import { freePort, generatePdf, repoRoot } from '@docorch/testkit';

const log = (message: string) => process.stdout.write(`[containers] ${message}\n`);
const nodeVersion = readFileSync(path.join(repoRoot, '.node-version'), 'utf8').trim();
const nodeMajor = nodeVersion.split('.')[0] as string;
const work = process.env.CONTAINERS_DIR ?? '/tmp/docorch-containers';
const baseImagesScript = path.resolve(repoRoot, '../shared/containers/local-base-images.sh');

function has(bin: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0;
}

function run(bin: string, args: string[], options: SpawnSyncOptions = {}): string {
  const res = spawnSync(bin, args, { cwd: repoRoot, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...options });
  if (res.status !== 0) {
    throw new Error(`${bin} ${args.join(' ')} exited ${res.status}:\n${String(res.stdout ?? '').slice(-4000)}\n${String(res.stderr ?? '').slice(-4000)}`);
  }
  return String(res.stdout ?? '');
}

/** Checks that need no container engine. */
function staticChecks(): void {
  for (const file of ['Dockerfile.api', 'Dockerfile.worker', 'Dockerfile.emulators']) {
    const text = readFileSync(path.join(repoRoot, file), 'utf8');
    const missing = ['USER node', 'HEALTHCHECK', `node:${nodeVersion}`].filter((s) => file !== 'Dockerfile.emulators' && !text.includes(s));
    if (missing.length > 0) throw new Error(`${file} lacks ${missing.join(', ')}`);
  }
  if (has('docker-compose')) {
    run('docker-compose', ['config', '-q']);
    log('docker-compose config -q: ok');
  } else {
    log('SKIPPED docker-compose config -q: docker-compose is not installed');
  }
}

/** Podman's environment: the local configuration and socket made by the base-image script. */
function podmanEnv(): NodeJS.ProcessEnv {
  const envFile = path.join(work, 'env.sh');
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (existsSync(envFile)) {
    for (const [, key, value] of readFileSync(envFile, 'utf8').matchAll(/([A-Z_]+)=(\S+)/g)) env[key as string] = value;
  }
  return env;
}

function ensureBaseImages(): NodeJS.ProcessEnv {
  let env = podmanEnv();
  const present = spawnSync('podman', ['image', 'exists', `docker.io/library/node:${nodeVersion}-bookworm-slim`], { env }).status === 0;
  if (!present) {
    if (!existsSync(baseImagesScript)) {
      throw new Error(`no node:${nodeVersion}-bookworm-slim image and no ${baseImagesScript} to build one (no registry is reachable here)`);
    }
    log(`building the Debian and Node ${nodeVersion} base images locally (${path.relative(repoRoot, baseImagesScript)}, about a minute)`);
    run('bash', [baseImagesScript], { env: { ...process.env, NODE_V: nodeVersion, W: work }, stdio: 'inherit' });
    env = podmanEnv();
  }
  // The docker-compatible socket (the base-image script starts one; a new session has none running).
  const socket = (env.DOCKER_HOST ?? '').replace(/^unix:\/\//, '');
  const alive = socket && existsSync(socket) && spawnSync('curl', ['-sf', '--unix-socket', socket, 'http://d/_ping']).status === 0;
  if (!alive) {
    const sock = path.join(work, 'podman.sock');
    log('starting the podman API socket');
    spawnSync('sh', ['-c', `podman system service --time=0 unix://${sock} >${work}/podman-service.log 2>&1 & echo $! > ${work}/podman-service.pid`], { env });
    for (let i = 0; i < 50 && !existsSync(sock); i++) spawnSync('sleep', ['0.1']);
    env.DOCKER_HOST = `unix://${sock}`;
  }
  return env;
}

async function waitFor(url: string, timeoutMs: number, headers: Record<string, string> = {}): Promise<Response> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(url, { headers, signal: AbortSignal.timeout(3_000) });
      if (res.ok) return res;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`${url} did not answer 200 within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 1_000));
  }
}

async function upload(base: string, key: string, pages: number, mode: 'sync' | 'async'): Promise<Response> {
  const pdf = await generatePdf({ pages, seed: pages });
  const form = new FormData();
  form.set('mode', mode);
  form.set('pagesPerChunk', '5');
  form.set('file', new Blob([pdf.bytes], { type: 'application/pdf' }), `${pages}-pages.pdf`);
  return fetch(`${base}/v1/documents`, { method: 'POST', body: form, headers: { authorization: `Bearer ${key}` } });
}

async function main(): Promise<void> {
  staticChecks();
  if (!has('podman')) {
    log('SKIPPED building and running the images: podman is not installed (../shared/containers/local-base-images.sh installs it from the Debian registry).');
    log('SKIPPED the compose stack run (sync and async documents through the published port): it needs podman.');
    log('checked instead: the Dockerfiles (non-root user, HEALTHCHECK, pinned Node) and docker-compose config.');
    return;
  }
  const env = ensureBaseImages();
  const started = Date.now();
  for (const image of ['api', 'worker', 'emulators']) {
    const t0 = Date.now();
    // --format docker keeps HEALTHCHECK (OCI images have no such field).
    run('podman', ['build', '--pull=never', '--format', 'docker', '-q', '-t', `docorch-${image}:local`, '-f', `Dockerfile.${image}`, '.'], { env });
    log(`built docorch-${image}:local from Dockerfile.${image} in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  }
  const ports = { API_PORT: await freePort(), S3_PORT: await freePort(), KINESIS_PORT: await freePort(), DYNAMODB_PORT: await freePort() };
  const extra = { WORKER_1_PORT: await freePort(), WORKER_2_PORT: await freePort(), AGGREGATOR_PORT: await freePort(), FAKE_GEMINI_PORT: await freePort() };
  const apiKey = generateApiKey().key;
  const project = `docorchci${process.pid}`;
  const composeEnv = { ...env, ...Object.fromEntries(Object.entries({ ...ports, ...extra }).map(([k, v]) => [k, String(v)])), DEV_API_KEY: apiKey, SHARDS: '2', LOG_LEVEL: 'warn' };
  const compose = (args: string[], options: SpawnSyncOptions = {}) => run('docker-compose', ['-p', project, ...args], { env: composeEnv, ...options });
  try {
    compose(['up', '-d', '--no-build']);
    const base = `http://127.0.0.1:${ports.API_PORT}`;
    await waitFor(`${base}/readyz`, 240_000);
    log(`compose stack up, API ready on ${base} (${((Date.now() - started) / 1000).toFixed(0)} s since the first build)`);

    const sync = await upload(base, apiKey, 3, 'sync');
    const syncBody = (await sync.json()) as { status?: string; pages?: { analysed: number }; summary?: string };
    if (sync.status !== 200 || syncBody.status !== 'completed' || syncBody.pages?.analysed !== 3 || !syncBody.summary) {
      throw new Error(`sync upload: ${sync.status} ${JSON.stringify(syncBody).slice(0, 500)}`);
    }
    log(`sync: 3-page PDF answered 200 in the request, status ${syncBody.status}`);

    const t0 = Date.now();
    const queued = await upload(base, apiKey, 60, 'async');
    const { id } = (await queued.json()) as { id: string };
    if (queued.status !== 202) throw new Error(`async upload answered ${queued.status}`);
    let status = '';
    let progress: unknown;
    while (Date.now() - t0 < 300_000) {
      const res = await fetch(`${base}/v1/documents/${id}?wait=10`, { headers: { authorization: `Bearer ${apiKey}` } });
      const body = (await res.json()) as { status: string; progress: unknown };
      ({ status, progress } = body);
      if (['completed', 'completed_with_errors', 'failed', 'cancelled'].includes(status)) break;
    }
    if (status !== 'completed') throw new Error(`async document ${id} ended ${status} ${JSON.stringify(progress)}`);
    const result = (await (await fetch(`${base}/v1/documents/${id}/result`, { headers: { authorization: `Bearer ${apiKey}` } })).json()) as {
      pages: { analysed: number };
      chunks: unknown[];
    };
    if (result.pages.analysed !== 60 || result.chunks.length !== 12) throw new Error(`async result: ${JSON.stringify(result.pages)}, ${result.chunks.length} chunks`);
    log(`async: 60-page PDF completed in ${((Date.now() - t0) / 1000).toFixed(1)} s, 12 chunks, ${JSON.stringify(progress)}`);

    for (const service of ['api', 'worker-1', 'aggregator']) {
      const container = `${project}_${service}_1`;
      const uid = run('podman', ['exec', container, 'id', '-u'], { env }).trim();
      const readOnly = run('podman', ['inspect', '--format', '{{.HostConfig.ReadonlyRootfs}}', container], { env }).trim();
      if (uid === '0' || readOnly !== 'true') throw new Error(`${service}: uid ${uid}, read-only root ${readOnly}`);
    }
    log('api, workers and aggregator run as uid 1000 on a read-only root filesystem');

    compose(['stop', '-t', '60', 'api', 'worker-1', 'worker-2', 'aggregator']);
    for (const service of ['api', 'worker-1', 'worker-2', 'aggregator']) {
      const code = run('podman', ['inspect', '--format', '{{.State.ExitCode}}', `${project}_${service}_1`], { env }).trim();
      if (code !== '0') throw new Error(`${service} exited ${code} on SIGTERM (expected a clean drain)`);
    }
    log('SIGTERM: api, both workers and the aggregator drained and exited 0');
    log(`containers test passed in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  } catch (err) {
    const logs = spawnSync('docker-compose', ['-p', project, 'logs', '--no-color', '--tail', '60'], { cwd: repoRoot, env: composeEnv, encoding: 'utf8' });
    process.stderr.write(`${logs.stdout ?? ''}${logs.stderr ?? ''}\n`);
    throw err;
  } finally {
    spawnSync('docker-compose', ['-p', project, 'down', '-v', '-t', '10'], { cwd: repoRoot, env: composeEnv, stdio: 'ignore' });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`[containers] FAILED: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
