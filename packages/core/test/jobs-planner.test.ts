import { describe, expect, it } from 'vitest';
import {
  chunkStarts,
  estimatePageTokens,
  IMAGE_TILE_TOKENS,
  planChunks,
  planChunksByTokens,
  planFromStarts,
  TokenChunker,
  tokenPlanOptions,
  type TokenPlanOptions,
} from '../src/jobs/planner.js';

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const pages = (numbers: readonly number[], tokens: number | ((page: number) => number)) =>
  numbers.map((page) => ({ page, tokens: typeof tokens === 'number' ? tokens : tokens(page) }));
const OPTIONS: TokenPlanOptions = { targetTokens: 8000, maxPages: 100, minChunks: 8, pagesPerChunk: 10 };
const sizes = (plan: ReadonlyArray<{ pages: number[] }>) => plan.map((c) => c.pages.length);

/** A PNG of width x height, as far as its header goes (what the estimate reads). */
function pngHeader(width: number, height: number): string {
  const b = Buffer.alloc(33);
  b.writeUInt32BE(0x89504e47, 0);
  b.writeUInt32BE(0x0d0a1a0a, 4);
  b.writeUInt32BE(13, 8);
  b.write('IHDR', 12, 'latin1');
  b.writeUInt32BE(width, 16);
  b.writeUInt32BE(height, 20);
  return b.toString('base64');
}

describe('token plan', () => {
  it('packs light pages of a long document up to the target, in as few calls as the floor allows', () => {
    // 500 pages of ~120 tokens: 60,000 tokens; 8,000 a call gives 8 chunks (the floor is 8 too).
    const plan = planChunksByTokens(pages(range(1, 500), 120), OPTIONS);
    expect(plan.length).toBe(8);
    expect(plan.flatMap((c) => c.pages)).toEqual(range(1, 500));
    for (const c of plan) expect(c.pages.length * 120).toBeLessThanOrEqual(8000);
    expect(plan.map((c) => c.index)).toEqual(range(0, 7));
  });

  it('on a 1,000-page light document makes 16 calls where pages of 10 made 100', () => {
    const plan = planChunksByTokens(pages(range(1, 1000), 120), OPTIONS);
    expect(plan.length).toBe(16);
    expect(planChunks(range(1, 1000), 10).length).toBe(100);
  });

  it('keeps the floor: a 200-page light document is spread over 8 chunks, not packed into 3', () => {
    const plan = planChunksByTokens(pages(range(1, 200), 120), OPTIONS);
    expect(plan.length).toBe(8);
    expect(Math.max(...sizes(plan))).toBe(25);
  });

  it('a short document gets exactly the page plan: never more calls than pages of PAGES_PER_CHUNK gave', () => {
    for (const n of [1, 3, 9, 10, 25, 79, 80]) {
      expect(planChunksByTokens(pages(range(1, n), 120), OPTIONS)).toEqual(planChunks(range(1, n), 10));
    }
  });

  it('splits dense pages by tokens, and a page over the target is a chunk of its own', () => {
    const plan = planChunksByTokens(pages(range(1, 6), (p) => (p === 3 ? 20_000 : 3_000)), OPTIONS);
    expect(plan.map((c) => c.pages)).toEqual([[1, 2], [3], [4, 5], [6]]);
  });

  it('never spans a gap in the selection and never exceeds the page cap', () => {
    const selected = [...range(1, 3), ...range(7, 400)];
    const plan = planChunksByTokens(pages(selected, 1), { ...OPTIONS, maxPages: 30, minChunks: 2 });
    for (const c of plan) {
      expect(c.pages.length).toBeLessThanOrEqual(30);
      expect(c.pages).toEqual(range(c.pages[0] as number, c.pages[c.pages.length - 1] as number));
    }
    expect(plan[0]?.pages).toEqual([1, 2, 3]);
  });

  it('is rebuilt from its chunk starts alone (a resumed split needs no text)', () => {
    const selected = [...range(1, 40), ...range(45, 300)];
    const plan = planChunksByTokens(pages(selected, (p) => (p % 7) * 300), OPTIONS);
    expect(planFromStarts(selected, chunkStarts(plan))).toEqual(plan);
  });

  it('chunks page by page give the same plan as the whole (the split streams)', () => {
    const input = pages(range(1, 333), (p) => 50 + ((p * 37) % 400));
    const chunker = new TokenChunker(input.length, OPTIONS);
    const closed = input.map((p) => chunker.add(p.page, p.tokens)).filter((c) => c !== undefined);
    const last = chunker.finish();
    expect([...closed, last]).toEqual(planChunksByTokens(input, OPTIONS));
  });

  it('rejects options that are not positive integers', () => {
    expect(() => planChunksByTokens([], { ...OPTIONS, targetTokens: 0 })).toThrow(RangeError);
  });
});

describe('estimatePageTokens', () => {
  it('counts text at 4 characters a token', () => {
    expect(estimatePageTokens({ text: 'x'.repeat(4001) })).toBe(1001);
  });

  it('counts a scanned page at Gemini image cost: one tile up to 384 px, else 768 px tiles', () => {
    const image = (w: number, h: number) => ({ mimeType: 'image/png', data: pngHeader(w, h) });
    expect(estimatePageTokens({ text: '', image: image(300, 384) })).toBe(IMAGE_TILE_TOKENS);
    expect(estimatePageTokens({ text: '', image: image(1275, 1650) })).toBe(2 * 3 * IMAGE_TILE_TOKENS);
    expect(estimatePageTokens({ text: '', image: { mimeType: 'image/jpeg', data: '/9j/4AAQ' } })).toBe(4 * IMAGE_TILE_TOKENS);
  });
});

describe('tokenPlanOptions', () => {
  const config = { PAGES_PER_CHUNK: 10, CHUNK_TARGET_TOKENS: 8000, CHUNK_MAX_PAGES: 100, CHUNK_MIN_COUNT: 8 };
  it('plans by tokens unless the request gives pagesPerChunk or the target is 0', () => {
    expect(tokenPlanOptions(config, undefined)).toEqual(OPTIONS);
    expect(tokenPlanOptions(config, 5)).toBeUndefined();
    expect(tokenPlanOptions({ ...config, CHUNK_TARGET_TOKENS: 0 }, undefined)).toBeUndefined();
  });
});
