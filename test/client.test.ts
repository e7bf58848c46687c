/**
 * The typed client (@docorch/client) and the event stream against the whole local pipeline (API,
 * workers, aggregator, emulators):
 * - a submit whose connection drops after the API took the upload is retried with the same
 *   Idempotency-Key and creates one document;
 * - a real 429 (CONCURRENCY_LIMIT, Retry-After: 5) is waited out;
 * - waitForResult reports every chunk and resolves with the result;
 * - GET /events of a 60-page document carries every chunk completion and the end; a client that
 *   reconnects with Last-Event-ID gets the rest without gaps or repeats.
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createParser } from 'eventsource-parser';
import { ConflictError, DocorchClient, NotFoundError, RateLimitError, type DocumentEvent, type ProgressUpdate } from '@docorch/client';
import { generatePdf, startPipeline, type Pipeline } from '@docorch/testkit';
import { waitForTerminal } from './helpers.js';

/** A TCP proxy to the API that, for the first `drop` connections, lets the request through and cuts the connection as the answer starts. */
async function droppingProxy(target: URL, drop: number): Promise<{ url: string; dropped: () => number; close: () => Promise<void> }> {
  let connections = 0;
  let dropped = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const n = ++connections;
    const upstream = net.connect(Number(target.port), target.hostname);
    sockets.add(client).add(upstream);
    client.pipe(upstream);
    upstream.on('data', (chunk: Buffer) => {
      if (n <= drop) {
        // The API has the whole upload and answered: the client never sees it.
        dropped++;
        client.destroy();
        upstream.destroy();
        return;
      }
      client.write(chunk);
    });
    upstream.on('end', () => client.end());
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    dropped: () => dropped,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        // Kept-alive connections would hold close() for the API's keep-alive time.
        for (const s of sockets) s.destroy();
      }),
  };
}

describe('the typed client against the local pipeline', () => {
  let pipeline: Pipeline;
  let dir: string;

  beforeAll(async () => {
    pipeline = await startPipeline({ workers: 2, shards: 2, prefix: 'client', plan: { concurrentDocuments: 1 } });
    dir = await mkdtemp(path.join(tmpdir(), 'docorch-client-'));
  }, 120_000);

  afterAll(async () => {
    await pipeline?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('retries a submit whose connection dropped: one document (Idempotency-Key replay)', async () => {
    const proxy = await droppingProxy(new URL(pipeline.api.baseUrl), 1);
    try {
      const file = path.join(dir, 'three.pdf');
      await writeFile(file, (await generatePdf({ pages: 3, seed: 61 })).bytes);
      const client = new DocorchClient({ baseUrl: proxy.url, apiKey: pipeline.apiKey, retryBaseMs: 100 });
      const outcome = await client.submit(file, { mode: 'async' });
      expect(proxy.dropped()).toBe(1);
      expect(outcome.replayed).toBe(true);
      await waitForTerminal(pipeline, outcome.id, 60_000);
      const direct = new DocorchClient({ baseUrl: pipeline.api.baseUrl, apiKey: pipeline.apiKey });
      const all = [];
      for await (const d of direct.list({ pageSize: 2 })) all.push(d);
      expect(all.map((d) => d.id)).toEqual([outcome.id]);
      expect(all[0]?.filename).toBe('three.pdf');
    } finally {
      await proxy.close();
    }
  }, 90_000);

  it('waits out a 429 with Retry-After, reports progress, and resolves with the result', async () => {
    const statuses: number[] = [];
    const client = new DocorchClient({
      baseUrl: pipeline.api.baseUrl,
      apiKey: pipeline.apiKey,
      fetch: async (input, init) => {
        const res = await fetch(input, init);
        if (String(input).endsWith('/v1/documents') && init?.method === 'POST') statuses.push(res.status);
        return res;
      },
    });
    const big = await generatePdf({ pages: 60, seed: 62 });
    // A stream input (spooled by the client, so that its retries can send it again).
    const first = await client.submit(Readable.from([Buffer.from(big.bytes)]), { mode: 'async', pagesPerChunk: 5, filename: 'sixty.pdf' });
    // The plan allows one document in flight: this one waits (429, Retry-After 5) until the first is done.
    const second = await client.submit(new Uint8Array((await generatePdf({ pages: 2, seed: 63 })).bytes), { mode: 'async', filename: 'two.pdf' });
    expect(statuses[0]).toBe(202);
    expect(statuses).toContain(429);
    expect(statuses.at(-1)).toBe(202);
    await expect(client.result(first.id)).resolves.toBeDefined(); // the first finished before the retry got in

    const updates: ProgressUpdate[] = [];
    const result = await client.waitForResult(second.id, { onProgress: (u) => updates.push(u) });
    expect(result.status).toBe('completed');
    expect(updates.at(-1)?.status).toBe('completed');

    // A fresh 60-page document: waitForResult hears every chunk (12), then resolves.
    const third = await client.submit(Buffer.from(big.bytes), { mode: 'async', pagesPerChunk: 5, filename: 'sixty-again.pdf' });
    const progress: ProgressUpdate[] = [];
    const full = await client.waitForResult(third.id, { onProgress: (u) => progress.push(u) });
    expect(full.pages.total).toBe(60);
    const chunks = progress.filter((u) => u.chunk).map((u) => u.chunk?.index);
    expect(new Set(chunks).size).toBe(12);
    expect(progress.at(-1)?.progress.percent).toBe(100);
    const percents = progress.map((u) => u.progress.percent);
    expect(percents).toEqual([...percents].sort((a, b) => a - b));
  }, 120_000);

  it('answers typed errors: NotFoundError, ConflictError RESULT_NOT_READY, RateLimitError without retries', async () => {
    const client = new DocorchClient({ baseUrl: pipeline.api.baseUrl, apiKey: pipeline.apiKey, maxRetries: 0 });
    await expect(client.get('doc_doesnotexist00')).rejects.toBeInstanceOf(NotFoundError);
    const pdf = await generatePdf({ pages: 30, seed: 64 });
    const running = await client.submit(Buffer.from(pdf.bytes), { mode: 'async', pagesPerChunk: 2 });
    const notReady = await client.result(running.id).catch((e: unknown) => e);
    if (notReady instanceof ConflictError) {
      expect(notReady.code).toBe('RESULT_NOT_READY');
      expect(notReady.problem?.status).toBe(409);
    }
    const limited = await client.submit(Buffer.from(pdf.bytes), { mode: 'async' }).catch((e: unknown) => e);
    if (limited instanceof RateLimitError) {
      expect(limited.code).toBe('CONCURRENCY_LIMIT');
      expect(limited.retryAfterSeconds).toBe(5);
    }
    await waitForTerminal(pipeline, running.id, 60_000);
  }, 90_000);

  it('streams every chunk of a 60-page document as events, and resumes from Last-Event-ID without gaps or repeats', async () => {
    const client = new DocorchClient({ baseUrl: pipeline.api.baseUrl, apiKey: pipeline.apiKey });
    const pdf = await generatePdf({ pages: 60, seed: 65 });
    const doc = await client.submit(Buffer.from(pdf.bytes), { mode: 'async', pagesPerChunk: 3 });

    // A raw EventSource-like reader that drops the connection right after its 5th chunk event
    // (events that arrived in the same read are lost with it), remembering the last id it handled.
    const first: DocumentEvent[] = [];
    const abort = new AbortController();
    const res = await fetch(`${pipeline.api.baseUrl}/v1/documents/${doc.id}/events`, { headers: { authorization: `Bearer ${pipeline.apiKey}`, accept: 'text/event-stream' }, signal: abort.signal });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const parser = createParser({
      onEvent: (m) => {
        if (first.filter((e) => e.type === 'chunk').length < 5) first.push({ id: m.id ?? '', type: m.event, data: JSON.parse(m.data) } as DocumentEvent);
      },
    });
    const decoder = new TextDecoder();
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    while (first.filter((e) => e.type === 'chunk').length < 5) {
      const { value, done } = await reader.read();
      if (done) break;
      parser.feed(decoder.decode(value, { stream: true }));
    }
    abort.abort();
    const lastId = first.at(-1)?.id;
    expect(lastId).toMatch(/^e1\./);

    // Reconnect with Last-Event-ID (the client does what EventSource does).
    const rest: DocumentEvent[] = [];
    for await (const e of client.events(doc.id, { lastEventId: lastId })) rest.push(e);
    const chunkIndexes = [...first, ...rest].filter((e) => e.type === 'chunk').map((e) => (e as Extract<DocumentEvent, { type: 'chunk' }>).data.index);
    expect(chunkIndexes.slice().sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(new Set(chunkIndexes).size).toBe(20);
    const end = rest.at(-1);
    expect(end?.type).toBe('end');
    expect(end?.data).toMatchObject({ status: 'completed', result: `/v1/documents/${doc.id}/result` });
    const chunk7 = [...first, ...rest].find((e) => e.type === 'chunk' && e.data.index === 7);
    expect(chunk7?.data).toMatchObject({ status: 'succeeded', pages: [22, 24] });

    // After the end, a reconnect is told there is nothing more (204: EventSource stops).
    const after = await fetch(`${pipeline.api.baseUrl}/v1/documents/${doc.id}/events`, { headers: { authorization: `Bearer ${pipeline.apiKey}`, 'last-event-id': end?.id ?? '' } });
    expect(after.status).toBe(204);
  }, 120_000);
});
