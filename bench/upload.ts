/**
 * `pnpm bench:upload`: a 500 MB upload through the API (mode async: it answers 202 once the file
 * is stored and inspected) against a direct multipart upload of the same file to the same S3
 * emulator with the SDK (lib-storage's Upload through core's BlobStore, 8 MiB parts, 4 at once),
 * in the same run.
 *
 * The file is a valid 3-page PDF carrying an unreferenced 500 MB stream (an incremental update
 * appended after its end), so the PDF workers inspect a real document of that size.
 *
 * Prints both throughputs and their ratio, the API process's RSS idle and at its peak during the
 * upload, and the peak RSS of its PDF worker processes (sampled every 50 ms from /proc).
 *
 * Knobs (env): BENCH_UPLOAD_MB (500).
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { BlobStore, createAwsClients, loadConfig } from '@docorch/core';
import { startEmulators, startPipeline, writePdf } from '@docorch/testkit';
import { knob } from './lib.js';

const MB = knob('BENCH_UPLOAD_MB', 500);

/** Appends an incremental update holding one unreferenced stream of `bytes` zero bytes. */
async function writeLargePdf(file: string, bytes: number): Promise<void> {
  await writePdf(file, { pages: 3, seed: 5 });
  const base = await readFile(file);
  const text = base.toString('latin1');
  const startxref = Number(/startxref\s+(\d+)\s+%%EOF\s*$/.exec(text)?.[1]);
  const size = Number(/\/Size\s+(\d+)/.exec(text)?.[1]);
  const root = /\/Root\s+(\d+\s+\d+\s+R)/.exec(text)?.[1];
  if (!Number.isFinite(startxref) || !Number.isFinite(size) || !root) throw new Error('could not read the base PDF trailer');
  const out = createWriteStream(file, { flags: 'a' });
  let offset = base.length;
  const write = async (chunk: Buffer | string) => {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk;
    offset += buf.length;
    if (!out.write(buf)) await once(out, 'drain');
  };
  await write('\n');
  const objOffset = offset;
  await write(`${size} 0 obj\n<< /Length ${bytes} >>\nstream\n`);
  const block = Buffer.alloc(1024 * 1024);
  for (let left = bytes; left > 0; left -= block.length) await write(left >= block.length ? block : block.subarray(0, left));
  await write('\nendstream\nendobj\n');
  const xref = offset;
  await write(`xref\n${size} 1\n${String(objOffset).padStart(10, '0')} 00000 n \ntrailer\n<< /Size ${size + 1} /Root ${root} /Prev ${startxref} >>\nstartxref\n${xref}\n%%EOF\n`);
  out.end();
  await once(out, 'finish');
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

const dir = await mkdtemp(path.join(os.tmpdir(), 'docorch-bench-upload-'));
const emulators = await startEmulators();
Object.assign(process.env, emulators.env);
const pipeline = await startPipeline({
  workers: 0,
  shards: 1,
  prefix: 'benchup',
  env: { MAX_UPLOAD_BYTES: String((MB + 16) * 1024 * 1024) },
});
try {
  const file = path.join(dir, 'large.pdf');
  await writeLargePdf(file, MB * 1024 * 1024);
  const bytes = (await stat(file)).size;
  const apiPid = pipeline.api.child.pid as number;
  await new Promise((r) => setTimeout(r, 2_000));
  const idle = await rssMb(apiPid);

  // Through the API, sampling RSS while it runs.
  let peakApi = idle;
  let peakPdf = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      peakApi = Math.max(peakApi, await rssMb(apiPid));
      for (const child of await childrenOf(apiPid)) peakPdf = Math.max(peakPdf, await rssMb(child));
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  const form = new FormData();
  form.set('mode', 'async');
  const { openAsBlob } = await import('node:fs');
  form.set('file', new File([await openAsBlob(file)], 'large.pdf', { type: 'application/pdf' }));
  const t0 = performance.now();
  const res = await fetch(`${pipeline.api.baseUrl}/v1/documents`, { method: 'POST', body: form, headers: { authorization: `Bearer ${pipeline.apiKey}` } });
  const apiMs = performance.now() - t0;
  const body = await res.text();
  sampling = false;
  await sampler;
  if (res.status !== 202) throw new Error(`the API answered ${res.status}: ${body.slice(0, 300)}`);

  // Direct to the same S3 emulator.
  // The same lib-storage multipart upload (8 MiB parts, 4 at once) the API uses for its copy.
  const aws = createAwsClients(loadConfig({ ...process.env, ...pipeline.env }));
  const t1 = performance.now();
  await new BlobStore(aws.s3).upload(pipeline.env.UPLOADS_BUCKET as string, 'bench/direct.pdf', createReadStream(file), { contentType: 'application/pdf' });
  const directMs = performance.now() - t1;
  aws.destroy();

  const mbps = (ms: number) => bytes / 1024 / 1024 / (ms / 1000);
  console.log(`bench:upload: ${(bytes / 1024 / 1024).toFixed(0)} MiB (a 3-page PDF with an unreferenced stream)`);
  console.log(`  through the API (async, 202 after store + inspect): ${(apiMs / 1000).toFixed(1)} s, ${mbps(apiMs).toFixed(1)} MiB/s`);
  console.log(`  direct multipart to the same S3 emulator (SDK):      ${(directMs / 1000).toFixed(1)} s, ${mbps(directMs).toFixed(1)} MiB/s`);
  console.log(`  throughput ratio API / direct: ${(mbps(apiMs) / mbps(directMs)).toFixed(2)}`);
  console.log(`  API RSS: idle ${idle.toFixed(0)} MiB, peak ${peakApi.toFixed(0)} MiB; PDF workers' peak RSS ${peakPdf.toFixed(0)} MiB`);
  console.log(`upload throughput ratio (API / direct SDK, target >= 0.8): ${(mbps(apiMs) / mbps(directMs)).toFixed(2)}`);
  console.log(`API RSS growth over idle during the upload, MiB (target < 100): ${(peakApi - idle).toFixed(0)}`);
} finally {
  await pipeline.stop();
  await emulators.stop();
  await rm(dir, { recursive: true, force: true });
}
