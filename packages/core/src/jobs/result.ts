/**
 * The document result (DESIGN.md section 4): one JSON document, schema versioned.
 * Bump {@link RESULT_SCHEMA_VERSION} on any incompatible change; a new field that readers may
 * ignore (e.g. `ocrPages`) is compatible and keeps the version.
 */
import type { ChunkAnalysis, Entity, FailedPage, Sentiment, Usage } from '../analysis/types.js';
import type { JobStatus } from './model.js';

export const RESULT_SCHEMA_VERSION = 1;

/** One chunk's part of the document result. */
export interface ChunkResult {
  index: number;
  /** `[first, last]` page of the chunk (chunks never span a gap). */
  pages: [number, number];
  status: 'succeeded' | 'failed';
  summary: string;
  keyPoints: string[];
  entities: Entity[];
  sentiment: Sentiment;
  textLength: number;
  failedPages: FailedPage[];
  usage: Usage;
  /** Present (true) when the analyzer read some of the chunk's pages from their image (scanned pages). */
  ocr?: true;
  /** The pages read from their image, ascending; present with `ocr`. */
  ocrPages?: number[];
  /** Present when the chunk failed. */
  error?: { code: string; message: string };
}

/** The document result. */
export interface DocumentResult {
  schemaVersion: typeof RESULT_SCHEMA_VERSION;
  documentId: string;
  status: Extract<JobStatus, 'completed' | 'completed_with_errors' | 'failed'>;
  pages: {
    /** Pages in the document. */
    total: number;
    /** Pages selected for analysis. */
    analysed: number;
    /** The client's selection, `all` by default. */
    selection: string;
  };
  analyzer: string;
  summary: string;
  keyPoints: string[];
  entities: Entity[];
  sentiment: Sentiment;
  chunks: ChunkResult[];
  failedPages: FailedPage[];
  /**
   * Pages the analyzer read from their image because they have no text layer (scanned), ascending;
   * empty when none. Absent from results stored before it was added.
   */
  ocrPages: number[];
  usage: Usage;
  createdAt: string;
}

/** Builds a chunk result from an analysis. */
export function chunkResultFrom(index: number, pages: readonly number[], analysis: ChunkAnalysis): ChunkResult {
  return {
    index,
    pages: [pages[0] ?? 0, pages[pages.length - 1] ?? 0],
    status: 'succeeded',
    summary: analysis.summary,
    keyPoints: analysis.keyPoints,
    entities: analysis.entities,
    sentiment: analysis.sentiment,
    textLength: analysis.textLength,
    failedPages: analysis.failedPages,
    usage: analysis.usage,
    ...(analysis.ocrPages && analysis.ocrPages.length > 0
      ? { ocr: true as const, ocrPages: [...analysis.ocrPages].sort((a, b) => a - b) }
      : {}),
  };
}

/** Builds the result of a chunk that failed with an error code: every page is listed as failed. */
export function failedChunkResult(
  index: number,
  pages: readonly number[],
  error: { code: string; message: string },
): ChunkResult {
  return {
    index,
    pages: [pages[0] ?? 0, pages[pages.length - 1] ?? 0],
    status: 'failed',
    summary: '',
    keyPoints: [],
    entities: [],
    sentiment: { label: 'neutral', score: 0 },
    textLength: 0,
    failedPages: pages.map((page) => ({ page, code: error.code })),
    usage: { inputTokens: 0, outputTokens: 0, modelCalls: 0 },
    error,
  };
}
