/**
 * Named entities of the local analyzer: people, places and organisations from compromise; dates,
 * amounts of money, percentages, e-mail addresses and URLs from wink-nlp's entity recogniser.
 * Mentions are cleaned (honorifics, possessives, edge punctuation), junk is dropped, and variants
 * that differ only in case, whitespace or punctuation are merged with their counts and pages.
 */
import type { Document, ItemEntity } from 'wink-nlp';
import type { Entity, EntityType } from '../types.js';
import { compromise, its, winkNlp } from './nlp.js';
import { collapseWhitespace, textKey } from './text.js';

/** Most entities one chunk reports (the most frequent first), which keeps results bounded. */
export const MAX_ENTITIES_PER_CHUNK = 200;

/**
 * Most characters of one page scanned for people, places and organisations. compromise takes
 * ~10 µs per character; a normal page has 2,000-6,000, so only a pathological page (a text dump
 * in a PDF) is cut, instead of running into the analysis timeout. Dates, amounts and the rest
 * are still found in the whole page.
 */
export const MAX_NAME_SCAN_CHARS = 50_000;

/** wink-nlp entity types we report, and how they map to ours (CARDINAL, DURATION, TIME... are noise). */
const WINK_TYPES: Readonly<Record<string, EntityType>> = {
  DATE: 'DATE',
  MONEY: 'MONEY',
  PERCENT: 'PERCENT',
  EMAIL: 'EMAIL',
  URL: 'URL',
};

const HONORIFIC = /^(?:mr|mrs|ms|mx|miss|dr|prof|professor|sir|dame|madam|madame|lord|lady|rev|hon|president|senator|judge)\.?\s+/iu;
const LEADING_ARTICLE = /^the\s+/iu;
const DATE_PREPOSITION = /^(?:(?:by|in|on|at|since|until|till|from|before|after|during|of|the|early|late|mid)\s+)+/iu;
/** Lower-case particles of names ("Ludwig van Beethoven", "Bank of America"). */
const NAME_PARTICLES = new Set(['of', 'and', '&', 'de', 'da', 'del', 'della', 'di', 'du', 'van', 'von', 'der', 'den', 'la', 'le', 'bin', 'al', 'y', 'dos', 'das', 'for', 'the']);
// Capitalised, so that wink's occasional "this may" (the verb) is not taken for a date.
const MONTH_OR_DAY =
  /\b(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sept?(?:ember)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?|Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)\b/u;

interface Merged {
  /** Mentions per type (the majority wins). */
  types: Map<EntityType, number>;
  /** Mentions per surface form (the most frequent is the entity's text). */
  surfaces: Map<string, number>;
  count: number;
  pages: Set<number>;
  first: number;
}

/** Accumulates entity mentions page by page and merges their variants. */
export class EntityCollector {
  readonly #merged = new Map<string, Merged>();
  #seen = 0;

  /** Adds the entities of one page: `winkDoc` is the page's wink document, `text` its normalised text. */
  addPage(page: number, text: string, winkDoc: Document): void {
    const itsf = its();
    winkDoc.entities().each((e: ItemEntity) => {
      const detail = e.out(itsf.detail) as { value: string; type: string };
      const type = WINK_TYPES[detail.type];
      if (type) this.#add(type, detail.value, page);
    });

    const doc = compromise(headOf(text, MAX_NAME_SCAN_CHARS));
    const named: Array<[EntityType, string[]]> = [
      ['PERSON', doc.people().not('#Honorific').out('array') as string[]],
      ['ORGANIZATION', doc.organizations().out('array') as string[]],
      ['LOCATION', doc.places().out('array') as string[]],
    ];
    for (const [type, mentions] of named) {
      for (const mention of mentions) this.#add(type, mention, page);
    }
  }

  /**
   * The merged entities, most frequent first (ties: first seen), at most {@link MAX_ENTITIES_PER_CHUNK}.
   * A surname used alone ("Gonzalez") is counted with the one full name that ends with it
   * ("Maria Gonzalez"); when several full names share it, it stays an entity of its own.
   */
  entities(): Entity[] {
    const records = [...this.#merged.values()].map((m) => ({
      text: mostFrequent(m.surfaces),
      type: mostFrequent(m.types),
      count: m.count,
      pages: new Set(m.pages),
      first: m.first,
    }));
    const fullNames = new Map<string, Array<(typeof records)[number]>>();
    for (const r of records) {
      const words = textKey(r.text).split(' ');
      if (r.type !== 'PERSON' || words.length < 2) continue;
      const last = words[words.length - 1] as string;
      fullNames.set(last, [...(fullNames.get(last) ?? []), r]);
    }
    const kept = records.filter((r) => {
      const key = textKey(r.text);
      const owners = r.type === 'PERSON' && !key.includes(' ') ? fullNames.get(key) : undefined;
      if (owners?.length !== 1) return true;
      const owner = owners[0] as (typeof records)[number];
      owner.count += r.count;
      for (const p of r.pages) owner.pages.add(p);
      owner.first = Math.min(owner.first, r.first);
      return false;
    });
    return kept
      .sort((a, b) => b.count - a.count || a.first - b.first)
      .slice(0, MAX_ENTITIES_PER_CHUNK)
      .map((r) => ({ text: r.text, type: r.type, count: r.count, pages: [...r.pages].sort((a, b) => a - b) }));
  }

  #add(type: EntityType, raw: string, page: number): void {
    const text = cleanMention(type, raw);
    if (text === null) return;
    // People, places and organisations share one key space so that a name compromise tags
    // differently in two sentences is still one entity, reported with its majority type.
    const group = type === 'PERSON' || type === 'ORGANIZATION' || type === 'LOCATION' ? 'NAME' : type;
    const key = `${group}:${textKey(text)}`;
    let m = this.#merged.get(key);
    if (!m) {
      m = { types: new Map(), surfaces: new Map(), count: 0, pages: new Set(), first: this.#seen };
      this.#merged.set(key, m);
    }
    this.#seen += 1;
    m.count += 1;
    m.pages.add(page);
    m.surfaces.set(text, (m.surfaces.get(text) ?? 0) + 1);
    m.types.set(type, (m.types.get(type) ?? 0) + 1);
  }
}

/** Cleans one mention, or returns null when it is junk. */
function cleanMention(type: EntityType, raw: string): string | null {
  let text = collapseWhitespace(raw.normalize('NFKC'))
    .replace(/^[^\p{L}\p{N}$€£¥@(]+/u, '')
    .replace(/[^\p{L}\p{N}%)]+$/u, '');
  switch (type) {
    case 'PERSON':
    case 'ORGANIZATION':
    case 'LOCATION': {
      text = text.replace(/['’]s$/u, '').replace(/['’]$/u, '');
      while (HONORIFIC.test(text)) text = text.replace(HONORIFIC, '');
      text = text.replace(LEADING_ARTICLE, '');
      return isProperName(text) ? text : null;
    }
    case 'DATE':
      text = text.replace(DATE_PREPOSITION, '');
      // Keep calendar dates; vague ones ("today", "this week") say nothing about the document.
      return /\d/.test(text) || MONTH_OR_DAY.test(text) ? text : null;
    case 'MONEY':
    case 'PERCENT':
      return /\d/.test(text) ? text : null;
    case 'EMAIL': {
      // PDF text glues addresses to markup ("{gal,jruderman}@mozilla.com"): keep the address.
      const address = /[\p{L}\p{N}._%+-]+@[\p{L}\p{N}.-]+\.\p{L}{2,}/u.exec(text);
      return address ? address[0].toLowerCase() : null;
    }
    case 'URL':
      return text.length >= 4 ? text.replace(/[.,;:!?]+$/u, '') : null;
    default:
      return text.length >= 2 ? text : null;
  }
}

/**
 * True for a plausible proper name: 2-80 characters, every word capitalised (or a digit, or a
 * particle such as "of" or "van"), and not only stop words. compromise sometimes tags a capitalised
 * name plus a common noun ("Berlin team") or a pronoun at a sentence start; those are dropped.
 */
function isProperName(text: string): boolean {
  if (text.length < 2 || text.length > 80 || !/\p{L}{2}/u.test(text)) return false;
  const words = text.split(' ');
  if (!words.every((w) => /^[\p{Lu}\d]/u.test(w) || NAME_PARTICLES.has(w))) return false;
  const key = text.toLowerCase();
  let content = contentCache.get(key);
  if (content === undefined) {
    const itsf = its();
    const tokens = winkNlp().readDoc(key).tokens();
    const types = tokens.out(itsf.type) as string[];
    const stops = tokens.out(itsf.stopWordFlag) as unknown as boolean[];
    content = types.some((t, i) => t === 'word' && stops[i] !== true);
    // Names recur across chunks; the cap keeps a long-lived thread's memory flat.
    if (contentCache.size >= 10_000) contentCache.clear();
    contentCache.set(key, content);
  }
  return content;
}

/** Phrase (lower case) -> has a word that is not a stop word. */
const contentCache = new Map<string, boolean>();

/** The text, or its first `max` characters cut at a space. */
function headOf(text: string, max: number): string {
  if (text.length <= max) return text;
  const cut = text.lastIndexOf(' ', max);
  return text.slice(0, cut > 0 ? cut : max);
}

/** The key with the highest count; ties go to the first inserted. */
function mostFrequent<K>(counts: Map<K, number>): K {
  let best: K | undefined;
  let bestCount = -1;
  for (const [k, c] of counts) {
    if (c > bestCount) {
      best = k;
      bestCount = c;
    }
  }
  return best as K;
}
