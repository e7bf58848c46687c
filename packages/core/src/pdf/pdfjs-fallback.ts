/**
 * pdf.js as the fallback engine of a PDF worker process (./extract-thread.ts), for the files
 * PDFium refuses to open as damaged (not for passwords, unsupported encryption or memory): pdf.js
 * recovers some broken structures PDFium does not (a file without its `%PDF-` header, an object
 * stream of the wrong type). On ../shared/corpus it fires on 14 of 474 files and keeps 3 of them
 * readable (see docs/pdf-engine.md). Text only: a scanned page of such a file gets no image.
 *
 * Loaded when the worker starts, before the buffer guard is installed (./memory-guard.ts): its
 * bundled polyfills must capture the native typed arrays. PDF.js decodes into ArrayBuffers, which
 * the guard bounds; its heap by the process's --max-old-space-size.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import type { PDFDocumentLoadingTask, PDFDocumentProxy } from 'pdfjs-dist/legacy/build/pdf.mjs';
import { appendItems, normalizePageText, type TextPiece } from './text.js';

// The legacy build's core-js polyfills replace Array.prototype.push (and JSON.parse) with JS
// versions because V8 misses a spec corner (non-writable `length`) that PDF.js never relies on.
// PDF.js pushes once or more per glyph, and the polyfill cost ~25% of its extraction time, so
// the native methods are put back once PDF.js is loaded.
const nativePush = Array.prototype.push;
const nativeJsonParse = JSON.parse;
// The "fake worker": PDF.js runs its parser in this process, which is already off the caller's
// event loop. Registering the worker module on globalThis is the documented way to skip PDF.js's
// own dynamic import of `workerSrc`.
(globalThis as { pdfjsWorker?: unknown }).pdfjsWorker = await import('pdfjs-dist/legacy/build/pdf.worker.mjs');
const pdfjs = await import('pdfjs-dist/legacy/build/pdf.mjs');
Array.prototype.push = nativePush;
JSON.parse = nativeJsonParse;

const pdfjsRoot = path.dirname(createRequire(import.meta.url).resolve('pdfjs-dist/package.json'));
// Predefined CMaps map character codes of CJK CID fonts to Unicode; standard font data gives
// glyph metrics of non-embedded fonts. Both are read from the package on demand.
const CMAP_URL = path.join(pdfjsRoot, 'cmaps') + path.sep;
const STANDARD_FONT_DATA_URL = path.join(pdfjsRoot, 'standard_fonts') + path.sep;

/** A document opened by pdf.js: the same reading surface as a PDFium one, text only. */
export interface FallbackDocument {
  readonly engine: 'pdfjs';
  readonly pageCount: number;
  readonly version: string | null;
  readonly title: string | null;
  /** The text of a page (1-based); throws a RangeError (`text limit`) past `maxChars`. */
  pageText(pageNumber: number, maxChars: number): Promise<string>;
  close(): Promise<void>;
}

/** Why pdf.js could not open a file either. */
export class FallbackOpenError extends Error {
  constructor(
    readonly reason: 'password' | 'invalid-structure' | 'parse-error',
    message: string,
  ) {
    super(message);
    this.name = 'FallbackOpenError';
  }
}

/** Opens a PDF with pdf.js (no scripts, no XFA, no fonts loaded into anything, no fetches). */
export async function openWithPdfjs(bytes: Uint8Array): Promise<FallbackDocument> {
  const loadingTask: PDFDocumentLoadingTask = pdfjs.getDocument({
    // pdf.js takes ownership of (transfers) the buffer it is given: a copy.
    data: new Uint8Array(bytes),
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
  const destroy = () => Promise.race([loadingTask.destroy().catch(() => undefined), new Promise((r) => setTimeout(r, 1_000).unref())]).then(() => undefined);
  let doc: PDFDocumentProxy;
  try {
    doc = await loadingTask.promise;
  } catch (err) {
    await destroy();
    const name = (err as { name?: unknown } | undefined)?.name;
    const message = err instanceof Error ? err.message : String(err);
    if (name === 'PasswordException') throw new FallbackOpenError('password', message);
    throw new FallbackOpenError(name === 'InvalidPDFException' ? 'invalid-structure' : 'parse-error', message);
  }
  let version: string | null = null;
  let title: string | null = null;
  try {
    const meta = await doc.getMetadata();
    const info = meta.info as { PDFFormatVersion?: unknown; Title?: unknown };
    if (typeof info.PDFFormatVersion === 'string') version = info.PDFFormatVersion;
    if (typeof info.Title === 'string' && info.Title.trim() !== '') title = info.Title;
  } catch {
    // Metadata is optional; a broken Info dictionary must not fail a readable document.
  }
  return {
    engine: 'pdfjs',
    pageCount: doc.numPages,
    version,
    title,
    async pageText(pageNumber, maxChars) {
      const page = await doc.getPage(pageNumber);
      try {
        // Read as a stream, so a text bomb is stopped at the budget, not at the end of the page.
        const reader = page.streamTextContent({ includeMarkedContent: false }).getReader();
        const parts: string[] = [];
        let chars = 0;
        try {
          for (;;) {
            const { value, done } = (await reader.read()) as { value?: { items: TextPiece[] }; done: boolean };
            if (done) break;
            if (value) chars += appendItems(parts, value.items);
            if (chars > maxChars) throw new RangeError(`text limit: page ${pageNumber} has more than ${maxChars} characters`);
          }
        } catch (err) {
          await reader.cancel().catch(() => undefined);
          throw err;
        }
        return normalizePageText(parts.join(''));
      } finally {
        page.cleanup();
      }
    },
    close: destroy,
  };
}
