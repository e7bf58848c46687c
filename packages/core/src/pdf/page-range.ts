import { DocorchError } from '../errors.js';

/**
 * Parses a page selection like `1-3,7,10-` into ascending unique 1-based page numbers.
 * `N-` means N to the last page. Throws INVALID_REQUEST for malformed text and
 * INVALID_PAGE_RANGE for pages outside `1..pageCount`.
 */
export function parsePageRange(spec: string | undefined, pageCount: number): number[] {
  if (spec === undefined || spec.trim() === '' || spec.trim() === 'all') {
    return Array.from({ length: pageCount }, (_, i) => i + 1);
  }
  const pages = new Set<number>();
  for (const raw of spec.split(',')) {
    const part = raw.trim();
    const m = /^(\d+)(?:\s*-\s*(\d*))?$/.exec(part);
    if (!m) {
      throw new DocorchError('INVALID_REQUEST', `Malformed page range "${part}"; expected e.g. 1-3,7`, {
        details: { pages: spec },
      });
    }
    const first = Number(m[1]);
    const last = m[2] === undefined ? first : m[2] === '' ? pageCount : Number(m[2]);
    if (first < 1 || last < first || last > pageCount) {
      throw new DocorchError(
        'INVALID_PAGE_RANGE',
        `Page range "${part}" is outside the document's pages 1-${pageCount}`,
        { details: { pages: spec, pageCount } },
      );
    }
    for (let p = first; p <= last; p++) pages.add(p);
  }
  return [...pages].sort((a, b) => a - b);
}

/** Checks the syntax of a page selection without knowing the page count (API input validation). */
export function isPageRangeSyntax(spec: string): boolean {
  return /^\s*(all|\d+(\s*-\s*\d*)?(\s*,\s*\d+(\s*-\s*\d*)?)*)\s*$/.test(spec);
}
