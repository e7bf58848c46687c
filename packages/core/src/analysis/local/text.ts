/**
 * Plain-text helpers of the local analyzer: turning extracted PDF page text into prose that a
 * sentence splitter handles well, judging whether a sentence is fit to quote, and trimming.
 */

/** Lines shorter than this share of the longest line in their block may be headings. */
const SHORT_LINE_RATIO = 0.6;
const BULLET = /^(?:[-–—•●▪◦*·]|\(?\d{1,3}[.)]|\(?[a-z][.)])\s+/iu;

/**
 * Normalises one page of extracted text: Unicode compatibility forms, words hyphenated across line
 * breaks joined, wrapped lines joined into paragraphs, while headings and list items stay separate
 * paragraphs (blank-line separated, which wink-nlp treats as a sentence boundary). Without this a
 * heading would be glued to the first sentence after it.
 */
export function normalizePageText(raw: string): string {
  const text = raw
    .normalize('NFKC')
    .replace(/\r\n?/g, '\n')
    .replace(/[\u00ad\u200b-\u200d\ufeff]/g, '')
    .replace(/[\t\f\v\u00a0]+/g, ' ')
    // "invest-\nment" -> "investment" (only before a lower-case letter: keeps "Jean-\nPierre").
    .replace(/(\p{L})-[ ]*\n[ ]*(\p{Ll})/gu, '$1$2');

  const blocks = text.split(/\n[ ]*\n+/);
  const paragraphs: string[] = [];
  for (const block of blocks) {
    const lines = block
      .split('\n')
      .map((l) => l.replace(/ {2,}/g, ' ').trim())
      .filter((l) => l !== '');
    if (lines.length === 0) continue;
    const longest = Math.max(...lines.map((l) => l.length));
    let current = lines[0] as string;
    for (let i = 1; i < lines.length; i += 1) {
      const line = lines[i] as string;
      const startsItem = BULLET.test(line);
      const prevIsHeading =
        current.length < longest * SHORT_LINE_RATIO && !/[.,;:!?)\]"'”’-]$/u.test(current) && /^[\p{Lu}\d"“']/u.test(line);
      if (startsItem || prevIsHeading) {
        paragraphs.push(current);
        current = line;
      } else {
        current = `${current} ${line}`;
      }
    }
    paragraphs.push(current);
  }
  return paragraphs.join('\n\n');
}

/** Collapses all whitespace runs to one space and trims. */
export function collapseWhitespace(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

/**
 * True when a sentence reads as a complete sentence worth quoting in a summary: starts like a
 * sentence, ends with terminal punctuation, has enough words and is mostly letters (not a table
 * row, a page header or a fragment cut at a page break).
 */
export function isCleanSentence(text: string, words: number): boolean {
  if (words < 5 || words > 80) return false;
  if (!/^["“'(\[]?[\p{Lu}\d]/u.test(text)) return false;
  if (!/[.!?]["”')\]]?$/u.test(text)) return false;
  const letters = text.match(/\p{L}/gu)?.length ?? 0;
  return letters / text.length >= 0.6;
}

/** Cuts text to at most `max` characters at a word boundary, marking the cut with an ellipsis. */
export function truncate(text: string, max: number): string {
  if (text.length <= max) return text;
  const cut = text.slice(0, max - 1);
  const lastSpace = cut.lastIndexOf(' ');
  const base = lastSpace > max * 0.6 ? cut.slice(0, lastSpace) : cut;
  return `${base.replace(/[\s,;:.\-–—]+$/u, '')}…`;
}

/** Comparison key of a phrase: case, accents of quotes, whitespace and edge punctuation removed. */
export function textKey(text: string): string {
  return collapseWhitespace(text.normalize('NFKC').replace(/[’‘`]/g, "'").toLowerCase()).replace(
    /^[^\p{L}\p{N}$€£¥@#]+|[^\p{L}\p{N}%]+$/gu,
    '',
  );
}
