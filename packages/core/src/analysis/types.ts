/**
 * The Analyzer contract (DESIGN.md section 5). Two implementations: the local offline analyzer
 * (default) and the Gemini analyzer. Everything else (chunk workers, the sync path, the reduce in
 * jobs/assemble.ts) talks only to this interface.
 */

/** The analyses a client can ask for; all four by default. */
export const ANALYSIS_KINDS = ['summary', 'entities', 'keyPoints', 'sentiment'] as const;
export type AnalysisKind = (typeof ANALYSIS_KINDS)[number];

/** Entity types the analyzers emit. */
export const ENTITY_TYPES = [
  'PERSON',
  'ORGANIZATION',
  'LOCATION',
  'DATE',
  'MONEY',
  'PERCENT',
  'EMAIL',
  'URL',
  'OTHER',
] as const;
export type EntityType = (typeof ENTITY_TYPES)[number];

/** One entity with how often it occurs and on which pages (1-based, ascending, unique). */
export interface Entity {
  text: string;
  type: EntityType;
  count: number;
  pages: number[];
}

/** Sentiment with a signed score in [-1, 1]; label follows the score's sign and spread. */
export interface Sentiment {
  label: 'positive' | 'negative' | 'neutral' | 'mixed';
  score: number;
}

/** Model usage; the local analyzer reports zero tokens and zero model calls. */
export interface Usage {
  inputTokens: number;
  outputTokens: number;
  modelCalls: number;
}

/** An image of a page, for pages without a text layer (scanned). */
export interface PageImage {
  /** e.g. `image/png`, `image/jpeg` or `application/pdf` (a one-page PDF). */
  mimeType: string;
  /** The bytes, base64-encoded. */
  data: string;
}

/** Text of one page (1-based page number). */
export interface PageText {
  page: number;
  text: string;
  /**
   * The rendered page, for a page whose text is empty (no text layer). A multimodal analyzer
   * (Gemini) reads such pages from the image and lists them in `ocrPages`; others ignore it.
   */
  image?: PageImage;
}

/** What an analyzer receives for one chunk. */
export interface ChunkInput {
  tenantId: string;
  documentId: string;
  chunkIndex: number;
  pages: PageText[];
  analyses: readonly AnalysisKind[];
}

/** A page the analyzer could not analyse, with the error code (e.g. NO_TEXT_LAYER). */
export interface FailedPage {
  page: number;
  code: string;
}

/** What an analyzer returns for one chunk. Fields not asked for are empty. */
export interface ChunkAnalysis {
  summary: string;
  keyPoints: string[];
  entities: Entity[];
  sentiment: Sentiment;
  /** Characters of text analysed: the weight of this chunk's sentiment in the document's. */
  textLength: number;
  failedPages: FailedPage[];
  usage: Usage;
  /** Pages analysed from their image (`PageText.image`) because they had no text layer; ascending. */
  ocrPages?: number[];
}

/** Input of one step of the hierarchical summary reduce (bounded in size by the caller). */
export interface SummaryReduceInput {
  /** Summaries of consecutive parts of the document, in page order. */
  summaries: string[];
  /** Key points of the same parts, in page order. */
  keyPoints: string[];
  /** Most key points to return. */
  maxKeyPoints: number;
}

/** Output of one reduce step. */
export interface SummaryReduceOutput {
  summary: string;
  keyPoints: string[];
  usage: Usage;
}

/** Per-call options. */
export interface AnalyzeOptions {
  /** Aborts the call (time budget, shutdown). */
  signal?: AbortSignal;
}

/** An analyzer of chunk text. Implementations must be safe to call concurrently. */
export interface Analyzer {
  /** Stable name recorded in results, e.g. `local/wink-nlp` or `gemini/gemini-2.5-flash`. */
  readonly name: string;
  /** Analyses one chunk. Throws a DocorchError (THROTTLED, TIMEOUT, SAFETY_BLOCKED, ...) on failure. */
  analyzeChunk(input: ChunkInput, options?: AnalyzeOptions): Promise<ChunkAnalysis>;
  /** One step of the hierarchical reduce: merges part summaries into one. */
  reduceSummaries(input: SummaryReduceInput, options?: AnalyzeOptions): Promise<SummaryReduceOutput>;
  /** Releases threads and sockets. */
  close(): Promise<void>;
}

/** Zero usage, the identity of {@link addUsage}. */
export const ZERO_USAGE: Usage = Object.freeze({ inputTokens: 0, outputTokens: 0, modelCalls: 0 });

/** Sums usage records. */
export function addUsage(...items: Usage[]): Usage {
  return items.reduce<Usage>(
    (acc, u) => ({
      inputTokens: acc.inputTokens + u.inputTokens,
      outputTokens: acc.outputTokens + u.outputTokens,
      modelCalls: acc.modelCalls + u.modelCalls,
    }),
    { ...ZERO_USAGE },
  );
}

/** Maps a signed score in [-1, 1] to a label. */
export function sentimentLabel(score: number, mixed = false): Sentiment['label'] {
  if (mixed) return 'mixed';
  if (score > 0.05) return 'positive';
  if (score < -0.05) return 'negative';
  return 'neutral';
}
