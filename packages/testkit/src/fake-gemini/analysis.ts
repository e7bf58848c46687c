/**
 * The fake model's "intelligence": a plausible analysis computed from the request's own text,
 * so that results downstream look like results (and tests can check grounding) without a model.
 *
 * - summary: the first sentences of the content; key points: the next sentences that carry
 *   names or figures;
 * - entities: e-mails, URLs, amounts, percentages, dates, and capitalised name sequences, typed by
 *   simple cues, counted, with the pages they occur on;
 * - sentiment: a small word list.
 *
 * Content is read from our analyzer's markup (`<page n="N">` ... `</page>` for a chunk,
 * `<part>` and `<point>` for a reduce); a request without markup is analysed as one page 1.
 */

/** One page found in a request. */
export interface FakePage {
  page: number;
  text: string;
  /** The page was sent as an image (`scanned="true"`). */
  scanned: boolean;
}

/** What the fake reads from a request's text. */
export interface ParsedContent {
  kind: 'chunk' | 'reduce';
  pages: FakePage[];
  /** Reduce: the part summaries and key points. */
  parts: string[];
  points: string[];
}

const PAGE = /<page (?:number|n)="(\d+)"( scanned="true")?>([\s\S]*?)<\/page>/g;
const PART = /<part index="\d+">([\s\S]*?)<\/part>/g;
const POINT = /<point>([\s\S]*?)<\/point>/g;

/** Splits the request's text into pages (chunk) or parts and points (reduce). */
export function parseContent(text: string): ParsedContent {
  const pages = [...text.matchAll(PAGE)].map((m) => ({ page: Number(m[1]), scanned: m[2] !== undefined, text: (m[3] ?? '').trim() }));
  if (pages.length > 0) return { kind: 'chunk', pages, parts: [], points: [] };
  const parts = [...text.matchAll(PART)].map((m) => (m[1] ?? '').trim());
  if (parts.length > 0) {
    return { kind: 'reduce', pages: [], parts, points: [...text.matchAll(POINT)].map((m) => (m[1] ?? '').trim()) };
  }
  return { kind: 'chunk', pages: [{ page: 1, text: text.trim(), scanned: false }], parts: [], points: [] };
}

/** Sentences of a text (naive, good enough for a fake). */
export function sentences(text: string): string[] {
  return text
    .replace(/\s+/g, ' ')
    .split(/(?<=[.!?])\s+(?=[A-Z0-9"“(])/)
    .map((s) => s.trim())
    .filter((s) => s.split(' ').length >= 3);
}

function words(sentence: string, max: number): string {
  const w = sentence.split(' ');
  return w.length <= max ? sentence : `${w.slice(0, max).join(' ')}…`;
}

const STOP = new Set(
  'The A An This That These Those In On At For From To Of By With As It Its We Our He She His Her They Their I You Your And But Or If When While After Before Each Every All Any Some No Not Page Section Chapter Table Figure Note Yes There Here What Which Who How Why Where Also However Therefore Thus Then Now New'.split(' '),
);
const ORG_WORDS = new Set(
  'Inc Inc. Corp Corp. Corporation Ltd Ltd. LLC Company Co Group Bank University Institute Agency Association Council Ministry Department Foundation Partners Holdings Committee Commission Board Authority Bureau Office Court Fund Trust'.split(' '),
);
const PLACES = new Set(
  'London Paris Berlin Madrid Rome Vienna Zurich Geneva Amsterdam Brussels Dublin Lisbon Prague Warsaw Stockholm Oslo Copenhagen Helsinki Tokyo Beijing Shanghai Singapore Sydney Melbourne Toronto Vancouver Chicago Boston Seattle Austin Denver Texas California Florida Washington York Europe Asia Africa America Germany France Spain Italy Japan China India Canada Australia Brazil Mexico England Scotland Ireland'.split(' '),
);
const MONTHS = 'January|February|March|April|May|June|July|August|September|October|November|December';

const PATTERNS: Array<{ type: string; re: RegExp }> = [
  { type: 'EMAIL', re: /[\w.+-]+@[\w-]+(?:\.[\w-]+)+/g },
  { type: 'URL', re: /https?:\/\/[^\s<>"')]+/g },
  { type: 'MONEY', re: /[$€£]\s?\d[\d,]*(?:\.\d+)?(?:\s?(?:million|billion|thousand|[mbk]n?))?/gi },
  { type: 'PERCENT', re: /\b\d+(?:\.\d+)?\s?(?:%|percent\b)/gi },
  { type: 'DATE', re: new RegExp(`\\b(?:\\d{1,2}\\s+(?:${MONTHS})\\s+\\d{4}|(?:${MONTHS})\\s+\\d{1,2},?\\s+\\d{4}|\\d{4}-\\d{2}-\\d{2})\\b`, 'g') },
];
const NAME = /\b[A-Z][a-zA-Z'’-]+(?:\s+(?:of\s+|and\s+|&\s+)?[A-Z][a-zA-Z'’.-]+)*/g;

function nameType(name: string): string {
  const parts = name.split(/\s+/);
  if (parts.some((p) => ORG_WORDS.has(p))) return 'ORGANIZATION';
  if (parts.some((p) => PLACES.has(p))) return 'LOCATION';
  if (parts.length >= 2 && parts.length <= 3 && parts.every((p) => /^[A-Z][a-z'’-]+$/.test(p))) return 'PERSON';
  return 'OTHER';
}

/** An entity as the fake reports it. */
export interface FakeEntity {
  text: string;
  type: string;
  count: number;
  pages: number[];
}

/** Entities of the pages (most frequent first, at most `max`). */
export function extractEntities(pages: readonly FakePage[], max = 40): FakeEntity[] {
  const found = new Map<string, FakeEntity>();
  const add = (text: string, type: string, page: number) => {
    const key = `${type}|${text}`;
    const e = found.get(key) ?? { text, type, count: 0, pages: [] };
    e.count++;
    if (!e.pages.includes(page)) e.pages.push(page);
    found.set(key, e);
  };
  for (const p of pages) {
    let rest = p.text;
    for (const { type, re } of PATTERNS) {
      rest = rest.replace(re, (m) => {
        add(m.trim(), type, p.page);
        return ' ';
      });
    }
    for (const sentence of sentences(rest).length > 0 ? sentences(rest) : [rest]) {
      for (const m of sentence.matchAll(NAME)) {
        let name = m[0].replace(/[.’']+$/, '');
        // A sentence's first word is capitalised anyway: keep it only as part of a longer name.
        const first = name.split(/\s+/)[0] ?? '';
        if (STOP.has(first)) name = name.split(/\s+/).slice(1).join(' ');
        if (name.length < 3 || STOP.has(name)) continue;
        if (m.index === 0 && !name.includes(' ') && !PLACES.has(name) && !ORG_WORDS.has(name)) continue;
        add(name, nameType(name), p.page);
      }
    }
  }
  return [...found.values()]
    .map((e) => ({ ...e, pages: e.pages.sort((a, b) => a - b) }))
    .sort((a, b) => b.count - a.count || a.text.localeCompare(b.text))
    .slice(0, max);
}

const POSITIVE = new Set(
  'good great excellent positive growth gain gains improve improved improvement success successful strong benefit benefits profit profitable increase increased happy pleased record best better opportunity advantage efficient approve approved agree agreement win won'.split(' '),
);
const NEGATIVE = new Set(
  'bad poor negative loss losses decline declined decrease decreased risk risks fail failed failure weak problem problems issue issues concern concerns debt deficit breach penalty penalties dispute lawsuit terminate terminated delay delayed worse worst damage damages'.split(' '),
);

/** Sentiment from the word lists: score in [-1, 1], label by sign and spread. */
export function sentimentOf(text: string): { label: string; score: number } {
  let pos = 0;
  let neg = 0;
  for (const w of text.toLowerCase().match(/[a-z]+/g) ?? []) {
    if (POSITIVE.has(w)) pos++;
    else if (NEGATIVE.has(w)) neg++;
  }
  const score = Math.round(((pos - neg) / Math.max(1, pos + neg)) * 100) / 100;
  const label = pos >= 2 && neg >= 2 && Math.abs(score) < 0.34 ? 'mixed' : score > 0.1 ? 'positive' : score < -0.1 ? 'negative' : 'neutral';
  return { label, score };
}

/** The full analysis of a chunk (every field; the response schema then picks what was asked). */
export function analyseChunk(pages: readonly FakePage[]): Record<string, unknown> {
  const text = pages.map((p) => (p.scanned ? `Page ${p.page} is a scanned image.` : p.text)).join('\n\n');
  const all = sentences(text);
  const summary = all.length > 0 ? all.slice(0, 2).map((s) => words(s, 40)).join(' ') : words(text.replace(/\s+/g, ' ').trim(), 60) || 'The excerpt has no readable text.';
  const keyPoints = all
    .slice(2)
    .filter((s) => /\d|[A-Z][a-z]+\s+[A-Z]/.test(s))
    .slice(0, 5)
    .map((s) => words(s, 30));
  return {
    summary,
    keyPoints: keyPoints.length > 0 ? keyPoints : all.slice(2, 5).map((s) => words(s, 30)),
    entities: extractEntities(pages.filter((p) => !p.scanned)),
    sentiment: sentimentOf(text),
  };
}

/** One reduce step: the first sentence of each part, and the first key points. */
export function analyseReduce(parts: readonly string[], points: readonly string[]): Record<string, unknown> {
  const summary = parts
    .map((p) => sentences(p)[0] ?? p)
    .filter((s) => s !== '')
    .map((s) => words(s, 40))
    .join(' ');
  return { summary: summary || 'No summary.', keyPoints: [...new Set(points)] };
}
