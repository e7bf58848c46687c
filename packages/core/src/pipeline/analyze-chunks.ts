/**
 * Analyses planned chunks of extracted pages under a concurrency cap (p-limit). Each chunk's
 * failure is classified and recorded on that chunk: one bad chunk never fails its siblings.
 */
import pLimit from 'p-limit';
import type { AnalysisKind, Analyzer, PageText } from '../analysis/types.js';
import { toDocorchError } from '../errors.js';
import type { ChunkPlan } from '../jobs/model.js';
import { chunkResultFrom, failedChunkResult, type ChunkResult } from '../jobs/result.js';
import type { Logger } from '../telemetry/logger.js';

/** Input of {@link analyzeChunks}. */
export interface AnalyzeChunksInput {
  tenantId: string;
  documentId: string;
  plan: readonly ChunkPlan[];
  /** Page texts by page number. */
  pageText: ReadonlyMap<number, string>;
  analyses: readonly AnalysisKind[];
  /** Most chunks analysed at once. */
  concurrency: number;
  signal?: AbortSignal;
  /** Called as each chunk finishes (progress). */
  onChunk?: (result: ChunkResult) => void | Promise<void>;
}

/** Analyses every chunk; resolves with one result per chunk, in index order. */
export async function analyzeChunks(analyzer: Analyzer, input: AnalyzeChunksInput, logger: Logger): Promise<ChunkResult[]> {
  const limit = pLimit(input.concurrency);
  const results = await Promise.all(
    input.plan.map((chunk) =>
      limit(async (): Promise<ChunkResult> => {
        const log = logger.child({ tenantId: input.tenantId, documentId: input.documentId, chunkIndex: chunk.index });
        input.signal?.throwIfAborted();
        const pages: PageText[] = chunk.pages.map((page) => ({ page, text: input.pageText.get(page) ?? '' }));
        let result: ChunkResult;
        try {
          const analysis = await analyzer.analyzeChunk(
            {
              tenantId: input.tenantId,
              documentId: input.documentId,
              chunkIndex: chunk.index,
              pages,
              analyses: input.analyses,
            },
            input.signal ? { signal: input.signal } : {},
          );
          result = chunkResultFrom(chunk.index, chunk.pages, analysis);
        } catch (err) {
          // Aborts (time budget, shutdown) are not chunk failures: let the caller decide.
          if (input.signal?.aborted) throw input.signal.reason ?? err;
          const e = toDocorchError(err);
          log.warn({ err: e, code: e.code }, 'chunk analysis failed');
          result = failedChunkResult(chunk.index, chunk.pages, { code: e.code, message: e.message });
        }
        await input.onChunk?.(result);
        return result;
      }),
    ),
  );
  return results;
}
