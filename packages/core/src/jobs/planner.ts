import type { ChunkPlan } from './model.js';

/**
 * Splits the selected pages into chunks of at most `pagesPerChunk` consecutive pages.
 * A chunk never spans a gap in the selection (pages `1-3,7` with 10 per chunk gives [1,2,3] and
 * [7]), so every chunk's pages are exactly `[first..last]`.
 */
export function planChunks(pages: readonly number[], pagesPerChunk: number): ChunkPlan[] {
  if (!Number.isInteger(pagesPerChunk) || pagesPerChunk < 1) {
    throw new RangeError(`pagesPerChunk must be a positive integer, got ${pagesPerChunk}`);
  }
  const chunks: ChunkPlan[] = [];
  let current: number[] = [];
  for (const page of pages) {
    const last = current[current.length - 1];
    if (current.length === pagesPerChunk || (last !== undefined && page !== last + 1)) {
      chunks.push({ index: chunks.length, pages: current });
      current = [];
    }
    current.push(page);
  }
  if (current.length > 0) chunks.push({ index: chunks.length, pages: current });
  return chunks;
}
