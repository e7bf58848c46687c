/**
 * Worker-thread entry of the local analyzer (run by piscina, see ./local-analyzer.ts). Importing
 * it loads the NLP models once for the life of the thread and warms them up on a short sample,
 * so that the first real chunk does not pay for model loading and JIT compilation.
 */
import type { ChunkAnalysis, ChunkInput, SummaryReduceInput, SummaryReduceOutput } from '../types.js';
import { analyzeText, reduceText } from './analyze-text.js';

const WARM_UP_TEXT =
  'On March 3, 2024, Maria Gonzalez of Acme Corporation opened a new office in Paris. ' +
  'The team was delighted with the excellent results. Revenue grew 12% to $4.5 million.';

analyzeText({ pages: [{ page: 1, text: WARM_UP_TEXT }], analyses: ['summary', 'entities', 'keyPoints', 'sentiment'] });

/** Task `analyzeChunk`: one chunk's analysis. */
export function analyzeChunk(input: Pick<ChunkInput, 'pages' | 'analyses'>): ChunkAnalysis {
  return analyzeText(input);
}

/** Task `reduceSummaries`: one reduce step. */
export function reduceSummaries(input: SummaryReduceInput): SummaryReduceOutput {
  return reduceText(input);
}
