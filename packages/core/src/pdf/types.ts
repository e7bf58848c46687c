/** Contract of PDF inspection and text extraction (implemented in ./extractor.ts). */

/** Text of one page as extracted. */
export interface ExtractedPage {
  /** 1-based page number in the document. */
  page: number;
  /** Page text in reading order, whitespace normalised; empty when the page has no text layer. */
  text: string;
  /** False when the page has no extractable text (scanned image, empty page). */
  hasTextLayer: boolean;
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
}

/**
 * Parses and extracts PDFs off the event loop, isolated so that a hostile file can never crash
 * or hang the calling process. Errors are DocorchErrors: BAD_PDF, ENCRYPTED_PDF, TOO_MANY_PAGES,
 * INVALID_PAGE_RANGE, TIMEOUT, TOO_LARGE (memory or text limit).
 */
export interface PdfExtractor {
  /** Reads the page count and metadata without extracting text. */
  inspect(filePath: string, options?: { signal?: AbortSignal }): Promise<PdfInfo>;
  /** Inspects and extracts the selected pages' text in one pass over the file. */
  extract(filePath: string, options: ExtractOptions): Promise<ExtractionResult>;
  /** Terminates the threads. */
  close(): Promise<void>;
}
