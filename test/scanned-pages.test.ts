/**
 * Scanned pages end to end (issue 4), on a generated 12-page PDF whose pages 3, 7 and 8 are
 * images with no text layer, in chunks of 4 pages:
 * (a) async with the Gemini analyzer against the fake server: those pages reach the model as
 *     inline image parts (seen in the fake's request log), and the result marks them (`ocr` and
 *     `ocrPages` per chunk, `ocrPages` for the document);
 * (b) sync with the local analyzer, which reads text only: they are failed pages with
 *     NO_TEXT_LAYER, the document ends completed_with_errors, and the other pages are analysed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  generatePdf,
  startFakeGemini,
  startPipeline,
  startService,
  type FakeGemini,
  type GeneratedPdf,
  type Pipeline,
  type ServiceProcess,
} from '@docorch/testkit';
import { upload } from '../services/api/test/helpers.js';
import { getResult, submitPdf, waitForTerminal } from './helpers.js';

const SCANNED = [3, 7, 8];
const PAGES_PER_CHUNK = 4;

describe('scanned pages', () => {
  let fake: FakeGemini;
  let pipeline: Pipeline;
  let pdf: GeneratedPdf;

  beforeAll(async () => {
    pdf = await generatePdf({ pages: 12, imageOnlyPages: SCANNED, seed: 12 });
    fake = await startFakeGemini({ latencyMs: 0 });
    pipeline = await startPipeline({
      workers: 1,
      shards: 2,
      prefix: 'scan',
      env: { LOG_LEVEL: 'warn', ANALYZER: 'gemini', GEMINI_API_KEY: 'test', GEMINI_BASE_URL: fake.url, GEMINI_RPM: '0' },
    });
  });
  afterAll(async () => {
    await pipeline?.stop();
    await fake?.close();
  });

  it('(a) async, Gemini: sends scanned pages as image parts and marks them in the result', { timeout: 180_000 }, async () => {
    const id = await submitPdf(pipeline, pdf.bytes, { pagesPerChunk: String(PAGES_PER_CHUNK) });
    const final = await waitForTerminal(pipeline, id, 150_000).catch((err: unknown) => {
      pipeline.workers.forEach((w, i) => console.error([`worker ${i + 1} output:`, ...w.output.slice(-40)].join('\n')));
      console.error(['aggregator output:', ...pipeline.aggregator.output.slice(-20)].join('\n'));
      throw err;
    });
    expect(final.status).toBe('completed');

    // Each chunk's (successful) request carried one PNG part per scanned page of the chunk, and
    // the page markup named every page of the chunk, scanned ones included.
    const chunkRequests = fake.log.filter((r) => r.pages.length > 0 && r.status === 200);
    expect(chunkRequests.map((r) => r.pages).sort((a, b) => (a[0] ?? 0) - (b[0] ?? 0))).toEqual([
      [1, 2, 3, 4],
      [5, 6, 7, 8],
      [9, 10, 11, 12],
    ]);
    for (const request of chunkRequests) {
      const scanned = request.pages.filter((p) => SCANNED.includes(p));
      expect(request.inlineData.map((d) => d.mimeType), `pages ${request.pages.join(',')}`).toEqual(scanned.map(() => 'image/png'));
      // A rendered US Letter page at 150 dpi, not an empty placeholder.
      for (const part of request.inlineData) expect(part.bytes).toBeGreaterThan(5_000);
    }

    const result = await getResult(pipeline, id);
    expect(result.status).toBe('completed');
    expect(result.failedPages).toEqual([]);
    expect(result.ocrPages).toEqual(SCANNED);
    const chunks = result.chunks as Array<{ index: number; status: string; ocr?: boolean; ocrPages?: number[] }>;
    expect(chunks.map((c) => ({ index: c.index, status: c.status, ocr: c.ocr, ocrPages: c.ocrPages }))).toEqual([
      { index: 0, status: 'succeeded', ocr: true, ocrPages: [3] },
      { index: 1, status: 'succeeded', ocr: true, ocrPages: [7, 8] },
      { index: 2, status: 'succeeded', ocr: undefined, ocrPages: undefined },
    ]);
  });

  it('(b) sync, local analyzer: scanned pages are failed pages with NO_TEXT_LAYER', { timeout: 120_000 }, async () => {
    let api: ServiceProcess | undefined;
    try {
      // The same resources and tenant, through an API process that analyses locally.
      api = await startService({ service: 'api', env: { ...pipeline.env, ANALYZER: 'local' } });
      const res = await upload(api.baseUrl, pipeline.apiKey, pdf.bytes, { mode: 'sync', pagesPerChunk: String(PAGES_PER_CHUNK) });
      expect(res.status, await res.clone().text()).toBe(200);
      const result = (await res.json()) as Record<string, any>;
      expect(result.analyzer).toBe('local/wink-nlp');
      expect(result.status).toBe('completed_with_errors');
      expect(result.failedPages).toEqual(SCANNED.map((page) => ({ page, code: 'NO_TEXT_LAYER' })));
      expect(result.ocrPages).toEqual([]);
      const chunks = result.chunks as Array<{ status: string; failedPages: unknown[]; summary: string; ocr?: boolean }>;
      expect(chunks.map((c) => c.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);
      expect(chunks.map((c) => c.failedPages)).toEqual([
        [{ page: 3, code: 'NO_TEXT_LAYER' }],
        [
          { page: 7, code: 'NO_TEXT_LAYER' },
          { page: 8, code: 'NO_TEXT_LAYER' },
        ],
        [],
      ]);
      expect(chunks.some((c) => c.ocr)).toBe(false);
      // The rest of each chunk was analysed: pages 5 and 6 alone give chunk 1 its summary.
      for (const chunk of chunks) expect(chunk.summary.length).toBeGreaterThan(0);
      expect((result.entities as unknown[]).length).toBeGreaterThan(0);
      // Stored like any job: the status and the result read back the same.
      const stored = await getResult({ api, apiKey: pipeline.apiKey }, result.documentId as string);
      expect(stored.failedPages).toEqual(result.failedPages);
      expect(stored.status).toBe('completed_with_errors');
    } finally {
      await api?.stop();
    }
  });
});
