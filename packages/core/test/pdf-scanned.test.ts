/**
 * Scanned pages (issue 4): a page without a text layer that paints an image comes out of
 * extraction with a PNG rendering of itself; text pages and blank pages do not, and a page that
 * cannot be rendered never fails the document.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import workerpool from 'workerpool';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateBombPdf, generatePdf } from '../../testkit/src/pdf/generate.js';
import { loadConfig } from '../src/config.js';
import { createPdfExtractor, type PdfExtractorConfig, type ProcessPdfExtractor } from '../src/pdf/extractor.js';
import { MAX_IMAGE_SIDE, renderScale } from '../src/pdf/page-image.js';
import { ocrTaskOptions, type OcrTaskOptions, type PagesTask, type ThreadResult } from '../src/pdf/protocol.js';
import type { ExtractedPage } from '../src/pdf/types.js';
import { createLogger } from '../src/telemetry/logger.js';
import { threadScript } from '../src/threads/thread-script.js';

const logger = createLogger({ service: 'pdf-scanned-test', level: 'silent' });
const defaults = loadConfig({});

function extractorWith(overrides: Partial<PdfExtractorConfig> = {}): ProcessPdfExtractor {
  return createPdfExtractor({ ...defaults, PDF_THREADS: 1, ...overrides }, { logger });
}

/** Width and height of a PNG from its IHDR chunk. */
function pngSize(base64: string): { width: number; height: number } {
  const bytes = Buffer.from(base64, 'base64');
  expect(bytes.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
  expect(bytes.subarray(12, 16).toString('latin1')).toBe('IHDR');
  return { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20) };
}

const imaged = (pages: readonly ExtractedPage[]) => pages.filter((p) => p.image).map((p) => p.page);

let dir: string;
const file = (name: string) => path.join(dir, name);

// Pages: 1 text, 2 scanned, 3 blank, 4 scanned, 5 text (US Letter, 612 x 792 points).
const MIXED = { pages: 5, imageOnlyPages: [2, 4], blankPages: [3], seed: 7 };

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'docorch-scanned-test-'));
  await writeFile(file('mixed.pdf'), (await generatePdf(MIXED)).bytes);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('renderScale', () => {
  it('is dpi / 72 within the caps', () => {
    expect(renderScale(612, 792, { dpi: 150, maxPixels: 4_000_000 })).toBeCloseTo(150 / 72);
  });
  it('lowers the scale to the pixel cap', () => {
    const scale = renderScale(612, 792, { dpi: 300, maxPixels: 1_000_000 });
    expect(Math.floor(612 * scale) * Math.floor(792 * scale)).toBeLessThanOrEqual(1_000_000);
    expect(612 * scale * 792 * scale).toBeGreaterThan(990_000);
  });
  it('keeps the longest side within MAX_IMAGE_SIDE', () => {
    const scale = renderScale(72, 14_400, { dpi: 150, maxPixels: 100_000_000 });
    expect(14_400 * scale).toBeLessThanOrEqual(MAX_IMAGE_SIDE);
  });
});

describe('ocrTaskOptions', () => {
  it('takes the config defaults, and is false with PDF_OCR=off', () => {
    expect(ocrTaskOptions()).toEqual({ dpi: 150, maxPixels: 4_000_000, maxBytes: 64 * 1024 * 1024 });
    expect(ocrTaskOptions(defaults)).toEqual(ocrTaskOptions());
    expect(ocrTaskOptions({ ...defaults, PDF_OCR: 'off' })).toBe(false);
    expect(loadConfig({ PDF_OCR: 'off', PDF_OCR_DPI: '300' })).toMatchObject({ PDF_OCR: 'off', PDF_OCR_DPI: 300 });
    expect(() => loadConfig({ PDF_OCR_DPI: '1200' })).toThrow(/PDF_OCR_DPI/);
  });
});

describe('extracting scanned pages', () => {
  let extractor: ProcessPdfExtractor;
  beforeAll(() => {
    extractor = extractorWith();
  });
  afterAll(async () => {
    await extractor.close();
  });

  it('renders image-only pages to PNG at 150 dpi, and leaves text and blank pages without an image', async () => {
    const { pages } = await extractor.extract(file('mixed.pdf'), { maxPages: 100 });
    expect(pages.map((p) => p.hasTextLayer)).toEqual([true, false, false, false, true]);
    expect(imaged(pages)).toEqual([2, 4]);
    for (const n of [2, 4]) {
      const page = pages[n - 1] as ExtractedPage;
      expect(page.text).toBe('');
      expect(page.image?.mimeType).toBe('image/png');
      // 8.5 x 11 inches at 150 dpi.
      expect(pngSize(page.image?.data ?? '')).toEqual({ width: 1275, height: 1650 });
    }
    expect(pages[2]).toEqual({ page: 3, text: '', hasTextLayer: false });
    expect(pages[0]?.text).toContain('Page 1');
  });

  it('renders the scanned pages of a selection split into slices', async () => {
    const pdf = await generatePdf({ pages: 60, imageOnlyPages: [5, 31, 58], seed: 8 });
    await writeFile(file('sliced.pdf'), pdf.bytes);
    const split = extractorWith({ PDF_THREADS: 2, PDF_SLICE_PAGES: 20 });
    try {
      const { pages } = await split.extract(file('sliced.pdf'), { maxPages: 100 });
      expect(split.stats().tasks).toBeGreaterThan(1);
      expect(imaged(pages)).toEqual([5, 31, 58]);
      expect(pages.filter((p) => !p.hasTextLayer).map((p) => p.page)).toEqual([5, 31, 58]);
    } finally {
      await split.close();
    }
  });

  it('renders a page whose image inflates far past the buffer memory limit within that limit, without failing the document', async () => {
    const small = extractorWith({ PDF_MAX_BUFFER_MB: 64, PDF_MAX_HEAP_MB: 256 });
    try {
      // One page painting a 512 MiB grey-scale image: PDFium decodes it scanline by scanline into
      // the page bitmap, so it renders inside PDFium's 64 MiB memory (pdf.js had to give up on it).
      await writeFile(file('image-bomb.pdf'), await generateBombPdf('image', 512 << 20));
      const bomb = await small.extract(file('image-bomb.pdf'), { maxPages: 10 });
      expect(bomb.pages).toHaveLength(1);
      expect(bomb.pages[0]).toMatchObject({ page: 1, text: '', hasTextLayer: false });
      if (bomb.pages[0]?.image) expect(pngSize(bomb.pages[0].image.data).width).toBeGreaterThan(0);
      expect(small.stats().workerDeaths).toBe(0);
      // The same worker goes on rendering other documents.
      const after = await small.extract(file('mixed.pdf'), { maxPages: 100 });
      expect(imaged(after.pages)).toEqual([2, 4]);
    } finally {
      await small.close();
    }
  }, 120_000);

  // Needs extractor.ts to pass the PDF_OCR_* settings into its tasks (`ocr: ocrTaskOptions(config)`).
  it('follows PDF_OCR, PDF_OCR_DPI and PDF_OCR_MAX_PIXELS', async () => {
    const off = extractorWith({ PDF_OCR: 'off' });
    const coarse = extractorWith({ PDF_OCR_DPI: 72 });
    const capped = extractorWith({ PDF_OCR_DPI: 300, PDF_OCR_MAX_PIXELS: 200_000 });
    try {
      const none = await off.extract(file('mixed.pdf'), { maxPages: 100 });
      expect(imaged(none.pages)).toEqual([]);
      expect(none.pages.map((p) => p.hasTextLayer)).toEqual([true, false, false, false, true]);
      const at72 = await coarse.extract(file('mixed.pdf'), { maxPages: 100, pages: '2' });
      expect(pngSize(at72.pages[0]?.image?.data ?? '')).toEqual({ width: 612, height: 792 });
      const small = await capped.extract(file('mixed.pdf'), { maxPages: 100, pages: '4' });
      const { width, height } = pngSize(small.pages[0]?.image?.data ?? '');
      expect(width * height).toBeLessThanOrEqual(200_000);
      expect(width * height).toBeGreaterThan(195_000);
      expect(width / height).toBeCloseTo(612 / 792, 2);
    } finally {
      await Promise.all([off.close(), coarse.close(), capped.close()]);
    }
  });
});

describe('the PDF worker process with OCR task options', () => {
  // The worker's side of the protocol, without the extractor in front of it.
  let pool: ReturnType<typeof workerpool.pool>;
  const output: string[] = [];
  beforeAll(() => {
    const script = threadScript(import.meta.url, '../src/pdf/extract-thread');
    pool = workerpool.pool(script.filename, {
      workerType: 'process',
      maxWorkers: 1,
      emitStdStreams: true,
      forkOpts: { execArgv: [...script.execArgv, '--expose-gc'] },
    });
  });
  afterAll(async () => {
    await pool.terminate(true);
  });

  async function run(ocr: OcrTaskOptions | false, pages = [1, 2, 3, 4, 5]): Promise<ExtractedPage[]> {
    const task: PagesTask = { kind: 'pages', path: file('mixed.pdf'), maxBufferBytes: 512 << 20, pages, maxTextBytes: 1 << 26, ocr };
    const result = (await pool.exec('run', [task], {
      on: (event: { stderr?: string; stdout?: string }) => {
        if (event.stderr) output.push(event.stderr);
      },
    })) as ThreadResult;
    if (!result.ok) throw new Error(`worker answered ${result.error.code}: ${result.error.message}`);
    return result.pages ?? [];
  }

  it('renders nothing when the task says ocr: false', async () => {
    expect(imaged(await run(false))).toEqual([]);
  });

  it('renders at the task resolution', async () => {
    const pages = await run({ dpi: 72, maxPixels: 4_000_000, maxBytes: 1 << 26 }, [2]);
    expect(pngSize(pages[0]?.image?.data ?? '')).toEqual({ width: 612, height: 792 });
  });

  it('stops rendering when the task image budget is spent, and says so', async () => {
    const first = await run({ dpi: 72, maxPixels: 4_000_000, maxBytes: 1 << 26 }, [2]);
    const oneImage = first[0]?.image?.data.length ?? 0;
    expect(oneImage).toBeGreaterThan(0);
    output.length = 0;
    // Room for one image: page 2 gets it, page 4 does not; the text is unaffected.
    const pages = await run({ dpi: 72, maxPixels: 4_000_000, maxBytes: oneImage + 10 });
    expect(imaged(pages)).toEqual([2]);
    expect(pages[4]?.text).toContain('Page 5');
    expect(output.join('')).toMatch(/scanned pages left without an image: page 4: the task's page images reached the limit/);
  });
});
