/**
 * The local analyzer's work, as pure synchronous functions of the text. They run inside the
 * analyzer's worker threads (./analyze-thread.ts) and are exported for direct unit tests.
 *
 * - summary: extractive; the most central sentences (TextRank over BM25 vectors, ./rank.ts),
 *   redundancy penalised (maximal marginal relevance), near-duplicates and running headers
 *   skipped, kept in document order, bounded in count and characters.
 * - key points: salient sentences other than the summary's, favouring those that name
 *   things (proper nouns, numbers, dates, amounts), in document order, trimmed.
 * - entities: ./entities.ts; sentiment: ./sentiment.ts.
 */
import type { ItemSentence, ItsFunction, Tokens } from 'wink-nlp';
import type { AnalysisKind, ChunkAnalysis, ChunkInput, FailedPage, SummaryReduceInput, SummaryReduceOutput } from '../types.js';
import { ZERO_USAGE } from '../types.js';
import { EntityCollector } from './entities.js';
import { its, winkNlp } from './nlp.js';
import { centrality } from './rank.js';
import type { WeightedScore } from './sentiment.js';
import { aggregateSentiment } from './sentiment.js';
import { collapseWhitespace, isCleanSentence, normalizePageText, textKey, truncate } from './text.js';

/** Most sentences in a summary (fewer for short texts). */
export const SUMMARY_MAX_SENTENCES = 5;
/** Fewest sentences in a summary when the text has that many. */
export const SUMMARY_MIN_SENTENCES = 3;
/** Longest summary in characters. */
export const SUMMARY_MAX_CHARS = 1_200;
/** Longer sentences are not quoted in a summary. */
export const SUMMARY_SENTENCE_MAX_CHARS = 400;
/** Fewest key points when the text has at least this many sentences. */
export const KEY_POINTS_MIN = 3;
/** Most key points of one chunk. */
export const KEY_POINTS_MAX = 7;
/** Longest key point in characters (longer ones are cut at a word boundary). */
export const KEY_POINT_MAX_CHARS = 240;
/** Most sentences ranked per call (ranking is quadratic); the longest are kept beyond this. */
export const MAX_RANKED_SENTENCES = 600;
/** Weight of a summary candidate's similarity to the sentences already chosen (maximal marginal relevance). */
export const REDUNDANCY_PENALTY = 0.5;
/** Two sentences at or above this cosine similarity count as near-duplicates. */
export const DUPLICATE_SIMILARITY = 0.6;

/** One sentence with what ranking needs. */
interface Unit {
  /** Position in document order. */
  order: number;
  text: string;
  words: number;
  /** Stems of content words (no stop words, no punctuation), plus numbers. */
  terms: string[];
  /** Proper nouns, numbers and entities it mentions: key points favour sentences that name things. */
  informative: number;
  clean: boolean;
}

/** A ranked unit: centrality adjusted for length, in 0..1. */
interface Ranked extends Unit {
  /** Index in the ranked pool (for similarity look-ups). */
  slot: number;
  score: number;
}

const NEUTRAL = Object.freeze({ label: 'neutral', score: 0 } as const);

/**
 * Analyses one chunk's pages. Pages whose text is empty or whitespace (scanned pages, whose
 * `image` this analyzer cannot read, and blank ones) are reported in `failedPages` with code
 * `NO_TEXT_LAYER`, and the rest is analysed; analyses not asked for come back empty (neutral sentiment).
 */
export function analyzeText(input: Pick<ChunkInput, 'pages' | 'analyses'>): ChunkAnalysis {
  const wanted = new Set<AnalysisKind>(input.analyses);
  const needSentences = wanted.has('summary') || wanted.has('keyPoints') || wanted.has('sentiment');
  const nlp = winkNlp();
  const itsf = its();

  const failedPages: FailedPage[] = [];
  const units: Unit[] = [];
  const sentiments: WeightedScore[] = [];
  const entities = new EntityCollector();
  /** Sentence key -> pages it occurs on. */
  const pagesOf = new Map<string, Set<number>>();
  let textLength = 0;

  for (const page of [...input.pages].sort((a, b) => a.page - b.page)) {
    const text = page.text.trim() === '' ? '' : normalizePageText(page.text);
    if (text === '') {
      failedPages.push({ page: page.page, code: 'NO_TEXT_LAYER' });
      continue;
    }
    textLength += text.length;
    const doc = nlp.readDoc(text);
    if (needSentences) {
      doc.sentences().each((s: ItemSentence) => {
        const unit = describe(collapseWhitespace(s.out()), s.tokens(), s.entities().length(), units.length);
        if (unit.words === 0) return;
        const key = textKey(unit.text);
        const seen = pagesOf.get(key);
        if (seen) {
          // Repeats (running headers, footers, boilerplate) are ranked once.
          seen.add(page.page);
        } else {
          pagesOf.set(key, new Set([page.page]));
          units.push(unit);
        }
        if (wanted.has('sentiment')) sentiments.push({ score: Number(s.out(itsf.sentiment)), weight: unit.words });
      });
    }
    if (wanted.has('entities')) entities.addPage(page.page, text, doc);
  }

  // A sentence on three or more pages is a running header or footer, not content.
  const content = units.filter((u) => (pagesOf.get(textKey(u.text))?.size ?? 0) < 3);
  const ranked = rank(wanted.has('summary') || wanted.has('keyPoints') ? content : []);
  const summary = wanted.has('summary') ? pickSummary(ranked) : [];
  const keyPoints = wanted.has('keyPoints') ? pickKeyPoints(content, ranked, summary) : [];

  return {
    summary: summary.map((u) => u.text).join(' '),
    keyPoints,
    entities: wanted.has('entities') ? entities.entities() : [],
    sentiment: wanted.has('sentiment') ? aggregateSentiment(sentiments) : { ...NEUTRAL },
    textLength,
    failedPages,
    usage: { ...ZERO_USAGE },
  };
}

/**
 * One step of the hierarchical reduce: the most central sentences of the part summaries (in their
 * original order) and up to `maxKeyPoints` of the parts' key points, most salient first, near-duplicates
 * dropped, returned in their original (page) order.
 */
export function reduceText(input: SummaryReduceInput): SummaryReduceOutput {
  const nlp = winkNlp();
  const sentences: Unit[] = [];
  for (const summary of input.summaries) {
    if (summary.trim() === '') continue;
    nlp.readDoc(collapseWhitespace(summary)).sentences().each((s: ItemSentence) => {
      const unit = describe(collapseWhitespace(s.out()), s.tokens(), s.entities().length(), sentences.length);
      if (unit.words > 0) sentences.push(unit);
    });
  }
  const points: Unit[] = [];
  for (const point of input.keyPoints) {
    const text = collapseWhitespace(point);
    if (text === '') continue;
    const doc = nlp.readDoc(text);
    points.push(describe(text, doc.tokens(), doc.entities().length(), sentences.length + points.length));
  }

  // Rank both together: a summary sentence echoed by many key points is central, and vice versa.
  const ranked = rank([...sentences, ...points]);
  const rankedSentences = ranked.filter((u) => u.order < sentences.length);
  const rankedPoints = ranked.filter((u) => u.order >= sentences.length);
  const similar = (a: Ranked, b: Ranked) => ranked.similarity(a.slot, b.slot) >= DUPLICATE_SIMILARITY;

  const summary = pickSummary(Object.assign(rankedSentences, { similarity: ranked.similarity }), SUMMARY_MAX_SENTENCES);
  const chosen: Ranked[] = [];
  const limit = Math.max(0, Math.floor(input.maxKeyPoints));
  for (const p of [...rankedPoints].sort(bySalience)) {
    if (chosen.length >= limit) break;
    if (chosen.some((c) => similar(c, p) || overlaps(c.text, p.text))) continue;
    chosen.push(p);
  }
  return {
    summary: summary.map((u) => u.text).join(' '),
    keyPoints: chosen.sort(byOrder).map((u) => truncate(u.text, KEY_POINT_MAX_CHARS)),
    usage: { ...ZERO_USAGE },
  };
}

/** Reads a sentence's tokens into a {@link Unit}. */
function describe(text: string, tokens: Tokens, entityCount: number, order: number): Unit {
  const itsf = its();
  const types = tokens.out(itsf.type) as string[];
  const stops = tokens.out(itsf.stopWordFlag) as unknown as boolean[];
  // wink's typings declare `its.stem` with an addon parameter that `out()` supplies itself.
  const stems = tokens.out(itsf.stem as unknown as ItsFunction<string>) as string[];
  const pos = tokens.out(itsf.pos) as string[];
  const normals = tokens.out(itsf.normal) as string[];
  let words = 0;
  let informative = entityCount;
  const terms: string[] = [];
  types.forEach((type, i) => {
    if (type === 'word') {
      words += 1;
      if (pos[i] === 'PROPN') informative += 1;
      const stem = stems[i] ?? '';
      if (stops[i] !== true && stem.length > 1) terms.push(stem);
    } else if (type === 'number' || type === 'ordinal' || type === 'currency' || type === 'decade') {
      words += 1;
      informative += 1;
      terms.push(normals[i] ?? '');
    } else if (type === 'alpha' || type === 'shortForm' || type === 'email' || type === 'url' || type === 'time') {
      words += 1;
      terms.push(normals[i] ?? '');
    }
  });
  return { order, text, words, terms, informative, clean: isCleanSentence(text, words) };
}

type RankedPool = Ranked[] & { similarity(a: number, b: number): number };

/** Scores units by centrality; units without content terms are left out. */
function rank(units: readonly Unit[]): RankedPool {
  let pool = units.filter((u) => u.terms.length > 0);
  if (pool.length > MAX_RANKED_SENTENCES) {
    const keep = new Set([...pool].sort((a, b) => b.words - a.words).slice(0, MAX_RANKED_SENTENCES));
    pool = pool.filter((u) => keep.has(u));
  }
  const c = centrality(pool.map((u) => u.terms));
  const ranked = pool.map((u, slot) => ({ ...u, slot, score: (c.scores[slot] ?? 0) * lengthFactor(u.words) }));
  return Object.assign(ranked, { similarity: c.similarity });
}

/** Short sentences say little and very long ones crowd a summary: damp both. */
function lengthFactor(words: number): number {
  if (words < 8) return words / 8;
  if (words > 50) return 50 / words;
  return 1;
}

/**
 * Picks the summary sentences by maximal marginal relevance: repeatedly the sentence whose
 * centrality, minus {@link REDUNDANCY_PENALTY} times its similarity to the sentences already
 * chosen, is highest. Pure centrality would pick several sentences about the same dominant topic;
 * the penalty makes the summary cover the text. Near-duplicates and over-long sentences are never picked.
 */
function pickSummary(ranked: RankedPool, max = summarySize(ranked.length)): Ranked[] {
  const chosen: Ranked[] = [];
  let chars = 0;
  const add = (u: Ranked) => {
    chars += u.text.length + (chosen.length > 0 ? 1 : 0);
    chosen.push(u);
  };
  let candidates = ranked.filter((u) => u.clean && u.text.length <= SUMMARY_SENTENCE_MAX_CHARS);
  while (chosen.length < max) {
    let best: Ranked | undefined;
    let bestValue = Number.NEGATIVE_INFINITY;
    const next: Ranked[] = [];
    for (const u of candidates) {
      const redundancy = Math.max(0, ...chosen.map((c) => ranked.similarity(c.slot, u.slot)));
      if (redundancy >= DUPLICATE_SIMILARITY || chars + u.text.length + 1 > SUMMARY_MAX_CHARS) continue;
      next.push(u);
      const value = u.score - REDUNDANCY_PENALTY * redundancy;
      if (value > bestValue || (value === bestValue && best !== undefined && u.order < best.order)) {
        best = u;
        bestValue = value;
      }
    }
    if (!best) break;
    add(best);
    const picked = best;
    candidates = next.filter((u) => u !== picked);
  }
  // Text without a single well-formed sentence (slides, tables): quote its best fragment, trimmed.
  if (chosen.length === 0) {
    const fragment = [...ranked].sort(byScore).find((u) => u.words >= 3);
    if (fragment) add({ ...fragment, text: truncate(fragment.text, SUMMARY_SENTENCE_MAX_CHARS) });
  }
  return chosen.sort(byOrder);
}

function summarySize(sentences: number): number {
  return Math.min(SUMMARY_MAX_SENTENCES, Math.max(SUMMARY_MIN_SENTENCES, Math.round(sentences / 10)));
}

/**
 * Picks key points: salient sentences beyond the summary first; when those run out, summary
 * sentences, then fragments, so that a text of at least three sentences always yields three.
 */
function pickKeyPoints(units: readonly Unit[], ranked: RankedPool, summary: readonly Ranked[]): string[] {
  const target = Math.min(KEY_POINTS_MAX, Math.max(KEY_POINTS_MIN, Math.round(ranked.length / 8)));
  const chosen: Array<Pick<Unit, 'order' | 'text'>> = [];
  const chosenSlots: number[] = [];
  const inSummary = new Set(summary.map((u) => u.order));
  const salient = [...ranked].sort(bySalience);
  const near = (u: Ranked, slots: readonly number[]) =>
    slots.some((s) => ranked.similarity(s, u.slot) >= DUPLICATE_SIMILARITY);
  const take = (u: Ranked) => {
    chosen.push(u);
    chosenSlots.push(u.slot);
  };

  for (const u of salient) {
    if (chosen.length >= target) break;
    if (!u.clean || inSummary.has(u.order) || near(u, chosenSlots) || near(u, summary.map((s) => s.slot))) continue;
    take(u);
  }
  for (const pass of [(u: Ranked) => u.clean, (u: Ranked) => u.words >= 3]) {
    for (const u of salient) {
      if (chosen.length >= Math.min(KEY_POINTS_MIN, ranked.length)) break;
      if (!pass(u) || chosen.some((c) => c.order === u.order) || near(u, chosenSlots)) continue;
      take(u);
    }
  }
  // Last resort for texts of short or content-free sentences: any distinct sentence.
  if (chosen.length < KEY_POINTS_MIN) {
    const keys = new Set(chosen.map((c) => textKey(c.text)));
    for (const u of units) {
      if (chosen.length >= KEY_POINTS_MIN) break;
      const key = textKey(u.text);
      if (key === '' || keys.has(key)) continue;
      keys.add(key);
      chosen.push(u);
    }
  }
  return chosen.sort(byOrder).map((u) => truncate(u.text, KEY_POINT_MAX_CHARS));
}

/** Centrality plus a bonus for naming things (people, places, figures, dates). */
function salience(u: Ranked): number {
  return u.score + 0.35 * Math.min(1, u.informative / 3);
}

function byScore(a: Ranked, b: Ranked): number {
  return b.score - a.score || a.order - b.order;
}

function bySalience(a: Ranked, b: Ranked): number {
  return salience(b) - salience(a) || a.order - b.order;
}

function byOrder(a: Pick<Unit, 'order'>, b: Pick<Unit, 'order'>): number {
  return a.order - b.order;
}

/** True when one text contains the other (ignoring case, punctuation and a trailing ellipsis). */
function overlaps(a: string, b: string): boolean {
  const ka = textKey(a.replace(/…$/u, ''));
  const kb = textKey(b.replace(/…$/u, ''));
  return ka !== '' && kb !== '' && (ka.includes(kb) || kb.includes(ka));
}
