/** Turns PDF.js text items into page text. */

/** The part of a PDF.js text item this module reads (marked-content items have no `str`). */
export interface TextPiece {
  str?: string;
  hasEOL?: boolean;
}

// C0/C1 control characters other than tab and newline: PDF.js emits them for unmapped glyphs,
// and they only add noise for search, NLP and JSON consumers.
const CONTROL = /[\u0000-\u0008\u000B-\u001F\u007F-\u009F]/g;
const HORIZONTAL_SPACE = /[ \t\f\v\u00A0\u1680\u2000-\u200A\u202F\u205F\u3000\uFEFF]+/g;

/** Appends items to a running page buffer; cheap enough to call per streamed chunk. */
export function appendItems(parts: string[], items: readonly TextPiece[]): number {
  let chars = 0;
  for (const item of items) {
    const str = item.str;
    if (str === undefined) continue;
    if (str.length > 0) {
      parts.push(str);
      chars += str.length;
    }
    if (item.hasEOL) parts.push('\n');
  }
  return chars;
}

/**
 * Normalises page text: one line per text line (PDF.js `hasEOL`), runs of horizontal whitespace
 * as one space, no leading/trailing spaces, no empty lines, no control characters.
 */
export function normalizePageText(raw: string): string {
  const lines = raw.replace(/\r\n?/g, '\n').replace(CONTROL, '').split('\n');
  const out: string[] = [];
  for (const line of lines) {
    const clean = line.replace(HORIZONTAL_SPACE, ' ').trim();
    if (clean !== '') out.push(clean);
  }
  return out.join('\n');
}

/** True when the text has any non-whitespace character. */
export function hasText(text: string): boolean {
  return /\S/.test(text);
}
