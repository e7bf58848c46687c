/** Contract of PDF inspection and text extraction (implemented in ./extractor.ts). */
import type { FairShare } from '../resilience/fair-queue.js';
import type { PageImage } from '../analysis/types.js';
import { DocorchError } from '../errors.js';

/**
 * Bytes `[start, end)` of a file that are not on disk yet (a hole, read as zeros): the API keeps
 * only the ends of a large upload, whose whole copy is in the uploads bucket (pipeline/local-copy.ts).
 * PDFium is never given those bytes: a read that needs them fails the task with {@link FileGapError}.
 */
export interface FileGap {
  start: number;
  end: number;
}

/**
 * Inspecting a file with a {@link FileGap} needed bytes of the gap: nothing about the file is
 * known yet; fill the gap and inspect again. Code INTERNAL: a caller that lets it through has a bug.
 */
export class FileGapError extends DocorchError {
  constructor(readonly gap: FileGap) {
    super('INTERNAL', `Reading the PDF needed bytes ${gap.start}-${gap.end}, which are not on disk`, { details: { reason: 'gap' } });
    this.name = 'FileGapError';
  }
}

/** Text of one page as extracted. */
export interface ExtractedPage {
  /** 1-based page number in the document. */
  page: number;
  /** Page text in reading order, whitespace normalised; empty when the page has no text layer. */
  text: string;
  /** False when the page has no extractable text (scanned image, empty page). */
  hasTextLayer: boolean;
  /**
   * The page rendered to PNG, for a page without a text layer that paints an image (a scan);
   * absent for pages with text, blank pages, with PDF_OCR=off, or when rendering failed.
   */
  image?: PageImage;
}

/** What inspecting a PDF tells us before any analysis. */
export interface PdfInfo {
  pageCount: number;
  /** PDF version from the header, e.g. "1.7". */
  version: string | null;
  title: string | null;
}

/** Result of {@link PdfExtractor.extract}. */
export interface ExtractionResult {
  info: PdfInfo;
  /** The selected pages, ascending. */
  pages: ExtractedPage[];
}

/** Options of one extraction. */
export interface ExtractOptions {
  /** Page selection such as `1-3,7`; all pages when absent. Validated against the page count. */
  pages?: string;
  /** Most pages the document may have (TOO_MANY_PAGES above). */
  maxPages: number;
  /** Aborts the extraction (the thread doing it is terminated). */
  signal?: AbortSignal;
  /** Called once the document is open, before any page is extracted: its info and the selected pages (ascending). */
  onOpen?: (info: PdfInfo, selected: readonly number[]) => void;
  /**
   * Called with each batch of extracted pages as soon as it is ready (the workers stream them
   * in small batches as they go; ascending within a batch), so a caller can use them before the
   * whole document is read. The result still holds every page.
   */
  onPages?: (pages: readonly ExtractedPage[]) => void;
  /** Whose work this is: the PDF workers are shared fairly between flows (tenants), each holding at most PDF_THREADS - 1. @defaultValue one shared, uncapped flow */
  share?: FairShare;
}

/** Options of {@link PdfExtractor.inspect}. */
export interface InspectOptions {
  signal?: AbortSignal;
  /** As {@link ExtractOptions.share}. */
  share?: FairShare;
  /** Bytes the file does not have on disk. @defaultValue none (the whole file) */
  gap?: FileGap;
}

/**
 * Parses and extracts PDFs off the event loop, isolated so that a hostile file can never crash
 * or hang the calling process. Errors are DocorchErrors: BAD_PDF, ENCRYPTED_PDF, TOO_MANY_PAGES,
 * INVALID_PAGE_RANGE, TIMEOUT, TOO_LARGE (memory or text limit).
 */
export interface PdfExtractor {
  /**
   * Reads the page count and metadata without extracting text. With `gap`, the file lacks those
   * bytes: rejects with {@link FileGapError} when they were needed (never with a verdict on the file then).
   */
  inspect(filePath: string, options?: InspectOptions): Promise<PdfInfo>;
  /** Inspects and extracts the selected pages' text in one pass over the file. */
  extract(filePath: string, options: ExtractOptions): Promise<ExtractionResult>;
  /** Terminates the threads. */
  close(): Promise<void>;
}
