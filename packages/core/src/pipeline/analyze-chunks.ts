/**
 * Analysis of one planned chunk of extracted pages, with its failure classified and recorded on
 * the chunk: one bad chunk never fails its siblings.
 */
import type { AnalysisKind, Analyzer, PageText } from '../analysis/types.js';
import { toDocorchError } from '../errors.js';
import type { ChunkPlan } from '../jobs/model.js';
import { chunkResultFrom, failedChunkResult, type ChunkResult } from '../jobs/result.js';
import type { ExtractedPage } from '../pdf/types.js';
import type { Logger } from '../telemetry/logger.js';

/** The document a chunk belongs to, and what to analyse. */
export interface ChunkContext {
  tenantId: string;
  documentId: string;
  /** Pages by page number: their text, and the image of a scanned page. */
  pages: ReadonlyMap<number, PageText>;
  analyses: readonly AnalysisKind[];
  signal?: AbortSignal;
}

/** An extracted page as analyzers take it: its text, and its image when it is a scan (no text layer). */
export function toPageText(page: ExtractedPage): PageText {
  return { page: page.page, text: page.text, ...(page.image ? { image: page.image } : {}) };
}

/** The pages of a chunk (a page missing from `pages` is empty). */
export function chunkPagesOf(chunk: ChunkPlan, pages: ReadonlyMap<number, PageText>): PageText[] {
  return chunk.pages.map((page) => pages.get(page) ?? { page, text: '' });
}

/**
 * Analyses one chunk. An analyzer error becomes a failed chunk result with its error code; an
 * abort (time budget, shutdown) is rethrown for the caller to decide.
 */
export async function analyzeChunk(analyzer: Analyzer, doc: ChunkContext, chunk: ChunkPlan, logger: Logger): Promise<ChunkResult> {
  doc.signal?.throwIfAborted();
  try {
    const analysis = await analyzer.analyzeChunk(
      {
        tenantId: doc.tenantId,
        documentId: doc.documentId,
        chunkIndex: chunk.index,
        pages: chunkPagesOf(chunk, doc.pages),
        analyses: doc.analyses,
      },
      doc.signal ? { signal: doc.signal } : {},
    );
    return chunkResultFrom(chunk.index, chunk.pages, analysis);
  } catch (err) {
    if (doc.signal?.aborted) throw doc.signal.reason ?? err;
    const e = toDocorchError(err);
    logger.warn({ err: e, code: e.code, tenantId: doc.tenantId, documentId: doc.documentId, chunkIndex: chunk.index }, 'chunk analysis failed');
    return failedChunkResult(chunk.index, chunk.pages, { code: e.code, message: e.message });
  }
}
