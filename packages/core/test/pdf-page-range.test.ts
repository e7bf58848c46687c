import { describe, expect, it } from 'vitest';
import { DocorchError } from '../src/errors.js';
import { planSlices } from '../src/pdf/extractor.js';
import { isPageRangeSyntax, parsePageRange } from '../src/pdf/page-range.js';
import { appendItems, hasText, normalizePageText } from '../src/pdf/text.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof DocorchError ? err.code : 'not-a-DocorchError';
  }
  return undefined;
}

describe('parsePageRange', () => {
  it('selects every page when the spec is absent, empty or "all"', () => {
    expect(parsePageRange(undefined, 3)).toEqual([1, 2, 3]);
    expect(parsePageRange('', 3)).toEqual([1, 2, 3]);
    expect(parsePageRange(' all ', 3)).toEqual([1, 2, 3]);
  });

  it('parses single pages, ranges and open ranges, sorted and without duplicates', () => {
    expect(parsePageRange('2', 5)).toEqual([2]);
    expect(parsePageRange('1-3,7', 10)).toEqual([1, 2, 3, 7]);
    expect(parsePageRange('4-', 6)).toEqual([4, 5, 6]);
    expect(parsePageRange('5, 1-2, 2-3', 6)).toEqual([1, 2, 3, 5]);
    expect(parsePageRange('3 - 4', 6)).toEqual([3, 4]);
  });

  it('answers INVALID_PAGE_RANGE for pages outside the document', () => {
    expect(codeOf(() => parsePageRange('4', 3))).toBe('INVALID_PAGE_RANGE');
    expect(codeOf(() => parsePageRange('0', 3))).toBe('INVALID_PAGE_RANGE');
    expect(codeOf(() => parsePageRange('2-9', 3))).toBe('INVALID_PAGE_RANGE');
    expect(codeOf(() => parsePageRange('3-2', 3))).toBe('INVALID_PAGE_RANGE');
  });

  it('answers INVALID_REQUEST for malformed text', () => {
    expect(codeOf(() => parsePageRange('abc', 3))).toBe('INVALID_REQUEST');
    expect(codeOf(() => parsePageRange('1,,2', 3))).toBe('INVALID_REQUEST');
    expect(codeOf(() => parsePageRange('-2', 3))).toBe('INVALID_REQUEST');
  });

  it('checks the syntax without a page count', () => {
    expect(isPageRangeSyntax('1-3,7,10-')).toBe(true);
    expect(isPageRangeSyntax('all')).toBe(true);
    expect(isPageRangeSyntax('1;2')).toBe(false);
    expect(isPageRangeSyntax('x')).toBe(false);
  });
});

describe('planSlices', () => {
  const pages = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

  it('keeps a small selection in one slice', () => {
    expect(planSlices(pages(10), 4, 250)).toEqual([pages(10)]);
    expect(planSlices([], 4, 250)).toEqual([]);
  });

  it('covers every page once, in order, within the slice size', () => {
    for (const [n, workers, size] of [
      [1000, 2, 250],
      [1000, 4, 250],
      [97, 3, 10],
      [2000, 1, 250],
      [30, 2, 250],
    ] as const) {
      const slices = planSlices(pages(n), workers, size);
      expect(slices.flat()).toEqual(pages(n));
      for (const s of slices) expect(s.length).toBeLessThanOrEqual(size);
      // Whole rounds: every worker gets the same number of slices.
      if (slices.length > workers) expect(slices.length % workers).toBe(0);
    }
  });

  it('uses every worker for a mid-sized selection', () => {
    expect(planSlices(pages(100), 2, 250)).toHaveLength(2);
    expect(planSlices(pages(1000), 2, 250)).toHaveLength(4);
  });

  it('keeps non-contiguous selections in order', () => {
    const selected = [1, 2, 3, 50, 51, 52, 99, 100];
    expect(planSlices(selected, 2, 3).flat()).toEqual(selected);
  });
});

describe('page text normalisation', () => {
  it('joins items, breaks lines at hasEOL and normalises whitespace', () => {
    const parts: string[] = [];
    const chars = appendItems(parts, [
      { str: 'Hello', hasEOL: false },
      { str: ' ', hasEOL: false },
      { str: 'world', hasEOL: true },
      {},
      { str: '  second\tline  ', hasEOL: true },
      { str: '', hasEOL: true },
      { str: 'third\u00a0\u00a0line\u0000', hasEOL: false },
    ]);
    expect(chars).toBe(5 + 1 + 5 + 15 + 12);
    expect(normalizePageText(parts.join(''))).toBe('Hello world\nsecond line\nthird line');
  });

  it('detects a text layer from non-whitespace only', () => {
    expect(hasText('')).toBe(false);
    expect(hasText(' \n\t')).toBe(false);
    expect(hasText(' a ')).toBe(true);
  });
});
