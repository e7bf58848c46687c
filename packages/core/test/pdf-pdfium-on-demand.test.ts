/**
 * PDFium reads a large file on demand (FPDF_LoadCustomDocument, pdf/pdfium.ts openFile) instead
 * of copying it into its memory: a 200 MB document whose pages are a few KB is opened without
 * its WebAssembly memory growing by the file, and reads exactly as when held in memory; every
 * real-world file of the shared corpus reads the same both ways (page count, the text of its
 * first pages, the same refusals); a file that shrinks under an open document fails its reads,
 * not the process; closing a document closes its file. Told that a file lacks some bytes (a gap,
 * as in the API's copy of a large upload), PDFium never gets them: it answers from the rest when it
 * can, exactly as from the whole file, and otherwise says it needed the gap.
 */
import { existsSync, readdirSync, readlinkSync, statSync, truncateSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeLargePdf, writePdf } from '@docorch/testkit';
import { PdfiumEngine, PdfiumOpenError, type PdfiumDocument } from '../src/pdf/pdfium.js';
import type { FileGap } from '../src/pdf/types.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const corpus = path.resolve(repoRoot, '../shared/corpus');
const corpusPresent = existsSync(path.join(corpus, 'pdfjs')) && existsSync(path.join(corpus, 'qpdf'));
if (!corpusPresent) console.warn(`pdf-pdfium-on-demand.test: the corpus comparison is skipped, the shared corpus is absent (looked in ${corpus})`);

/** Every PDF of the shared corpus. */
function corpusFiles(): string[] {
  return ['pdfjs', 'qpdf'].flatMap((folder) =>
    readdirSync(path.join(corpus, folder))
      .filter((name) => name.toLowerCase().endsWith('.pdf'))
      .map((name) => path.join(corpus, folder, name)),
  );
}

const IN_MEMORY = { inMemoryMaxBytes: Number.MAX_SAFE_INTEGER };
const ON_DEMAND = { inMemoryMaxBytes: 0 };

/** Page count and the text of the first `pages` pages, or why it could not be opened. */
function readAll(engine: PdfiumEngine, file: string, options: { inMemoryMaxBytes: number }, pages = 20): string {
  let doc: PdfiumDocument;
  try {
    doc = engine.openFile(file, statSync(file).size, options);
  } catch (err) {
    return `refused: ${err instanceof Error ? err.message : String(err)}`;
  }
  try {
    const texts: string[] = [];
    for (let p = 1; p <= Math.min(doc.pageCount, pages); p++) {
      try {
        texts.push(doc.page(p, { maxChars: 1_000_000, lookForImages: true }).text);
      } catch (err) {
        texts.push(`page error: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    return `${doc.pageCount} pages\n${texts.join('\f')}`;
  } finally {
    doc.close();
  }
}

/** What an inspection learns (page count and title, or the refusal), or 'gap' when it needed the gap. */
function verdict(engine: PdfiumEngine, file: string, gap?: FileGap): string {
  let doc: PdfiumDocument;
  try {
    doc = engine.openFile(file, statSync(file).size, gap ? { gap } : IN_MEMORY);
  } catch (err) {
    if (err instanceof PdfiumOpenError && err.reason === 'gap') return 'gap';
    return `refused: ${err instanceof PdfiumOpenError ? err.reason : String(err)}`;
  }
  try {
    let title: string;
    try {
      title = String(doc.title());
    } catch (err) {
      title = `title error: ${String(err)}`;
    }
    return doc.gapRead ? 'gap' : `${doc.pageCount} pages, ${doc.version}, title ${title}`;
  } finally {
    doc.close();
  }
}

/** Files this process has open (Linux). */
function openFiles(): string[] {
  return readdirSync('/proc/self/fd').flatMap((fd) => {
    try {
      return [readlinkSync(`/proc/self/fd/${fd}`)];
    } catch {
      return [];
    }
  });
}

describe('PDFium reading a file on demand', () => {
  let engine: PdfiumEngine;
  let dir: string;

  beforeAll(async () => {
    engine = await PdfiumEngine.create(256 << 20);
    dir = await mkdtemp(path.join(os.tmpdir(), 'docorch-on-demand-'));
  });

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('opens a 200 MB document without holding it, and reads it as from memory', { timeout: 60_000 }, async () => {
    const large = path.join(dir, 'large.pdf');
    await writeLargePdf(large, 200 << 20);
    const before = engine.memoryBytes;
    const doc = engine.openFile(large, statSync(large).size);
    expect(doc.pageCount).toBe(3);
    const text = doc.page(1, { maxChars: 100_000, lookForImages: false }).text;
    expect(text).toContain('Page 1');
    expect(openFiles()).toContain(large);
    doc.close();
    expect(openFiles()).not.toContain(large);
    // The file never entered the module's memory (it would have grown by 200 MB).
    expect(engine.memoryBytes - before).toBeLessThan(32 << 20);

    const small = path.join(dir, 'small.pdf');
    await writePdf(small, { pages: 12, seed: 12 });
    expect(readAll(engine, small, ON_DEMAND)).toBe(readAll(engine, small, IN_MEMORY));
  });

  it('fails the reads of a file cut short under an open document, and keeps working', async () => {
    const file = path.join(dir, 'cut.pdf');
    await writePdf(file, { pages: 30, seed: 30 });
    const doc = engine.openFile(file, statSync(file).size, ON_DEMAND);
    truncateSync(file, 2_000);
    // PDFium asks for blocks past the end: they fail, and so does the page (or it reads empty).
    for (let p = 1; p <= doc.pageCount; p++) {
      try {
        doc.page(p, { maxChars: 100_000, lookForImages: false });
      } catch {
        // a page it cannot load: fine, as long as the process and the engine survive
      }
    }
    doc.close();
    expect(engine.broken).toBe(false);
    expect(openFiles()).not.toContain(file);
    const again = path.join(dir, 'again.pdf');
    await writePdf(again, { pages: 2, seed: 2 });
    expect(readAll(engine, again, ON_DEMAND)).toMatch(/^2 pages\n/);
  });

  it('inspects a large file without its gap when its structure is at its ends, and says when it needed the gap', { timeout: 60_000 }, async () => {
    const ends = path.join(dir, 'ends.pdf');
    await writeLargePdf(ends, 20 << 20);
    const size = statSync(ends).size;
    const gap = { start: 1 << 20, end: size - (1 << 20) };
    const doc = engine.openFile(ends, size, { gap });
    expect(doc.pageCount).toBe(3);
    expect(doc.page(2, { maxChars: 100_000, lookForImages: false }).text).toContain('Page 2');
    expect(doc.gapRead).toBe(false);
    doc.close();
    expect(verdict(engine, ends, gap)).toBe(verdict(engine, ends));

    // Cross-reference sections spread through the file: the one in the middle is in the gap.
    const spread = path.join(dir, 'spread.pdf');
    await writeLargePdf(spread, 20 << 20, { updates: 2 });
    const spreadSize = statSync(spread).size;
    expect(verdict(engine, spread, { start: 1 << 20, end: spreadSize - (1 << 20) })).toBe('gap');
    expect(verdict(engine, spread)).toMatch(/^3 pages/);
    expect(engine.broken).toBe(false);
    expect(openFiles()).not.toContain(spread);
  });

  it.skipIf(!corpusPresent)('answers every corpus file with a gap either as the whole file or "needed the gap"', { timeout: 120_000 }, async () => {
    const files = corpusFiles();
    const differ: string[] = [];
    let withoutGap = 0;
    let faults = 0;
    // Its own instance: a file that faults PDFium (it happens on this corpus) gets a new one, as in the PDF workers.
    let own = await PdfiumEngine.create(256 << 20);
    let gapFaults = 0;
    const read = async (file: string, gap?: FileGap): Promise<string> => {
      const answer = verdict(own, file, gap);
      if (!own.broken) return answer;
      own = await PdfiumEngine.create(256 << 20);
      // PDFium may fault after a read it was refused: that too is "needed the gap".
      if (answer === 'gap') gapFaults++;
      return answer === 'gap' ? 'gap' : 'fault';
    };
    for (const file of files) {
      const size = statSync(file).size;
      // The middle third missing: the shape of the API's copy, scaled down to the corpus's sizes.
      const gap = { start: Math.floor(size / 3), end: Math.floor((2 * size) / 3) };
      const whole = await read(file);
      const partial = await read(file, gap);
      if (whole === 'fault') faults++;
      if (partial === 'gap') continue;
      withoutGap++;
      if (partial !== whole) differ.push(`${path.basename(file)}: ${whole} | ${partial}`);
    }
    console.log(`PDFium with the middle third missing: ${files.length} corpus files, ${withoutGap} answered without it, ${differ.length} differ from the whole file (${faults} fault PDFium whole, ${gapFaults} after a refused read of the gap)`);
    expect(differ).toEqual([]);
    expect(files.length).toBeGreaterThan(400);
  });

  it.skipIf(!corpusPresent)('reads every corpus file the same on demand as from memory', { timeout: 120_000 }, () => {
    const files = corpusFiles();
    const differ: string[] = [];
    let engineNow = engine;
    for (const file of files) {
      const memory = readAll(engineNow, file, IN_MEMORY);
      if (engineNow.broken) {
        differ.push(`${path.basename(file)}: the engine faulted from memory`);
        break;
      }
      const demand = readAll(engineNow, file, ON_DEMAND);
      if (demand !== memory) differ.push(`${path.basename(file)}: ${memory.slice(0, 60)} | ${demand.slice(0, 60)}`);
    }
    console.log(`PDFium on demand vs in memory: ${files.length} corpus files, ${differ.length} differ`);
    expect(differ).toEqual([]);
    expect(files.length).toBeGreaterThan(400);
  });
});
