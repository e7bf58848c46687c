/**
 * Chunk planning: which pages go into one model call. Two plans: by tokens (the default, DESIGN.md
 * section 2) and by a fixed page count (`pagesPerChunk`, an explicit override). Both keep a chunk
 * within one run of consecutive selected pages, so every chunk's pages are exactly `[first..last]`.
 */
import type { ChunkPlan } from './model.js';

/**
 * Splits the selected pages into chunks of at most `pagesPerChunk` consecutive pages.
 * A chunk never spans a gap in the selection (pages `1-3,7` with 10 per chunk gives [1,2,3] and
 * [7]).
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

/** Tokens Gemini counts for an image up to 384 x 384 pixels, and for each 768 x 768 tile of a larger one. */
export const IMAGE_TILE_TOKENS = 258;

/**
 * Estimated model tokens of one page: its text at about 4 characters a token (Gemini's own rule of
 * thumb for English; markup and whitespace included), or for a scanned page its image at Gemini's
 * image cost (258 tokens up to 384 x 384 pixels, else 258 per 768 x 768 tile). The size of an image
 * is read from its PNG header; an image of unknown size counts as 4 tiles (a page at 150 dpi).
 */
export function estimatePageTokens(page: { text: string; image?: { mimeType: string; data: string } }): number {
  const text = Math.ceil(page.text.length / 4);
  if (!page.image) return text;
  const size = pngSize(page.image.data);
  if (!size) return text + 4 * IMAGE_TILE_TOKENS;
  if (size.width <= 384 && size.height <= 384) return text + IMAGE_TILE_TOKENS;
  return text + Math.ceil(size.width / 768) * Math.ceil(size.height / 768) * IMAGE_TILE_TOKENS;
}

/** Width and height from a base64 PNG's IHDR (bytes 16-23), or undefined when it is not a PNG. */
function pngSize(base64: string): { width: number; height: number } | undefined {
  const head = Buffer.from(base64.slice(0, 32), 'base64');
  if (head.length < 24 || head.readUInt32BE(0) !== 0x89504e47 || head.toString('latin1', 12, 16) !== 'IHDR') return undefined;
  return { width: head.readUInt32BE(16), height: head.readUInt32BE(20) };
}

/** Limits of a token plan ({@link TokenChunker}). */
export interface TokenPlanOptions {
  /** Document tokens a chunk aims at (CHUNK_TARGET_TOKENS). */
  targetTokens: number;
  /** Most pages in one chunk, whatever their tokens (CHUNK_MAX_PAGES). */
  maxPages: number;
  /**
   * Chunks a document is split into at least, so that the fleet's analysis slots are all busy
   * (CHUNK_MIN_COUNT), but never more than the page plan at `pagesPerChunk` would make: a short
   * document costs no more model calls than it did when chunks were counted in pages.
   */
  minChunks: number;
  /** The page plan that bounds the floor above (PAGES_PER_CHUNK). */
  pagesPerChunk: number;
}

/**
 * Plans chunks by an estimate of their tokens, one page at a time in page order, so a split can
 * write each chunk's input as soon as its last page is read: consecutive pages are packed until
 * the next page would take the chunk over `targetTokens` (a page larger than the target is a chunk
 * of its own), never across a gap in the selection, and at most `pageCap` pages: CHUNK_MAX_PAGES,
 * lowered to what spreads the selection over the floor (`minChunks`, bounded by the page plan's
 * count). When the floor is the page plan's own count (a short document), the cap is
 * `pagesPerChunk`, so light pages give exactly the page plan.
 *
 * Deterministic in its input: the split records each chunk's first page, so a resumed split never
 * needs the text again ({@link planFromStarts}).
 */
export class TokenChunker {
  /** Most pages in one chunk of this document. */
  readonly pageCap: number;
  private readonly targetTokens: number;
  private readonly plan: ChunkPlan[] = [];
  private current: number[] = [];
  private tokens = 0;

  /** @param selected - how many pages are selected (the whole plan's input). */
  constructor(selected: number, options: TokenPlanOptions) {
    const { targetTokens, maxPages, minChunks, pagesPerChunk } = options;
    for (const [name, v] of Object.entries({ targetTokens, maxPages, minChunks, pagesPerChunk })) {
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`${name} must be a positive integer, got ${v}`);
    }
    const byPages = Math.ceil(selected / pagesPerChunk);
    const floor = Math.max(1, Math.min(minChunks, byPages));
    this.pageCap = floor === byPages ? Math.min(maxPages, pagesPerChunk) : Math.min(maxPages, Math.ceil(selected / floor));
    this.targetTokens = targetTokens;
  }

  /** Adds the next page (ascending); returns the chunk it closed, if any. */
  add(page: number, tokens: number): ChunkPlan | undefined {
    const last = this.current[this.current.length - 1];
    let closed: ChunkPlan | undefined;
    if (last !== undefined && (this.current.length === this.pageCap || this.tokens + tokens > this.targetTokens || page !== last + 1)) {
      closed = this.close();
    }
    this.current.push(page);
    this.tokens += tokens;
    return closed;
  }

  /** Closes the last chunk; returns it (undefined when no page is left). */
  finish(): ChunkPlan | undefined {
    return this.current.length > 0 ? this.close() : undefined;
  }

  /** Every chunk closed so far. */
  chunks(): readonly ChunkPlan[] {
    return this.plan;
  }

  private close(): ChunkPlan {
    const chunk = { index: this.plan.length, pages: this.current };
    this.plan.push(chunk);
    this.current = [];
    this.tokens = 0;
    return chunk;
  }
}

/** The whole token plan of pages known up front (the sync path): see {@link TokenChunker}. */
export function planChunksByTokens(pages: ReadonlyArray<{ page: number; tokens: number }>, options: TokenPlanOptions): ChunkPlan[] {
  const chunker = new TokenChunker(pages.length, options);
  for (const { page, tokens } of pages) chunker.add(page, tokens);
  chunker.finish();
  return [...chunker.chunks()];
}

/** Chunk settings of a config (the four CHUNK_ and PAGES_PER_CHUNK keys). */
export interface ChunkSettings {
  PAGES_PER_CHUNK: number;
  CHUNK_TARGET_TOKENS: number;
  CHUNK_MAX_PAGES: number;
  CHUNK_MIN_COUNT: number;
}

/**
 * The token plan's options from the config, or undefined when chunks are counted in pages: the
 * request gave `pagesPerChunk`, or CHUNK_TARGET_TOKENS is 0.
 */
export function tokenPlanOptions(config: ChunkSettings, pagesPerChunk: number | undefined): TokenPlanOptions | undefined {
  if (pagesPerChunk !== undefined || config.CHUNK_TARGET_TOKENS === 0) return undefined;
  return { targetTokens: config.CHUNK_TARGET_TOKENS, maxPages: config.CHUNK_MAX_PAGES, minChunks: config.CHUNK_MIN_COUNT, pagesPerChunk: config.PAGES_PER_CHUNK };
}

/** Each chunk's first page: what a job row keeps of a token plan ({@link planFromStarts}). */
export function chunkStarts(plan: readonly ChunkPlan[]): number[] {
  return plan.map((c) => c.pages[0] as number);
}

/** The plan of the selected pages whose chunks begin at `starts` (from {@link chunkStarts}). */
export function planFromStarts(pages: readonly number[], starts: readonly number[]): ChunkPlan[] {
  const begins = new Set(starts);
  const chunks: ChunkPlan[] = [];
  let current: number[] = [];
  for (const page of pages) {
    if (current.length > 0 && begins.has(page)) {
      chunks.push({ index: chunks.length, pages: current });
      current = [];
    }
    current.push(page);
  }
  if (current.length > 0) chunks.push({ index: chunks.length, pages: current });
  return chunks;
}

/**
 * The plan of pages whose text is known up front (the sync path, benchmarks): by tokens, or by
 * pages when the request gave `pagesPerChunk` or CHUNK_TARGET_TOKENS is 0. Also returns the chunk
 * starts a job row keeps of a token plan.
 */
export function planExtractedPages(
  config: ChunkSettings,
  pages: ReadonlyArray<{ page: number; text: string; image?: { mimeType: string; data: string } }>,
  pagesPerChunk?: number,
): { plan: ChunkPlan[]; chunkStarts?: number[] } {
  const options = tokenPlanOptions(config, pagesPerChunk);
  if (!options) return { plan: planChunks(pages.map((p) => p.page), pagesPerChunk ?? config.PAGES_PER_CHUNK) };
  const plan = planChunksByTokens(pages.map((p) => ({ page: p.page, tokens: estimatePageTokens(p) })), options);
  return { plan, chunkStarts: chunkStarts(plan) };
}
