/**
 * `pnpm bench:upload`: a 500 MB upload through the API (mode async: it answers 202 once the file
 * is stored and inspected) against a direct multipart upload of the same file to the same S3
 * emulator with the SDK (lib-storage's Upload through core's BlobStore, 8 MiB parts, 4 at once),
 * in the same run. The services run compiled, as `npm start` and the images run them (the script
 * builds first).
 *
 * The file is a valid 3-page PDF carrying an unreferenced 500 MB stream (an incremental update
 * appended after its end), so the PDF workers inspect a real document of that size.
 *
 * Before each timed upload, `sync` writes back what the previous one left dirty in the page cache
 * (each writes about 1 GB), so neither path is charged with the other's writeback.
 *
 * Rounds of (API, then direct), paired: prints each round, the medians and the median of the
 * per-round ratios, the API process's RSS idle and its highest peak during the uploads, and the
 * peak RSS of its PDF worker processes (sampled every 50 ms from /proc). The client is node:http
 * with the file part streamed from disk through one reused buffer (curl-like): on these 2-core
 * machines the client, the API and the S3 emulator share the CPU, so a client that spent most of a
 * core (fetch with FormData did) would measure itself.
 *
 * Knobs (env): BENCH_UPLOAD_MB (500), BENCH_UPLOAD_ROUNDS (3).
 */
import { createReadStream } from 'node:fs';
import { mkdtemp, open, readdir, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import { execFileSync } from 'node:child_process';
import { BlobStore, createAwsClients, loadConfig } from '@docorch/core';
import { startEmulators, startPipeline, writeLargePdf } from '@docorch/testkit';
import { knob } from './lib.js';

const MB = knob('BENCH_UPLOAD_MB', 500);
const ROUNDS = knob('BENCH_UPLOAD_ROUNDS', 3);

/**
 * POSTs `file` as multipart/form-data with node:http, the file part streamed from disk as it is
 * read: a client that costs little CPU (curl-like), so the figure is the server's. fetch with
 * FormData spent about 80% of a core framing the 500 MB on these 2-core machines, which made
 * the client, not the API, the bottleneck.
 */
async function postMultipart(url: string, apiKey: string, file: string, fields: Record<string, string>): Promise<{ status: number; body: string }> {
  const boundary = `docorch-bench-${Date.now()}`;
  const head = Buffer.from(
    Object.entries(fields)
      .map(([k, v]) => `--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`)
      .join('') + `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="large.pdf"\r\nContent-Type: application/pdf\r\n\r\n`,
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const size = (await stat(file)).size;
  const req = http.request(url, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${apiKey}`,
      'content-type': `multipart/form-data; boundary=${boundary}`,
      'content-length': String(head.length + size + tail.length),
    },
  });
  const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
    req.once('error', reject);
    req.once('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.once('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.once('error', reject);
    });
  });
  // One reused buffer: each write completes (the socket is done with it) before the next read.
  const fh = await open(file);
  try {
    const buf = Buffer.allocUnsafe(1024 * 1024);
    const write = (chunk: Buffer) => new Promise<void>((resolve, reject) => req.write(chunk, (err) => (err ? reject(err) : resolve())));
    await write(head);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      await write(buf.subarray(0, bytesRead));
    }
  } finally {
    await fh.close();
  }
  req.end(tail);
  return answer;
}

/** RSS in MiB of a process, 0 when gone. */
async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return kb / 1024;
}

/** Child processes of `pid` (the PDF worker processes of the API). */
async function childrenOf(pid: number): Promise<number[]> {
  const out: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid === pid) out.push(Number(entry));
  }
  return out;
}

/**
 * Writes back what the previous upload left dirty in the page cache before the next one is timed:
 * each upload writes about 1 GB (its parts, then s3rver's concatenated object; the API path also
 * its temp file), and the kernel's writeback of one upload's pages would otherwise land in the
 * next one's time, whichever path that is.
 */
async function settle(): Promise<void> {
  execFileSync('sync');
  await new Promise((r) => setTimeout(r, 500));
}

const dir = await mkdtemp(path.join(os.tmpdir(), 'docorch-bench-upload-'));
const emulators = await startEmulators();
Object.assign(process.env, emulators.env);
const pipeline = await startPipeline({
  workers: 0,
  shards: 1,
  prefix: 'benchup',
  // As `npm start` and the images run it: the tsx loader's memory and work are not the API's.
  compiled: true,
  env: { MAX_UPLOAD_BYTES: String((MB + 16) * 1024 * 1024) },
});
try {
  const file = path.join(dir, 'large.pdf');
  await writeLargePdf(file, MB * 1024 * 1024);
  const bytes = (await stat(file)).size;
  const apiPid = pipeline.api.child.pid as number;
  await new Promise((r) => setTimeout(r, 2_000));
  const idle = await rssMb(apiPid);
  const aws = createAwsClients(loadConfig({ ...process.env, ...pipeline.env }));
  const blobs = new BlobStore(aws.s3);
  const rounds: Array<{ apiMs: number; directMs: number; peakApi: number; peakPdf: number }> = [];
  for (let round = 0; round < ROUNDS; round++) {
    // Through the API, sampling RSS while it runs: every 50 ms; the PDF worker processes are looked
    // up once a second (a scan of /proc costs far more CPU than reading two status files, and on
    // these 2-core machines CPU is what this benchmark measures).
    await settle();
    let peakApi = idle;
    let peakPdf = 0;
    let sampling = true;
    const sampler = (async () => {
      let children: number[] = [];
      for (let tick = 0; sampling; tick++) {
        if (tick % 20 === 0) children = await childrenOf(apiPid);
        peakApi = Math.max(peakApi, await rssMb(apiPid));
        for (const child of children) peakPdf = Math.max(peakPdf, await rssMb(child));
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const t0 = performance.now();
    const res = await postMultipart(`${pipeline.api.baseUrl}/v1/documents`, pipeline.apiKey, file, { mode: 'async' });
    const apiMs = performance.now() - t0;
    sampling = false;
    await sampler;
    if (res.status !== 202) throw new Error(`the API answered ${res.status}: ${res.body.slice(0, 300)}`);

    // Direct to the same S3 emulator: lib-storage's multipart upload through core's BlobStore with
    // its defaults (8 MiB parts, 4 at once; the API streams the request body into the same
    // Upload, 8 MiB parts, 2 at once).
    await settle();
    const t1 = performance.now();
    await blobs.upload(pipeline.env.UPLOADS_BUCKET as string, `bench/direct-${round}.pdf`, createReadStream(file), { contentType: 'application/pdf' });
    const directMs = performance.now() - t1;
    rounds.push({ apiMs, directMs, peakApi, peakPdf });
    console.log(`  round ${round + 1}: API ${(apiMs / 1000).toFixed(1)} s, direct ${(directMs / 1000).toFixed(1)} s, ratio ${(directMs / apiMs).toFixed(2)}, API RSS peak ${peakApi.toFixed(0)} MiB`);
    await new Promise((r) => setTimeout(r, 1_000));
  }
  aws.destroy();

  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
  const mbps = (ms: number) => bytes / 1024 / 1024 / (ms / 1000);
  const apiMs = median(rounds.map((r) => r.apiMs));
  const directMs = median(rounds.map((r) => r.directMs));
  const ratio = median(rounds.map((r) => r.directMs / r.apiMs));
  const peakApi = Math.max(...rounds.map((r) => r.peakApi));
  const peakPdf = Math.max(...rounds.map((r) => r.peakPdf));
  console.log(`bench:upload: ${(bytes / 1024 / 1024).toFixed(0)} MiB (a 3-page PDF with an unreferenced stream), ${ROUNDS} rounds, medians`);
  console.log(`  through the API (async, 202 after store + inspect): ${(apiMs / 1000).toFixed(1)} s, ${mbps(apiMs).toFixed(1)} MiB/s`);
  console.log(`  direct multipart to the same S3 emulator (SDK):      ${(directMs / 1000).toFixed(1)} s, ${mbps(directMs).toFixed(1)} MiB/s`);
  console.log(`  API RSS: idle ${idle.toFixed(0)} MiB, highest peak ${peakApi.toFixed(0)} MiB; PDF workers' peak RSS ${peakPdf.toFixed(0)} MiB`);
  console.log(`upload throughput ratio (API / direct SDK, median of ${ROUNDS} paired rounds, target >= 0.8): ${ratio.toFixed(2)}`);
  console.log(`API RSS growth over idle during the uploads (highest of ${ROUNDS}), MiB (target < 100): ${(peakApi - idle).toFixed(0)}`);
} finally {
  await pipeline.stop();
  await emulators.stop();
  await rm(dir, { recursive: true, force: true });
}
