/**
 * Entry of a PDF worker process (a workerpool child process, see ./extractor.ts for why a process
 * and not a thread): opens a PDF with PDFium (./pdfium.ts) and extracts page text, and renders
 * scanned pages to PNG (./page-image.ts); a file PDFium refuses as damaged is read with pdf.js
 * instead (./pdfjs-fallback.ts, text only). Everything it returns is plain data (see
 * ./protocol.ts), and `run` never throws: failures come back as `{ok: false}`.
 */
import { readFile, stat } from 'node:fs/promises';
import os from 'node:os';
import workerpool from 'workerpool';
import { DocorchError } from '../errors.js';
import { installMemoryGuard, type MemoryGuard } from './memory-guard.js';
import { PageImager } from './page-image.js';
import { parsePageRange } from './page-range.js';
import { IN_MEMORY_MAX_BYTES, PdfiumEngine, PdfiumFault, PdfiumOpenError, PdfiumPageError, type PdfiumDocument } from './pdfium.js';
// Loads pdf.js now, before the buffer guard is installed by the first task (see that module).
import { FallbackOpenError, openWithPdfjs, type FallbackDocument } from './pdfjs-fallback.js';
import {
  ocrTaskOptions,
  toThreadError,
  type OcrTaskOptions,
  type OpenTask,
  type PageFailure,
  type PagesEvent,
  type PagesTask,
  type ThreadDiagnostics,
  type ThreadResult,
  type ThreadTask,
} from './protocol.js';
import { hasText, normalizePageText } from './text.js';
import { FileGapError, type ExtractedPage, type FileGap, type PdfInfo } from './types.js';

// Nothing here should reject unhandled; if anything does, it is counted and reported with the
// next answer rather than taking down the process with an unrelated task in flight.
let rejections = 0;
let lastRejection: string | undefined;
process.on('unhandledRejection', (reason) => {
  rejections++;
  lastRejection = reason instanceof Error ? `${reason.name}: ${reason.message}` : String(reason);
});

/**
 * The PDFium instance of this process, its WebAssembly memory bounded to the task's buffer budget
 * plus the file (which PDFium reads from its own memory).
 * Made again after a fault, and after a document that left its memory above {@link RECYCLE_FRACTION}
 * of the budget (WebAssembly memory never shrinks; a new instance gives it back).
 */
let engine: PdfiumEngine | undefined;
const RECYCLE_FRACTION = 0.5;

async function pdfium(maxBytes: number): Promise<PdfiumEngine> {
  // A larger bound serves a smaller file too; a smaller one is made again when the memory is released.
  if (!engine || engine.broken || engine.maxBytes < maxBytes) {
    if (kept) release(kept);
    engine = await PdfiumEngine.create(maxBytes);
  }
  return engine;
}

let guard: MemoryGuard | undefined;
let maxBufferBytes = 0;
let niced = false;

/** The task handler, registered with workerpool as `run`. */
export async function run(task: ThreadTask): Promise<ThreadResult> {
  // Tells the caller the task now runs here (a deadline before this is a busy pool, not a slow file).
  workerpool.workerEmit({ started: true });
  // The guard bounds this process's JavaScript buffers (the file's bytes, rendered pixels, PNGs);
  // PDFium's own memory is bounded by its WebAssembly memory maximum, at the same budget.
  maxBufferBytes = task.maxBufferBytes;
  guard ??= installMemoryGuard(maxBufferBytes);
  if (task.nice !== undefined && task.nice > 0 && !niced) {
    niced = true;
    // Parsing is batch work: below the process's other work (lease renewals, claims, requests).
    try {
      os.setPriority(task.nice);
    } catch {
      // Not permitted here (a lower priority always is on Linux; other platforms may refuse): run as is.
    }
  }
  guard.reset();
  try {
    const result = task.kind === 'open' ? await runOpen(task) : await runPages(task);
    return { ...result, ...diagnostics() };
  } catch (err) {
    return { ok: false, error: toThreadError(classify(err)), ...diagnostics() };
  }
}

/** Files opened with the pdf.js fallback since the previous answer. */
let fallbacks = 0;

function diagnostics(): ThreadDiagnostics {
  const out = { unhandledRejections: rejections, lastRejection, pdfjsFallbacks: fallbacks };
  rejections = 0;
  lastRejection = undefined;
  fallbacks = 0;
  return out;
}

type Success = Omit<Extract<ThreadResult, { ok: true }>, keyof ThreadDiagnostics>;

async function runOpen(task: OpenTask): Promise<Success> {
  if (task.gap && task.extract) throw new DocorchError('INTERNAL', 'A file with a gap can be inspected, not extracted');
  return withDocument(task.path, task.gap, async (entry) => {
    const info = readInfo(entry.doc);
    if (!task.extract) return { ok: true, info, failures: [], textBytes: 0 };
    // Before any page is touched: a 200,000-page file must answer at once.
    if (info.pageCount > task.maxPages) {
      throw new DocorchError(
        'TOO_MANY_PAGES',
        `The PDF has ${info.pageCount} pages; at most ${task.maxPages} are accepted`,
        { details: { pageCount: info.pageCount, maxPages: task.maxPages } },
      );
    }
    const selected = parsePageRange(task.pages, info.pageCount);
    if (selected.length > task.inlinePages) return { ok: true, info, failures: [], textBytes: 0 };
    const extracted = await extractPages(entry, selected, task.maxTextBytes, task.ocr);
    return { ok: true, info, ...extracted };
  });
}

async function runPages(task: PagesTask): Promise<Success> {
  return withDocument(task.path, undefined, async (entry) => {
    const info = readInfo(entry.doc);
    const extracted = await extractPages(entry, task.pages, task.maxTextBytes, task.ocr, task.emitEvery);
    return { ok: true, info, ...extracted };
  });
}

/** A document kept open between tasks, for the next slice of the same file. */
interface OpenDocument {
  /** Path, size and modification time: a different or rewritten file is opened afresh. */
  key: string;
  path: string;
  /** Bytes of the file (sizes PDFium's memory bound). */
  size: number;
  /** Bytes the file does not have: PDFium reads it on demand, never those. */
  gap?: FileGap | undefined;
  doc: PdfiumDocument | FallbackDocument;
  idleTimer?: NodeJS.Timeout | undefined;
}

// Slices of a large document reach the same worker one after the other, and re-opening means
// re-parsing the cross-reference table and the page tree, so the last document stays open.
// It is closed when another file comes, after an error, or after a short idle time.
let kept: OpenDocument | undefined;
const KEEP_IDLE_MS = 5_000;

function release(entry: OpenDocument): void {
  clearTimeout(entry.idleTimer);
  if (kept === entry) kept = undefined;
  void entry.doc.close();
}

/**
 * PDFium's memory holds a file read into it too (up to IN_MEMORY_MAX_BYTES; larger ones are read on
 * demand): its bound is the budget plus that, in 64 MiB steps (one compiled module per step).
 */
const FILE_STEP = 64 << 20;

async function openDocument(filePath: string, key: string, size: number, gap?: FileGap): Promise<OpenDocument> {
  const held = size <= IN_MEMORY_MAX_BYTES && !gap ? size : 0;
  const engineNow = await pdfium(maxBufferBytes + Math.ceil(held / FILE_STEP) * FILE_STEP);
  try {
    const doc = engineNow.openFile(filePath, size, { gap });
    if (doc.pageCount > 0) return { key, path: filePath, size, gap, doc };
    doc.close();
    throw new PdfiumOpenError(doc.gapRead ? 'gap' : 'format', 'PDFium finds no pages in it');
  } catch (err) {
    if (gap && err instanceof PdfiumOpenError && err.reason === 'gap') throw new FileGapError(gap);
    if (!(err instanceof PdfiumOpenError) || (err.reason !== 'format' && err.reason !== 'unknown')) throw err;
    // The fallback reads the whole file, which is not on disk yet.
    if (gap) throw new FileGapError(gap);
    // PDFium refuses it as damaged (or finds no page): pdf.js recovers some structures PDFium does not.
    fallbacks += 1;
    try {
      const doc = await openWithPdfjs(await readFile(filePath));
      process.stderr.write(`opened with the pdf.js fallback: PDFium refused it (${err.message})\n`);
      return { key, path: filePath, size, doc };
    } catch (fallbackErr) {
      if (fallbackErr instanceof FallbackOpenError && fallbackErr.reason === 'password') {
        throw new PdfiumOpenError('password', fallbackErr.message);
      }
      throw new PdfiumOpenError(err.reason, `${err.message}; pdf.js: ${fallbackErr instanceof Error ? fallbackErr.message : String(fallbackErr)}`);
    }
  }
}

async function withDocument<T>(filePath: string, gap: FileGap | undefined, use: (entry: OpenDocument) => Promise<T>): Promise<T> {
  const { size, mtimeMs } = await stat(filePath);
  const key = `${filePath}\0${size}\0${mtimeMs}${gap ? `\0${gap.start}-${gap.end}` : ''}`;
  let entry = kept;
  if (entry && (entry.key !== key || engine?.broken)) {
    release(entry);
    entry = undefined;
  }
  if (entry) clearTimeout(entry.idleTimer);
  entry ??= await openDocument(filePath, key, size, gap);
  kept = undefined;
  try {
    if (guard?.exceeded) throw bufferLimit();
    const result = await use(entry);
    // Whatever it answered, PDFium answered without bytes it asked for.
    if (gap && entry.doc.engine === 'pdfium' && entry.doc.gapRead) throw new FileGapError(gap);
    // A file with a gap is filled (rewritten) or removed next: never kept.
    if (!gap && engine && !engine.broken && engine.memoryBytes <= maxBufferBytes * RECYCLE_FRACTION && !guard?.exceeded) {
      const keep = entry;
      keep.idleTimer = setTimeout(() => release(keep), KEEP_IDLE_MS).unref();
      kept = keep;
    } else {
      // Never keep a document that took this much memory: a new instance gives the memory back.
      release(entry);
      engine = undefined;
    }
    return result;
  } catch (err) {
    // Never reuse a document whose task failed.
    release(entry);
    if (engine?.broken) engine = undefined;
    if (gap && !(err instanceof FileGapError) && entry.doc.engine === 'pdfium' && entry.doc.gapRead) throw new FileGapError(gap);
    throw err;
  }
}

function readInfo(doc: PdfiumDocument | FallbackDocument): PdfInfo {
  if (doc.pageCount < 1) {
    // Nothing to analyse; pdf.js failed such files on their page tree.
    throw new DocorchError('BAD_PDF', 'The PDF could not be read: it has no pages', { details: { reason: 'no-pages' } });
  }
  let title: string | null = null;
  try {
    const raw = doc.engine === 'pdfium' ? doc.title() : doc.title;
    if (raw !== null && raw.trim() !== '') title = normalizePageText(raw).replace(/\n/g, ' ').slice(0, 1000) || null;
  } catch (err) {
    if (err instanceof PdfiumFault) throw err;
    // Metadata is optional; a broken Info dictionary must not fail a readable document.
  }
  return { pageCount: doc.pageCount, version: doc.version, title };
}

async function extractPages(
  entry: OpenDocument,
  pageNumbers: readonly number[],
  maxTextBytes: number,
  ocr: OcrTaskOptions | false | undefined,
  emitEvery?: number,
): Promise<{ pages: ExtractedPage[]; failures: PageFailure[]; textBytes: number }> {
  let pages: ExtractedPage[] = [];
  const failures: PageFailure[] = [];
  let textBytes = 0;
  const ocrOptions = ocr ?? ocrTaskOptions();
  const imager = ocrOptions ? new PageImager(ocrOptions, guard) : undefined;
  for (const pageNumber of pageNumbers) {
    try {
      // A UTF-8 byte count is at least the UTF-16 length, so the character bound is safe.
      const doc = entry.doc;
      const read =
        doc.engine === 'pdfium'
          ? doc.page(pageNumber, { maxChars: maxTextBytes - textBytes, lookForImages: imager !== undefined })
          : { text: await doc.pageText(pageNumber, maxTextBytes - textBytes), paintsImage: false, width: 0, height: 0 };
      const text = normalizePageText(read.text);
      textBytes += Buffer.byteLength(text);
      const hasTextLayer = hasText(text);
      let image;
      if (!hasTextLayer && read.paintsImage && imager && doc.engine === 'pdfium') {
        // Never throws for this page's own trouble: a page that cannot be rendered gets no image.
        const rendered = await imager.imageOf(doc, pageNumber, read.width, read.height);
        image = rendered.image;
        if (rendered.fault) {
          // PDFium failed inside while rendering (memory): the rest of the task goes on with a
          // fresh instance and the document opened again.
          engine = undefined;
          entry.doc = (await openDocument(entry.path, entry.key, entry.size, entry.gap)).doc;
        }
      }
      pages.push({ page: pageNumber, text, hasTextLayer, ...(image ? { image } : {}) });
    } catch (err) {
      if (err instanceof RangeError && err.message.startsWith('text limit')) throw textLimit(maxTextBytes);
      if (err instanceof DocorchError || err instanceof PdfiumFault) throw err;
      if (guard?.exceeded) throw bufferLimit();
      // One bad page must not fail a good document: answer it empty and report it.
      failures.push({ page: pageNumber, message: describe(err) });
      pages.push({ page: pageNumber, text: '', hasTextLayer: false });
    }
    if (textBytes > maxTextBytes) throw textLimit(maxTextBytes);
    if (guard?.exceeded) throw bufferLimit();
    if (emitEvery !== undefined && pages.length >= emitEvery) {
      workerpool.workerEmit({ pages } satisfies PagesEvent);
      pages = [];
    }
  }
  // Logged by the extractor with the file (worker output).
  const report = imager?.report();
  if (report) process.stderr.write(report);
  return { pages, failures, textBytes };
}

function bufferLimit(): DocorchError {
  const limitMb = Math.round(maxBufferBytes / 1048576);
  return new DocorchError('TOO_LARGE', `Reading the PDF needs more than the ${limitMb} MiB buffer memory limit (decompression bomb?)`, {
    details: { reason: 'memory', limitMb },
  });
}

function textLimit(limit: number): DocorchError {
  return new DocorchError('TOO_LARGE', `The PDF's text exceeds the limit of ${limit} bytes`, {
    details: { reason: 'text', limitBytes: limit },
  });
}

/** Maps PDFium's failures to the taxonomy. Everything unreadable is BAD_PDF. */
function classify(err: unknown): DocorchError {
  if (err instanceof DocorchError) return err;
  if (guard?.exceeded) return bufferLimit();
  if (err instanceof PdfiumOpenError) {
    switch (err.reason) {
      case 'password':
        return new DocorchError('ENCRYPTED_PDF', 'The PDF is password-protected', { details: { reason: 'password' } });
      case 'security':
        return new DocorchError('ENCRYPTED_PDF', 'The PDF is encrypted with a scheme that is not supported', { details: { reason: 'unsupported-encryption' } });
      case 'memory':
        return bufferLimit();
      default:
        return new DocorchError('BAD_PDF', `The PDF could not be read: ${err.message}`, { details: { reason: 'invalid-structure' } });
    }
  }
  if (err instanceof PdfiumFault) {
    if (err.atMemoryLimit) return bufferLimit();
    return new DocorchError('BAD_PDF', `The PDF could not be read: the PDF engine failed on it (${describe(err)})`, { details: { reason: 'engine-fault' } });
  }
  if (err instanceof Error && 'code' in err && err.code === 'ENOENT') {
    // The caller hands us its own temporary file: a missing one is our bug, not the client's.
    return new DocorchError('INTERNAL', `The PDF file to extract does not exist: ${err.message}`);
  }
  return new DocorchError('BAD_PDF', `The PDF could not be read: ${describe(err)}`, { details: { reason: err instanceof PdfiumPageError ? 'page' : 'parse-error' } });
}

function describe(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.length > 300 ? `${message.slice(0, 300)}...` : message;
}

/** Answers once this worker is up, with PDFium loaded (the first task then pays nothing for it). */
async function ping(maxBytes?: number): Promise<string> {
  if (maxBytes !== undefined) await pdfium(maxBytes + FILE_STEP);
  return 'pong';
}

workerpool.worker({ run, ping });
