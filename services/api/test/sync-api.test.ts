/**
 * The synchronous path end to end: the real API process (child), real emulators, the real PDF
 * extractor and the local analyzer.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { createAwsClients, loadConfig, sourceKey } from '@docorch/core';
import { generatePdf, startService, writeLargePdf, type GeneratedPdf, type ServiceProcess } from '@docorch/testkit';
import { problemBody, seedTenant, upload } from './helpers.js';

const MAX_UPLOAD_BYTES = 2 * 1024 * 1024;
const uploadDir = mkdtempSync(path.join(os.tmpdir(), 'docorch-api-test-'));

/** Peak resident memory of a process (Linux /proc), or undefined elsewhere. */
function peakRssBytes(pid: number | undefined): number | undefined {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}
let api: ServiceProcess;
let tenant: { tenantId: string; apiKey: string };

/** The stored source object of a document, from the uploads bucket. */
async function sourceBytes(tenantId: string, documentId: string): Promise<Buffer> {
  const config = loadConfig(process.env);
  const aws = createAwsClients(config);
  try {
    const out = await aws.s3.send(new GetObjectCommand({ Bucket: config.UPLOADS_BUCKET, Key: sourceKey(tenantId, documentId) }));
    return Buffer.from(await out.Body!.transformToByteArray());
  } finally {
    aws.destroy();
  }
}

beforeAll(async () => {
  tenant = await seedTenant('sync');
  api = await startService({
    service: 'api',
    env: { MAX_UPLOAD_BYTES: String(MAX_UPLOAD_BYTES), LOG_LEVEL: 'warn', SYNC_MAX_PAGES: '50', UPLOAD_TMP_DIR: uploadDir },
  });
});

afterAll(async () => {
  await api?.stop();
});

describe('POST /v1/documents (sync)', () => {
  let pdf: GeneratedPdf;
  let result: Record<string, any>;

  it('answers a 3-page PDF with a real analysis within 10 s', async () => {
    pdf = await generatePdf({ pages: 3, sentiment: 'positive', seed: 7 });
    const started = Date.now();
    const res = await upload(api.baseUrl, tenant.apiKey, pdf.bytes, { mode: 'sync' });
    const elapsed = Date.now() - started;
    expect(res.status, await res.clone().text()).toBe(200);
    expect(elapsed).toBeLessThan(10_000);
    result = (await res.json()) as Record<string, any>;
    expect(res.headers.get('location')).toBe(`/v1/documents/${result.documentId}`);
    expect(result.status).toBe('completed');
    expect(result.pages).toEqual({ total: 3, analysed: 3, selection: 'all' });
    expect(result.summary.length).toBeGreaterThan(40);
    expect(result.keyPoints.length).toBeGreaterThanOrEqual(3);
    const names = (type: string) => result.entities.filter((e: any) => e.type === type).map((e: any) => e.text.toLowerCase());
    const people = names('PERSON');
    const places = names('LOCATION');
    const mentionedPeople = pdf.facts.people.filter((p) => pdf.pageTexts.join(' ').includes(p));
    const mentionedPlaces = pdf.facts.places.filter((p) => pdf.pageTexts.join(' ').includes(p));
    expect(mentionedPeople.length).toBeGreaterThan(0);
    for (const p of mentionedPeople) expect(people.some((x: string) => x.includes(p.toLowerCase()))).toBe(true);
    for (const p of mentionedPlaces) expect(places).toContain(p.toLowerCase());
    expect(result.sentiment.score).toBeGreaterThan(0);
    expect(result.sentiment.label).toBe('positive');
    expect(result.chunks.length).toBeGreaterThanOrEqual(1);
  });

  it('reads the same document back through GET', async () => {
    const headers = { authorization: `Bearer ${tenant.apiKey}` };
    const status = await fetch(`${api.baseUrl}/v1/documents/${result.documentId}`, { headers });
    expect(status.status).toBe(200);
    const job = (await status.json()) as Record<string, any>;
    expect(job).toMatchObject({ id: result.documentId, status: 'completed', mode: 'sync', pages: { total: 3, selected: 3 } });
    expect(job.progress.percent).toBe(100);
    const stored = await fetch(`${api.baseUrl}/v1/documents/${result.documentId}/result`, { headers });
    expect(stored.status).toBe(200);
    expect(await stored.json()).toEqual(result);
    const list = await fetch(`${api.baseUrl}/v1/documents`, { headers });
    const listed = (await list.json()) as { documents: Array<{ id: string }> };
    expect(listed.documents.map((d) => d.id)).toContain(result.documentId);
  });

  it('analyses a negative document with a negative sentiment', async () => {
    const neg = await generatePdf({ pages: 3, sentiment: 'negative', seed: 8 });
    const res = await upload(api.baseUrl, tenant.apiKey, neg.bytes, { mode: 'sync' });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, any>;
    expect(body.sentiment.score).toBeLessThan(0);
    expect(body.sentiment.label).toBe('negative');
  });

  it('honours a page selection and pagesPerChunk', async () => {
    const doc = await generatePdf({ pages: 8, seed: 3 });
    const res = await upload(api.baseUrl, tenant.apiKey, doc.bytes, { mode: 'sync', pages: '1-3,7', pagesPerChunk: '2' });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, any>;
    expect(body.pages).toEqual({ total: 8, analysed: 4, selection: '1-3,7' });
    expect(body.chunks.map((c: any) => c.pages)).toEqual([[1, 2], [3, 3], [7, 7]]);
  });
});

/** Streams a multipart body of `total` bytes (a PDF header, then zeros) without Content-Length. */
async function streamUpload(total: number): Promise<Response> {
  const boundary = 'docorchboundary';
  const chunk = new Uint8Array(256 * 1024);
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(
        new TextEncoder().encode(
          `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.pdf"\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.7\n`,
        ),
      );
    },
    pull(controller) {
      if (sent >= total) {
        controller.enqueue(new TextEncoder().encode(`\r\n--${boundary}--\r\n`));
        controller.close();
        return;
      }
      sent += chunk.length;
      controller.enqueue(chunk);
    },
  });
  return fetch(`${api.baseUrl}/v1/documents`, {
    method: 'POST',
    body,
    duplex: 'half',
    headers: { authorization: `Bearer ${tenant.apiKey}`, 'content-type': `multipart/form-data; boundary=${boundary}` },
  } as RequestInit);
}

describe('bad input answers problem+json', () => {
  it('401 without a key and with a wrong key', async () => {
    const pdf = await generatePdf({ pages: 1 });
    const none = await upload(api.baseUrl, undefined, pdf.bytes);
    expect(none.status).toBe(401);
    expect((await problemBody(none)).code).toBe('UNAUTHENTICATED');
    const wrong = await upload(api.baseUrl, 'dk_not-a-real-key', pdf.bytes);
    expect(wrong.status).toBe(401);
    expect((await problemBody(wrong)).code).toBe('UNAUTHENTICATED');
    const get = await fetch(`${api.baseUrl}/v1/documents`, { headers: { authorization: 'Bearer nope' } });
    expect(get.status).toBe(401);
  });

  it('415 for a file that is not a PDF, whatever its name', async () => {
    const res = await upload(api.baseUrl, tenant.apiKey, new TextEncoder().encode('hello, I am a text file\n'.repeat(100)), {}, 'fake.pdf');
    expect(res.status).toBe(415);
    expect((await problemBody(res)).code).toBe('UNSUPPORTED_MEDIA_TYPE');
  });

  it('413 for a file over the size limit, declared or streamed', async () => {
    const big = new Uint8Array(MAX_UPLOAD_BYTES + 1024 * 1024);
    big.set(new TextEncoder().encode('%PDF-1.7\n'));
    const declared = await upload(api.baseUrl, tenant.apiKey, big);
    expect(declared.status).toBe(413);
    expect((await problemBody(declared)).code).toBe('TOO_LARGE');

    // Expect: 100-continue (curl's default for large bodies): refused before any byte is sent.
    const early = await new Promise<{ status: number; body: string; continued: boolean }>((resolve, reject) => {
      let continued = false;
      const req = http.request(`${api.baseUrl}/v1/documents`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${tenant.apiKey}`,
          'content-type': 'multipart/form-data; boundary=x',
          'content-length': String(50 * 1024 * 1024),
          expect: '100-continue',
        },
      });
      req.on('continue', () => {
        continued = true;
        req.destroy();
      });
      req.on('response', (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, continued }));
      });
      req.on('error', reject);
      req.flushHeaders();
    });
    expect(early.continued).toBe(false);
    expect(early.status).toBe(413);
    expect(JSON.parse(early.body).code).toBe('TOO_LARGE');

    // Chunked uploads without Content-Length: the limit is enforced while streaming to disk, and
    // the rest of the body is discarded as it arrives. A warm-up upload first (buffer pools, GC
    // heuristics), then one twice larger must not raise the API's peak memory by more than a
    // quarter of its size: memory is bounded, not proportional to the upload. The warm-up must
    // reach the collector's steady state: on Node 24, V8 lets discarded socket buffers (external
    // memory) reach about 64 MB before it collects them, so a 32 MB warm-up never got there and
    // the measured "growth" was that one-time plateau (53-78 MB), not a proportional cost.
    await streamUpload(128 * 1024 * 1024);
    const peakBefore = peakRssBytes(api.child.pid);
    const total = 256 * 1024 * 1024;
    const res = await streamUpload(total);
    expect(res.status).toBe(413);
    expect((await problemBody(res)).code).toBe('TOO_LARGE');
    const peakAfter = peakRssBytes(api.child.pid);
    if (peakBefore !== undefined && peakAfter !== undefined) expect(peakAfter - peakBefore).toBeLessThan(total / 4);
    expect(readdirSync(uploadDir).filter((f) => f.startsWith('docorch-upload-'))).toEqual([]);
    const health = await fetch(`${api.baseUrl}/healthz`);
    expect(health.status).toBe(200);
  });

  it('422 ENCRYPTED_PDF for an encrypted PDF', async () => {
    const pdf = await generatePdf({ pages: 2, encrypt: { userPassword: 'secret' } });
    const res = await upload(api.baseUrl, tenant.apiKey, pdf.bytes);
    expect(res.status).toBe(422);
    expect((await problemBody(res)).code).toBe('ENCRYPTED_PDF');
  });

  it('422 BAD_PDF for a truncated PDF', async () => {
    const pdf = await generatePdf({ pages: 3 });
    const res = await upload(api.baseUrl, tenant.apiKey, pdf.bytes.subarray(0, Math.floor(pdf.bytes.length / 3)));
    expect(res.status).toBe(422);
    expect((await problemBody(res)).code).toBe('BAD_PDF');
  });

  it('422 for a page range outside the document, 400 for a malformed one', async () => {
    const pdf = await generatePdf({ pages: 3 });
    const outside = await upload(api.baseUrl, tenant.apiKey, pdf.bytes, { pages: '2-9' });
    expect(outside.status).toBe(422);
    expect((await problemBody(outside)).code).toBe('INVALID_PAGE_RANGE');
    const malformed = await upload(api.baseUrl, tenant.apiKey, pdf.bytes, { pages: 'one-two' });
    expect(malformed.status).toBe(400);
    expect((await problemBody(malformed)).code).toBe('INVALID_REQUEST');
  });

  it('404 for an unknown id and for another tenant\'s document', async () => {
    const other = await seedTenant('other');
    const pdf = await generatePdf({ pages: 1 });
    const res = await upload(api.baseUrl, other.apiKey, pdf.bytes, { mode: 'sync' });
    expect(res.status).toBe(200);
    const { documentId } = (await res.json()) as { documentId: string };
    const headers = { authorization: `Bearer ${tenant.apiKey}` };
    const foreign = await fetch(`${api.baseUrl}/v1/documents/${documentId}`, { headers });
    expect(foreign.status).toBe(404);
    expect((await problemBody(foreign)).code).toBe('NOT_FOUND');
    const foreignResult = await fetch(`${api.baseUrl}/v1/documents/${documentId}/result`, { headers });
    expect(foreignResult.status).toBe(404);
    const unknown = await fetch(`${api.baseUrl}/v1/documents/doesnotexist123`, { headers });
    expect(unknown.status).toBe(404);
  });
});

describe('the upload goes to the uploads bucket while it is received', () => {
  /** The document ids whose source object exists under the tenant's prefix. */
  async function storedSources(tenantId: string): Promise<string[]> {
    const config = loadConfig(process.env);
    const aws = createAwsClients(config);
    try {
      const page = await aws.s3.send(new ListObjectsV2Command({ Bucket: config.UPLOADS_BUCKET, Prefix: `tenants/${tenantId}/documents/` }));
      return (page.Contents ?? []).flatMap((o) => /documents\/([^/]+)\/source\.pdf$/.exec(o.Key ?? '')?.slice(1, 2) ?? []).sort();
    } finally {
      aws.destroy();
    }
  }

  /** Polls until `read` returns `expected` (a replay's staged copy is deleted after its answer). */
  async function eventually<T>(read: () => Promise<T>, expected: T, timeoutMs = 10_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let value = await read();
    while (JSON.stringify(value) !== JSON.stringify(expected) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      value = await read();
    }
    return value;
  }

  it('keeps the accepted file byte for byte under its document, and nothing of refused, replayed or aborted uploads', async () => {
    const staged = await seedTenant('staged');
    const pdf = await generatePdf({ pages: 3, seed: 21 });
    const accepted = await upload(api.baseUrl, staged.apiKey, pdf.bytes, { mode: 'async' });
    expect(accepted.status, await accepted.clone().text()).toBe(202);
    const { id } = (await accepted.json()) as { id: string };
    expect((await sourceBytes(staged.tenantId, id)).equals(Buffer.from(pdf.bytes))).toBe(true);

    // Refused after the whole body was stored: each leaves no object behind.
    const truncated = await upload(api.baseUrl, staged.apiKey, pdf.bytes.subarray(0, Math.floor(pdf.bytes.length / 3)));
    expect(truncated.status).toBe(422);
    const encrypted = await upload(api.baseUrl, staged.apiKey, (await generatePdf({ pages: 2, encrypt: { userPassword: 'x' } })).bytes);
    expect(encrypted.status).toBe(422);
    const outside = await upload(api.baseUrl, staged.apiKey, pdf.bytes, { pages: '5-9' });
    expect(outside.status).toBe(422);

    // Idempotency: the first request keeps its file; a replay's and a conflicting reuse's copies go.
    const keyed = (bytes: Uint8Array) =>
      fetch(`${api.baseUrl}/v1/documents`, {
        method: 'POST',
        body: (() => {
          const form = new FormData();
          form.set('mode', 'async');
          form.set('file', new Blob([bytes], { type: 'application/pdf' }), 'doc.pdf');
          return form;
        })(),
        headers: { authorization: `Bearer ${staged.apiKey}`, 'idempotency-key': `staged-${id}` },
      });
    const first = await keyed(pdf.bytes);
    expect(first.status).toBe(202);
    const firstId = ((await first.json()) as { id: string }).id;
    const again = await keyed(pdf.bytes);
    expect(again.status).toBe(202);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    const reused = await keyed((await generatePdf({ pages: 2, seed: 22 })).bytes);
    expect(reused.status).toBe(422);
    expect((await problemBody(reused)).code).toBe('IDEMPOTENCY_KEY_REUSED');

    // A client that goes away mid-body.
    const aborted = new AbortController();
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(`--b\r\nContent-Disposition: form-data; name="file"; filename="x.pdf"\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.7\n`));
        controller.enqueue(new Uint8Array(512 * 1024));
        setTimeout(() => aborted.abort(), 300);
      },
    });
    await fetch(`${api.baseUrl}/v1/documents`, {
      method: 'POST',
      body,
      duplex: 'half',
      signal: aborted.signal,
      headers: { authorization: `Bearer ${staged.apiKey}`, 'content-type': 'multipart/form-data; boundary=b' },
    } as RequestInit).catch(() => undefined);

    expect(await eventually(() => storedSources(staged.tenantId), [id, firstId].sort())).toEqual([id, firstId].sort());
    expect(await eventually(async () => readdirSync(uploadDir).filter((f) => f.startsWith('docorch-upload-')), [])).toEqual([]);
  });
});

describe('a large upload keeps only its ends on disk, the whole file in the uploads bucket', () => {
  // Files up to 1 MiB (SYNC_MAX_BYTES is lower) are kept whole; past that, the first 1 MiB and the last 4 MiB.
  const largeDir = mkdtempSync(path.join(os.tmpdir(), 'docorch-api-large-'));
  let large: ServiceProcess;
  let owner: { tenantId: string; apiKey: string };

  beforeAll(async () => {
    owner = await seedTenant('large', { maxFileBytes: 64 << 20 });
    large = await startService({
      service: 'api',
      env: { MAX_UPLOAD_BYTES: String(64 << 20), SYNC_MAX_BYTES: '65536', SYNC_MAX_PAGES: '50', LOG_LEVEL: 'info', UPLOAD_TMP_DIR: largeDir },
    });
  });

  afterAll(async () => {
    await large?.stop();
  });

  /** Whether the API filled the local copy of `documentId` from the bucket (its log line). */
  function filled(documentId: string): boolean {
    return large.output.some((line) => line.includes('filled the local copy') && line.includes(documentId));
  }

  async function sha256Of(tenantId: string, documentId: string): Promise<string> {
    return createHash('sha256').update(await sourceBytes(tenantId, documentId)).digest('hex');
  }

  async function pagesTotal(documentId: string): Promise<number> {
    const res = await fetch(`${large.baseUrl}/v1/documents/${documentId}`, { headers: { authorization: `Bearer ${owner.apiKey}` } });
    return ((await res.json()) as { pages: { total: number } }).pages.total;
  }

  it('inspects a file whose structure is at its ends without fetching the middle; one spread through it, after filling the gap', { timeout: 120_000 }, async () => {
    const ends = path.join(largeDir, 'ends.fixture');
    await writeLargePdf(ends, 16 << 20);
    const endsBytes = readFileSync(ends);
    const a = await upload(large.baseUrl, owner.apiKey, endsBytes, { mode: 'async' });
    expect(a.status, await a.clone().text()).toBe(202);
    const aId = ((await a.json()) as { id: string }).id;
    expect(await pagesTotal(aId)).toBe(3);
    expect(await sha256Of(owner.tenantId, aId)).toBe(createHash('sha256').update(endsBytes).digest('hex'));
    expect(filled(aId)).toBe(false);

    // Cross-reference sections every 4 MiB: PDFium needs the ones in the gap.
    const spread = path.join(largeDir, 'spread.fixture');
    await writeLargePdf(spread, 16 << 20, { updates: 4 });
    const spreadBytes = readFileSync(spread);
    const b = await upload(large.baseUrl, owner.apiKey, spreadBytes, { mode: 'async' });
    expect(b.status, await b.clone().text()).toBe(202);
    const bId = ((await b.json()) as { id: string }).id;
    expect(await pagesTotal(bId)).toBe(3);
    expect(await sha256Of(owner.tenantId, bId)).toBe(createHash('sha256').update(spreadBytes).digest('hex'));
    expect(filled(bId)).toBe(true);
  });

  it('answers a large file on the sync path from the whole file, and a large damaged one with 422 BAD_PDF', { timeout: 120_000 }, async () => {
    const ends = path.join(largeDir, 'sync.fixture');
    await writeLargePdf(ends, 12 << 20);
    const res = await upload(large.baseUrl, owner.apiKey, readFileSync(ends), { mode: 'sync' });
    expect(res.status, await res.clone().text()).toBe(200);
    const result = (await res.json()) as { documentId: string; pages: { total: number; analysed: number } };
    expect(result.pages).toMatchObject({ total: 3, analysed: 3 });
    expect(filled(result.documentId)).toBe(true);

    // A header and 12 MiB of nothing: PDFium scans for objects, reads the gap, and the whole file is BAD_PDF.
    const damaged = Buffer.concat([Buffer.from('%PDF-1.7\n'), Buffer.alloc(12 << 20, 0x20)]);
    const bad = await upload(large.baseUrl, owner.apiKey, damaged, { mode: 'async' });
    expect(bad.status).toBe(422);
    expect((await problemBody(bad)).code).toBe('BAD_PDF');
    expect(large.output.filter((line) => line.includes('filled the local copy')).length).toBe(3);
    // Every temp file went with its request (fixtures aside).
    const deadline = Date.now() + 10_000;
    while (readdirSync(largeDir).some((f) => f.startsWith('docorch-upload-')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(readdirSync(largeDir).filter((f) => f.startsWith('docorch-upload-'))).toEqual([]);
  });
});
