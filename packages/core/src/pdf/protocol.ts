/**
 * Messages between the extractor (calling process) and its PDF worker processes. Errors cross
 * the process boundary as plain data: serialisation drops an Error's class and custom fields, so
 * the worker sends `{code, message, details}` and the caller rebuilds the DocorchError.
 */
import { configSchema, type Config } from '../config.js';
import { DocorchError, type ErrorCode } from '../errors.js';
import { FileGapError, type ExtractedPage, type FileGap, type PdfInfo } from './types.js';

/**
 * How a task renders scanned pages (a page without a text layer that paints an image) to PNG
 * for a multimodal analyzer; see ./page-image.ts.
 */
export interface OcrTaskOptions {
  /** Resolution in dots per inch (PDF_OCR_DPI). */
  dpi: number;
  /** Most pixels of one image; a larger page is rendered at a lower resolution (PDF_OCR_MAX_PIXELS). */
  maxPixels: number;
  /** Most base64 characters of images one task returns; later scanned pages carry none (PDF_OCR_MAX_MB). */
  maxBytes: number;
}

/** The settings of scanned-page rendering. */
export type OcrConfig = Pick<Config, 'PDF_OCR' | 'PDF_OCR_DPI' | 'PDF_OCR_MAX_PIXELS' | 'PDF_OCR_MAX_MB'>;

const ocrSchema = configSchema.pick({ PDF_OCR: true, PDF_OCR_DPI: true, PDF_OCR_MAX_PIXELS: true, PDF_OCR_MAX_MB: true });

/**
 * The task form of the OCR settings: `false` when PDF_OCR is off. Settings left out take their
 * config defaults, so a task without `ocr` renders with the defaults.
 */
export function ocrTaskOptions(config: Partial<OcrConfig> = {}): OcrTaskOptions | false {
  const d = ocrSchema.parse({});
  if ((config.PDF_OCR ?? d.PDF_OCR) === 'off') return false;
  return {
    dpi: config.PDF_OCR_DPI ?? d.PDF_OCR_DPI,
    maxPixels: config.PDF_OCR_MAX_PIXELS ?? d.PDF_OCR_MAX_PIXELS,
    maxBytes: (config.PDF_OCR_MAX_MB ?? d.PDF_OCR_MAX_MB) * 1024 * 1024,
  };
}

/** Open the file, report its info, check limits; optionally extract the selection in the same task. */
export interface OpenTask {
  kind: 'open';
  path: string;
  /** Budget of the process's memory outside the JS heap (see ./memory-guard.ts). */
  maxBufferBytes: number;
  /** Scheduling priority (nice value) the worker process sets for itself on its first task. @defaultValue unchanged */
  nice?: number | undefined;
  /** Check page count and page range and extract; false for a bare inspection. */
  extract: boolean;
  pages?: string | undefined;
  maxPages: number;
  /** Bytes the file does not have (a bare inspection only, never with `extract`). @defaultValue none */
  gap?: FileGap | undefined;
  /** Extract in this task when the selection has at most this many pages; else return info only. */
  inlinePages: number;
  maxTextBytes: number;
  /** Rendering of scanned pages; `false`: none. @defaultValue {@link ocrTaskOptions}() (the PDF_OCR_* defaults) */
  ocr?: OcrTaskOptions | false | undefined;
}

/** Extract the text of some pages (one slice of a larger selection). */
export interface PagesTask {
  kind: 'pages';
  path: string;
  maxBufferBytes: number;
  /** As {@link OpenTask.nice}. */
  nice?: number | undefined;
  pages: number[];
  maxTextBytes: number;
  /** As {@link OpenTask.ocr}. */
  ocr?: OcrTaskOptions | false | undefined;
  /**
   * Send the pages as they are extracted, in {@link PagesEvent}s of this many, instead of all at
   * the end; the result then holds only the pages not yet sent. @defaultValue undefined (at the end)
   */
  emitEvery?: number | undefined;
}

/** Extracted pages sent by a worker while its task runs (see {@link PagesTask.emitEvery}). */
export interface PagesEvent {
  pages: ExtractedPage[];
}

/** True for a {@link PagesEvent}. */
export function isPagesEvent(event: unknown): event is PagesEvent {
  return typeof event === 'object' && event !== null && Array.isArray((event as { pages?: unknown }).pages);
}

export type ThreadTask = OpenTask | PagesTask;

/** A page whose extraction failed; the page is returned empty and the failure logged. */
export interface PageFailure {
  page: number;
  message: string;
}

export interface ThreadError {
  code: ErrorCode;
  message: string;
  details?: Record<string, unknown> | undefined;
  /** The task needed bytes of its file's gap ({@link FileGapError}). */
  gap?: FileGap | undefined;
}

/** Counters the worker reports with every answer. */
export interface ThreadDiagnostics {
  /** Unhandled promise rejections (pdf.js, the fallback engine) in the worker process since its previous answer. */
  unhandledRejections: number;
  /** Message of the latest of them, for logs. */
  lastRejection?: string | undefined;
  /** Files opened with the pdf.js fallback since its previous answer (PDFium refused them). */
  pdfjsFallbacks?: number | undefined;
}

export type ThreadResult =
  | ({
      ok: true;
      info: PdfInfo;
      /** Absent when the open task left extraction to slices. */
      pages?: ExtractedPage[] | undefined;
      failures: PageFailure[];
      textBytes: number;
    } & ThreadDiagnostics)
  | ({ ok: false; error: ThreadError } & ThreadDiagnostics);

/** The worker-side form of an error. */
export function toThreadError(err: DocorchError): ThreadError {
  return { code: err.code, message: err.message, details: err.details, ...(err instanceof FileGapError ? { gap: err.gap } : {}) };
}

/** The caller-side DocorchError of a worker's error. */
export function fromThreadError(err: ThreadError): DocorchError {
  if (err.gap) return new FileGapError(err.gap);
  return new DocorchError(err.code, err.message, { details: err.details });
}
