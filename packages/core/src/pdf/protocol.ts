/**
 * Messages between the extractor (calling process) and its PDF worker processes. Errors cross
 * the process boundary as plain data: serialisation drops an Error's class and custom fields, so
 * the worker sends `{code, message, details}` and the caller rebuilds the DocorchError.
 */
import { DocorchError, type ErrorCode } from '../errors.js';
import type { ExtractedPage, PdfInfo } from './types.js';

/** Open the file, report its info, check limits; optionally extract the selection in the same task. */
export interface OpenTask {
  kind: 'open';
  path: string;
  /** Budget of the process's memory outside the JS heap (see ./memory-guard.ts). */
  maxBufferBytes: number;
  /** Check page count and page range and extract; false for a bare inspection. */
  extract: boolean;
  pages?: string | undefined;
  maxPages: number;
  /** Extract in this task when the selection has at most this many pages; else return info only. */
  inlinePages: number;
  maxTextBytes: number;
}

/** Extract the text of some pages (one slice of a larger selection). */
export interface PagesTask {
  kind: 'pages';
  path: string;
  maxBufferBytes: number;
  pages: number[];
  maxTextBytes: number;
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
}

/** Counters the worker reports with every answer. */
export interface ThreadDiagnostics {
  /** Unhandled promise rejections PDF.js raised in the worker process since its previous answer. */
  unhandledRejections: number;
  /** Message of the latest of them, for logs. */
  lastRejection?: string | undefined;
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
  return { code: err.code, message: err.message, details: err.details };
}

/** The caller-side DocorchError of a worker's error. */
export function fromThreadError(err: ThreadError): DocorchError {
  return new DocorchError(err.code, err.message, { details: err.details });
}
