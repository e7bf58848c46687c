/**
 * Entry of a PDF worker process (a workerpool child process, see ./extractor.ts for why a process
 * and not a thread): opens a PDF with PDF.js and extracts page text, and renders scanned pages
 * to PNG (./page-image.ts). Everything it returns is plain data (see ./protocol.ts), and `run`
 * never throws: failures come back as `{ok: false}`.
 */
import { readFile, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import os from 'node:os';
import type { PDFDocumentLoadingTask, PDFDocumentProxy, PDFPageProxy } from 'pdfjs-dist/legacy/build/pdf.mjs';
import workerpool from 'workerpool';
import { DocorchError } from '../errors.js';
import { installMemoryGuard, type MemoryGuard } from './memory-guard.js';
import { PageImager } from './page-image.js';
import { parsePageRange } from './page-range.js';
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
import { appendItems, hasText, normalizePageText, type TextPiece } from './text.js';
import type { ExtractedPage, PdfInfo } from './types.js';

// PDF.js can raise unhandled rejections on corrupt files, possibly after the document's task has
// finished. Under Node's default they would kill this process together with an unrelated
// in-flight task, so they are counted here and reported with the next answer instead.
let rejections = 0;
let lastRejection: string | undefined;
process.on('unhandledRejection', (reason) => {
  rejections++;
  lastRejection = reason instanceof Error ? `${reason.name}: ${reason.message}` : String(reason);
});

// The legacy build's core-js polyfills replace Array.prototype.push (and JSON.parse) with JS
// versions because V8 misses a spec corner (non-writable `length`) that PDF.js never relies on.
// PDF.js pushes once or more per glyph, and the polyfill cost ~25% of the extraction time here,
// so the native methods are put back once PDF.js is loaded.
const nativePush = Array.prototype.push;
const nativeJsonParse = JSON.parse;

// The "fake worker": PDF.js runs its parser in this process, which is already off the caller's
// event loop. Registering the worker module on globalThis is the documented way to skip
// PDF.js's own dynamic import of `workerSrc`.
(globalThis as { pdfjsWorker?: unknown }).pdfjsWorker = await import('pdfjs-dist/legacy/build/pdf.worker.mjs');
const pdfjs = await import('pdfjs-dist/legacy/build/pdf.mjs');
Array.prototype.push = nativePush;
JSON.parse = nativeJsonParse;

const pdfjsRoot = path.dirname(createRequire(import.meta.url).resolve('pdfjs-dist/package.json'));
// Predefined CMaps are needed to map character codes of CJK CID fonts to Unicode; standard font
// data gives glyph metrics of non-embedded fonts. Both are read from the package on demand.
const CMAP_URL = path.join(pdfjsRoot, 'cmaps') + path.sep;
const STANDARD_FONT_DATA_URL = path.join(pdfjsRoot, 'standard_fonts') + path.sep;

let guard: MemoryGuard | undefined;
let maxBufferBytes = 0;
let niced = false;

/** The task handler, registered with workerpool as `run`. */
export async function run(task: ThreadTask): Promise<ThreadResult> {
  // Tells the caller the task now runs here (a deadline before this is a busy pool, not a slow file).
  workerpool.workerEmit({ started: true });
  // Installed on the first task (the limit is the same for every task of a pool), after PDF.js
  // is loaded so that its bundled polyfills keep the native classes.
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
  if (tripsAtLastEnd !== undefined && guard.trips !== tripsAtLastEnd.before) await quiesce(guard);
  guard.reset();
  const before = guard.trips;
  try {
    const result = task.kind === 'open' ? await runOpen(task) : await runPages(task);
    return { ...result, ...diagnostics() };
  } catch (err) {
    return { ok: false, error: toThreadError(classify(err)), ...diagnostics() };
  } finally {
    tripsAtLastEnd = { before };
  }
}

/** The guard's trip count when the last task began; a task that tripped it leaves work behind. */
let tripsAtLastEnd: { before: number } | undefined;

/**
 * After a task that crossed the buffer budget, PDF.js may still be decoding for the document that
 * task released (its decoding is not cancelled by destroy()): such work would trip the guard again
 * and be counted against the next task. Wait, at most about one second, until no trip happened for
 * two consecutive short intervals and the dead buffers are collected; the caller then resets the
 * guard, so the next document starts with its whole budget.
 */
async function quiesce(g: MemoryGuard): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  let quiet = 0;
  for (let i = 0; i < 50 && quiet < 2; i++) {
    const trips = g.trips;
    await new Promise((resolve) => setTimeout(resolve, 20));
    gc?.();
    quiet = g.trips === trips && process.memoryUsage().arrayBuffers <= g.limitBytes / 2 ? quiet + 1 : 0;
  }
}

function diagnostics(): ThreadDiagnostics {
  const out = { unhandledRejections: rejections, lastRejection };
  rejections = 0;
  lastRejection = undefined;
  return out;
}

type Success = Omit<Extract<ThreadResult, { ok: true }>, keyof ThreadDiagnostics>;

async function runOpen(task: OpenTask): Promise<Success> {
  return withDocument(task.path, async (doc) => {
    const info = await readInfo(doc);
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
    const extracted = await extractPages(doc, selected, task.maxTextBytes, task.ocr);
    return { ok: true, info, ...extracted };
  });
}

async function runPages(task: PagesTask): Promise<Success> {
  return withDocument(task.path, async (doc) => {
    const info = await readInfo(doc);
    const extracted = await extractPages(doc, task.pages, task.maxTextBytes, task.ocr, task.emitEvery);
    return { ok: true, info, ...extracted };
  });
}

/** A document kept open between tasks, for the next slice of the same file. */
interface OpenDocument {
  /** Path, size and modification time: a different or rewritten file is opened afresh. */
  key: string;
  loadingTask: PDFDocumentLoadingTask;
  doc: PDFDocumentProxy;
  idleTimer?: NodeJS.Timeout | undefined;
}

// Slices of a large document reach the same worker one after the other, and re-opening means
// re-parsing the cross-reference table and the page tree, so the last document stays open.
// It is closed when another file comes, after an error, or after a short idle time.
let kept: OpenDocument | undefined;
const KEEP_IDLE_MS = 5_000;

async function release(entry: OpenDocument): Promise<void> {
  clearTimeout(entry.idleTimer);
  if (kept === entry) kept = undefined;
  // Bounded: a corrupt document must not keep an answer waiting on its own teardown.
  await Promise.race([entry.loadingTask.destroy().catch(() => undefined), sleep(1_000)]);
}

async function openDocument(filePath: string, key: string): Promise<OpenDocument> {
  const file = await readFile(filePath);
  // PDF.js refuses Buffers, and copies a view that does not own its whole ArrayBuffer.
  const data = new Uint8Array(file.buffer, file.byteOffset, file.byteLength);
  const loadingTask = pdfjs.getDocument({
    data,
    isEvalSupported: false,
    disableFontFace: true,
    useSystemFonts: false,
    enableXfa: false,
    stopAtErrors: false,
    cMapUrl: CMAP_URL,
    cMapPacked: true,
    standardFontDataUrl: STANDARD_FONT_DATA_URL,
    verbosity: pdfjs.VerbosityLevel.ERRORS,
  });
  try {
    return { key, loadingTask, doc: await loadingTask.promise };
  } catch (err) {
    await Promise.race([loadingTask.destroy().catch(() => undefined), sleep(1_000)]);
    throw err;
  }
}

async function withDocument<T>(filePath: string, use: (doc: PDFDocumentProxy) => Promise<T>): Promise<T> {
  const { size, mtimeMs } = await stat(filePath);
  const key = `${filePath}\0${size}\0${mtimeMs}`;
  let entry = kept;
  if (entry && entry.key !== key) {
    await release(entry);
    entry = undefined;
  }
  if (entry) clearTimeout(entry.idleTimer);
  entry ??= await openDocument(filePath, key);
  kept = undefined;
  const trips = guard?.trips ?? 0;
  try {
    if (guard?.exceeded) throw bufferLimit();
    const result = await use(entry.doc);
    if ((guard?.trips ?? 0) !== trips) {
      // The budget was crossed (e.g. a scanned page too large to render, which costs only its
      // image): never keep such a document, and free its buffers before the next task counts them.
      await release(entry);
      (globalThis as { gc?: () => void }).gc?.();
      return result;
    }
    const keep = entry;
    keep.idleTimer = setTimeout(() => void release(keep), KEEP_IDLE_MS).unref();
    kept = keep;
    return result;
  } catch (err) {
    // Never reuse a document whose task failed (half-read streams, memory at the limit).
    await release(entry);
    throw err;
  }
}

async function readInfo(doc: PDFDocumentProxy): Promise<PdfInfo> {
  let version: string | null = null;
  let title: string | null = null;
  try {
    const meta = await doc.getMetadata();
    const info = meta.info as { PDFFormatVersion?: unknown; Title?: unknown };
    if (typeof info.PDFFormatVersion === 'string') version = info.PDFFormatVersion;
    const dcTitle = meta.metadata?.get('dc:title');
    const raw = typeof info.Title === 'string' && info.Title.trim() !== '' ? info.Title : dcTitle;
    if (typeof raw === 'string' && raw.trim() !== '') title = normalizePageText(raw).replace(/\n/g, ' ').slice(0, 1000);
  } catch {
    // Metadata is optional; a broken Info dictionary must not fail a readable document.
  }
  return { pageCount: doc.numPages, version, title };
}

async function extractPages(
  doc: PDFDocumentProxy,
  pageNumbers: readonly number[],
  maxTextBytes: number,
  ocr: OcrTaskOptions | false | undefined,
  emitEvery?: number,
): Promise<{ pages: ExtractedPage[]; failures: PageFailure[]; textBytes: number }> {
  let pages: ExtractedPage[] = [];
  const failures: PageFailure[] = [];
  let textBytes = 0;
  const ocrOptions = ocr ?? ocrTaskOptions();
  const imager = ocrOptions ? new PageImager(ocrOptions, pdfjs.OPS, guard) : undefined;
  for (const pageNumber of pageNumbers) {
    let page: PDFPageProxy | undefined;
    try {
      page = await doc.getPage(pageNumber);
      const text = await pageText(page, maxTextBytes - textBytes, maxTextBytes);
      textBytes += Buffer.byteLength(text);
      const hasTextLayer = hasText(text);
      // Never throws: a page that cannot be rendered is returned without an image.
      const image = hasTextLayer ? undefined : await imager?.imageOf(page);
      pages.push({ page: pageNumber, text, hasTextLayer, ...(image ? { image } : {}) });
    } catch (err) {
      if (err instanceof DocorchError) throw err;
      if (guard?.exceeded) throw bufferLimit();
      // One bad page must not fail a good document: answer it empty and report it.
      failures.push({ page: pageNumber, message: describe(err) });
      pages.push({ page: pageNumber, text: '', hasTextLayer: false });
    } finally {
      page?.cleanup();
    }
    if (textBytes > maxTextBytes) throw textLimit(maxTextBytes);
    // A stream cut short by the guard leaves a readable but truncated page: fail, don't guess.
    if (guard?.exceeded) throw bufferLimit();
    if (emitEvery !== undefined && pages.length >= emitEvery) {
      workerpool.workerEmit({ pages } satisfies PagesEvent);
      pages = [];
    }
  }
  // Logged by the extractor with the file (worker output), as PDF.js's own warnings are.
  const report = imager?.report();
  if (report) process.stderr.write(report);
  return { pages, failures, textBytes };
}

/** Reads a page's text as a stream, so a text bomb is stopped at the budget, not at the end of the page. */
async function pageText(page: PDFPageProxy, budgetBytes: number, limitBytes: number): Promise<string> {
  const reader = page.streamTextContent({ includeMarkedContent: false }).getReader();
  const parts: string[] = [];
  let chars = 0;
  try {
    for (;;) {
      const { value, done } = (await reader.read()) as { value?: { items: TextPiece[] }; done: boolean };
      if (done) break;
      if (value) chars += appendItems(parts, value.items);
      // A UTF-8 byte count is at least the UTF-16 length for the text PDF.js produces.
      if (chars > budgetBytes) throw textLimit(limitBytes);
    }
  } catch (err) {
    await reader.cancel().catch(() => undefined);
    throw err;
  }
  return normalizePageText(parts.join(''));
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

/** Maps PDF.js failures to the taxonomy. Everything unreadable is BAD_PDF. */
function classify(err: unknown): DocorchError {
  if (err instanceof DocorchError) return err;
  // Whatever PDF.js made of the refused allocation, the cause is the memory limit.
  if (guard?.exceeded) return bufferLimit();
  const name = err instanceof Error || (typeof err === 'object' && err !== null) ? (err as { name?: unknown }).name : undefined;
  if (name === 'PasswordException') {
    return new DocorchError('ENCRYPTED_PDF', 'The PDF is password-protected', { details: { reason: 'password' } });
  }
  if (err instanceof RangeError && /call stack/i.test(err.message)) {
    return new DocorchError('BAD_PDF', 'The PDF could not be read: its structure is nested too deeply', {
      details: { reason: 'structure' },
    });
  }
  if (err instanceof Error && 'code' in err && err.code === 'ENOENT') {
    // The caller hands us its own temporary file: a missing one is our bug, not the client's.
    return new DocorchError('INTERNAL', `The PDF file to extract does not exist: ${err.message}`);
  }
  const reason = name === 'InvalidPDFException' ? 'invalid-structure' : 'parse-error';
  return new DocorchError('BAD_PDF', `The PDF could not be read: ${describe(err)}`, { details: { reason } });
}

function describe(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.length > 300 ? `${message.slice(0, 300)}...` : message;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** Answers once this worker is up (PDF.js is loaded before the worker registers). */
function ping(): string {
  return 'pong';
}

workerpool.worker({ run, ping });
