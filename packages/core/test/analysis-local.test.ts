import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyzeText, reduceText } from '../src/analysis/local/analyze-text.js';
import { LOCAL_ANALYZER_NAME } from '../src/analysis/local/local-analyzer.js';
import { aggregateSentiment } from '../src/analysis/local/sentiment.js';
import { normalizePageText } from '../src/analysis/local/text.js';
import {
  ANALYSIS_KINDS,
  createLocalAnalyzer,
  isDocorchError,
  type Analyzer,
  type ChunkAnalysis,
  type ChunkInput,
  type Entity,
  type PageText,
} from '../src/index.js';

const ALL = [...ANALYSIS_KINDS];

const POSITIVE: PageText[] = [
  {
    page: 1,
    text: `Acme Corporation Annual Review

On March 3, 2024, Maria Gonzalez, the chief executive of Acme Corporation, announced a $4.5 million
investment in a new research centre in Paris. The board welcomed the decision with great enthusiasm,
and employees celebrated a remarkable year of growth. Revenue rose 18% compared with the previous
year, the best result in the company's history.
Maria Gonzalez said the success reflects the excellent work of a talented and dedicated team.`,
  },
  {
    page: 2,
    text: `John Smith, who leads the engineering group in Berlin, praised the outstanding collaboration
between the two offices. The new products were well received by customers, who described them as
reliable, elegant and easy to use. Customer satisfaction reached 94 percent, an impressive improvement.
John Smith expects the engineering group in Berlin to double in size by 2025. Partners in Paris and
Berlin are excited about the opportunities ahead. Journalists can write to press@acme-corp.example or
read more at https://acme-corp.example/news.`,
  },
  {
    page: 3,
    text: `Looking ahead, Acme Corporation plans to hire 200 engineers and to open a third office. Maria
Gonzalez thanked shareholders for their loyal support and said she was proud and grateful. The company
will present its strategy at the investor day on June 12, 2024 in Paris. Everyone involved can be proud
of this wonderful achievement, and the outlook remains bright.`,
  },
];

const NEGATIVE: PageText[] = [
  {
    page: 1,
    text: `On March 3, 2024, Maria Gonzalez, the chief executive of Acme Corporation, admitted that a
$4.5 million investment in a research centre in Paris had failed. The board was angry and deeply
disappointed, and employees described a terrible year of losses. Revenue fell 18% compared with the
previous year, the worst result in the company's history.`,
  },
  {
    page: 2,
    text: `John Smith, who leads the engineering group in Berlin, criticised the poor collaboration between
the two offices. Customers complained that the new products were unreliable, ugly and hard to use.
Complaints about broken devices and bad service kept rising. Partners in Paris and Berlin are worried
and frustrated about the serious problems ahead.`,
  },
  {
    page: 3,
    text: `Acme Corporation now plans to cut 200 jobs and to close an office. Maria Gonzalez apologised to
shareholders for the painful failure and said she was ashamed and sorry. Everyone involved is
unhappy with this disastrous outcome, and the outlook remains bleak and uncertain.`,
  },
];

function chunk(pages: PageText[], analyses = ALL): ChunkInput {
  return { tenantId: 'tenant-1', documentId: 'doc-1', chunkIndex: 0, pages, analyses };
}

function entity(result: ChunkAnalysis, text: string): Entity | undefined {
  return result.entities.find((e) => e.text === text);
}

/** A realistic multi-page chunk of ~400 words per page, deterministic, with varied sentences. */
function largeChunk(pageCount: number): PageText[] {
  const people = ['Maria Gonzalez', 'John Smith', 'Aiko Tanaka', 'Peter Novak', 'Fatima Rahman', 'Lucas Martin'];
  const places = ['Paris', 'Berlin', 'Madrid', 'Toronto', 'Nairobi', 'Osaka', 'Lisbon'];
  const orgs = ['Acme Corporation', 'Globex Industries', 'Initech', 'Umbrella Logistics'];
  const topics = ['supply chain', 'customer support', 'battery research', 'data platform', 'retail network', 'training programme'];
  const adjectives = ['steady', 'strong', 'modest', 'remarkable', 'disappointing', 'uneven', 'encouraging'];
  const months = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'September', 'October'];
  const templates: Array<(i: number) => string> = [
    (i) => `${people[i % 6]} reviewed the ${topics[i % 6]} with the team in ${places[i % 7]} on ${months[i % 9]} ${(i % 27) + 1}, 2024.`,
    (i) => `The ${topics[(i + 2) % 6]} of ${orgs[i % 4]} reported ${adjectives[i % 7]} progress, with costs down ${(i % 9) + 2}% over the quarter.`,
    (i) => `According to ${people[(i + 3) % 6]}, the budget of $${(i % 8) + 1}.${i % 10} million for ${places[(i + 1) % 7]} remains under review.`,
    (i) => `Several managers noted that the ${topics[(i + 4) % 6]} still depends on a small group of specialists and on older equipment.`,
    (i) => `In ${places[(i + 3) % 7]}, ${orgs[(i + 1) % 4]} opened ${(i % 5) + 2} new sites and hired ${(i % 40) + 10} engineers for the ${topics[i % 6]}.`,
    (i) => `Customers described the service as ${adjectives[(i + 3) % 7]}, and the satisfaction score moved to ${(i % 20) + 70} percent.`,
    (i) => `The committee asked ${people[(i + 5) % 6]} to prepare a detailed plan for the ${topics[(i + 1) % 6]} before the next meeting.`,
    (i) => `Risks include delays from suppliers, rising energy prices and the need to retrain staff in ${places[(i + 5) % 7]}.`,
  ];
  const pages: PageText[] = [];
  let n = 0;
  for (let page = 1; page <= pageCount; page += 1) {
    const sentences: string[] = [];
    let words = 0;
    while (words < 400) {
      const template = templates[n % templates.length] as (i: number) => string;
      const sentence = template(n * 7 + page);
      sentences.push(sentence);
      words += sentence.split(/\s+/).length;
      n += 1;
    }
    // Paragraphs of four sentences, wrapped like extracted PDF text.
    const paragraphs: string[] = [];
    for (let i = 0; i < sentences.length; i += 4) paragraphs.push(sentences.slice(i, i + 4).join(' '));
    pages.push({ page, text: paragraphs.map((p) => p.replace(/(.{70,90}?) /g, '$1\n')).join('\n\n') });
  }
  return pages;
}

/** Splits a summary at sentence ends (good enough for the fixtures: no abbreviations). */
function splitSentences(text: string): string[] {
  return text === '' ? [] : text.split(/(?<=[.!?])\s+(?=[A-Z])/);
}

function wordCount(pages: PageText[]): number {
  return pages.reduce((n, p) => n + p.text.split(/\s+/).filter(Boolean).length, 0);
}

describe('analyzeText (in process)', () => {
  it('finds people, places, organisations, dates and money with their pages; positive tone', () => {
    const result = analyzeText(chunk(POSITIVE));

    expect(entity(result, 'Maria Gonzalez')).toMatchObject({ type: 'PERSON', pages: [1, 3] });
    expect(entity(result, 'Maria Gonzalez')?.count).toBeGreaterThanOrEqual(3);
    expect(entity(result, 'John Smith')).toMatchObject({ type: 'PERSON', count: 2, pages: [2] });
    expect(entity(result, 'Paris')).toMatchObject({ type: 'LOCATION', pages: [1, 2, 3] });
    expect(entity(result, 'Berlin')).toMatchObject({ type: 'LOCATION', pages: [2] });
    expect(entity(result, 'Acme Corporation')).toMatchObject({ type: 'ORGANIZATION', pages: [1, 3] });
    expect(entity(result, 'March 3, 2024')).toMatchObject({ type: 'DATE', count: 1, pages: [1] });
    expect(entity(result, 'June 12, 2024')).toMatchObject({ type: 'DATE', pages: [3] });
    expect(entity(result, '$4.5 million')).toMatchObject({ type: 'MONEY', count: 1, pages: [1] });
    expect(entity(result, '18%')).toMatchObject({ type: 'PERCENT', pages: [1] });
    expect(entity(result, 'press@acme-corp.example')).toMatchObject({ type: 'EMAIL', pages: [2] });
    expect(entity(result, 'https://acme-corp.example/news')).toMatchObject({ type: 'URL', pages: [2] });
    for (const e of result.entities) {
      expect(e.text.length).toBeGreaterThan(1);
      expect(e.pages).toEqual([...new Set(e.pages)].sort((a, b) => a - b));
      expect(e.count).toBeGreaterThanOrEqual(e.pages.length);
    }
    // Variants are merged: no case or whitespace duplicates.
    const keys = result.entities.map((e) => `${e.type}:${e.text.toLowerCase()}`);
    expect(new Set(keys).size).toBe(keys.length);

    expect(result.sentiment.label).toBe('positive');
    expect(result.sentiment.score).toBeGreaterThan(0.1);
    expect(result.failedPages).toEqual([]);
    expect(result.usage).toEqual({ inputTokens: 0, outputTokens: 0, modelCalls: 0 });
    expect(result.textLength).toBeGreaterThan(1000);
  });

  it('gives a negative label to a clearly negative text', () => {
    const result = analyzeText(chunk(NEGATIVE));
    expect(result.sentiment.label).toBe('negative');
    expect(result.sentiment.score).toBeLessThan(-0.1);
    expect(entity(result, 'Maria Gonzalez')?.type).toBe('PERSON');
  });

  it('writes an extractive summary of whole sentences in document order and distinct key points', () => {
    const result = analyzeText(chunk(POSITIVE));
    const source = normalizePageText(POSITIVE.map((p) => p.text).join('\n\n')).replace(/\s+/g, ' ');

    const sentences = splitSentences(result.summary);
    expect(sentences.length).toBeGreaterThanOrEqual(3);
    expect(sentences.length).toBeLessThanOrEqual(5);
    expect(result.summary.length).toBeLessThanOrEqual(1200);
    const positions = sentences.map((s) => source.indexOf(s.trim()));
    expect(positions.every((p) => p >= 0)).toBe(true);
    expect(positions).toEqual([...positions].sort((a, b) => a - b));
    for (const s of sentences) expect(s.trim()).toMatch(/^[A-Z].*[.!?]$/);

    expect(result.keyPoints.length).toBeGreaterThanOrEqual(3);
    expect(result.keyPoints.length).toBeLessThanOrEqual(7);
    expect(new Set(result.keyPoints).size).toBe(result.keyPoints.length);
    for (const k of result.keyPoints) {
      expect(k.length).toBeLessThanOrEqual(240);
      // Key points add to the summary rather than repeat it.
      expect(result.summary.includes(k)).toBe(false);
    }
  });

  it('reports empty and whitespace-only pages as NO_TEXT_LAYER and still analyses the rest', () => {
    const pages = [POSITIVE[0] as PageText, { page: 2, text: '' }, { page: 3, text: ' \n\t ' }, { ...(POSITIVE[2] as PageText), page: 4 }];
    const result = analyzeText(chunk(pages));
    expect(result.failedPages).toEqual([
      { page: 2, code: 'NO_TEXT_LAYER' },
      { page: 3, code: 'NO_TEXT_LAYER' },
    ]);
    expect(result.summary).not.toBe('');
    expect(entity(result, 'Maria Gonzalez')?.pages).toEqual([1, 4]);

    const none = analyzeText(chunk([{ page: 7, text: '   ' }]));
    expect(none).toMatchObject({
      summary: '',
      keyPoints: [],
      entities: [],
      sentiment: { label: 'neutral', score: 0 },
      textLength: 0,
      failedPages: [{ page: 7, code: 'NO_TEXT_LAYER' }],
    });
  });

  it('computes only the analyses asked for', () => {
    const onlyEntities = analyzeText(chunk(POSITIVE, ['entities']));
    expect(onlyEntities.entities.length).toBeGreaterThan(5);
    expect(onlyEntities.summary).toBe('');
    expect(onlyEntities.keyPoints).toEqual([]);
    expect(onlyEntities.sentiment).toEqual({ label: 'neutral', score: 0 });

    const onlySentiment = analyzeText(chunk(NEGATIVE, ['sentiment']));
    expect(onlySentiment.sentiment.label).toBe('negative');
    expect(onlySentiment.entities).toEqual([]);
    expect(onlySentiment.summary).toBe('');

    const summaryAndPoints = analyzeText(chunk(POSITIVE, ['summary', 'keyPoints']));
    expect(summaryAndPoints.summary).toBe(analyzeText(chunk(POSITIVE)).summary);
    expect(summaryAndPoints.keyPoints.length).toBeGreaterThanOrEqual(3);
    expect(summaryAndPoints.entities).toEqual([]);
  });

  it('ignores running headers in the summary and key points, and junk entities', () => {
    const header = 'Acme Corporation Annual Review 2024, confidential and not for distribution.';
    const pages = POSITIVE.map((p) => ({ ...p, text: `${header}\n\n${p.text}\n\nThis may change.` }));
    const result = analyzeText(chunk(pages));
    expect(result.summary).not.toContain('confidential');
    expect(result.keyPoints.join(' ')).not.toContain('confidential');
    // "This may" is the verb, not the month; pronouns and common nouns are not names.
    expect(result.entities.map((e) => e.text)).not.toContain('This may');
    expect(result.entities.every((e) => e.type !== 'DATE' || /\d|May/.test(e.text))).toBe(true);
    expect(result.entities.filter((e) => e.type === 'PERSON').map((e) => e.text).sort()).toEqual(['John Smith', 'Maria Gonzalez']);
  });

  it('yields three key points from a text of three short sentences', () => {
    const result = analyzeText(chunk([{ page: 1, text: 'Sales grew. Costs fell. Staff are happy.' }]));
    expect(result.keyPoints).toHaveLength(3);
    expect(result.summary).not.toBe('');
  });

  it('labels a text with strongly positive and strongly negative halves as mixed', () => {
    const result = analyzeText(
      chunk([
        { page: 1, text: 'The launch in Paris was a wonderful, brilliant success and the customers loved it.' },
        { page: 2, text: 'The factory in Berlin was a terrible, shameful disaster and the workers hated it.' },
      ]),
    );
    expect(result.sentiment.label).toBe('mixed');
  });

  it('is the analyzer named local/wink-nlp', () => {
    expect(LOCAL_ANALYZER_NAME).toBe('local/wink-nlp');
  });
});

describe('aggregateSentiment', () => {
  it('weights sentences by length and stays in [-1, 1]', () => {
    expect(aggregateSentiment([{ score: 1, weight: 30 }, { score: -1, weight: 10 }]).score).toBe(0.5);
    expect(aggregateSentiment([{ score: 5, weight: 1 }]).score).toBe(1);
    expect(aggregateSentiment([])).toEqual({ label: 'neutral', score: 0 });
  });
  it('is mixed only when both strong sides carry substantial weight', () => {
    expect(aggregateSentiment([{ score: 0.6, weight: 10 }, { score: -0.6, weight: 8 }]).label).toBe('mixed');
    // One strongly negative sentence in a positive text does not make it mixed.
    expect(aggregateSentiment([{ score: 0.6, weight: 30 }, { score: -0.6, weight: 5 }]).label).toBe('positive');
    // Weak opinions drowned in neutral text are not mixed either.
    const diluted = [{ score: 0.5, weight: 3 }, { score: -0.5, weight: 3 }, { score: 0, weight: 60 }];
    expect(aggregateSentiment(diluted).label).toBe('neutral');
  });
});

describe('normalizePageText', () => {
  it('joins hyphenated and wrapped lines and keeps headings and list items apart', () => {
    const text = normalizePageText(
      'Quarterly Report\nRevenue grew because of a large invest-\nment in new equipment and the\nhiring of staff across all regions.\n- First item\n- Second item',
    );
    expect(text).toBe(
      'Quarterly Report\n\nRevenue grew because of a large investment in new equipment and the hiring of staff across all regions.\n\n- First item\n\n- Second item',
    );
  });
});

describe('reduceText', () => {
  const first = analyzeText(chunk(POSITIVE));
  const second = analyzeText(chunk(NEGATIVE.map((p) => ({ ...p, page: p.page + 3 }))));

  it('combines part summaries into one extractive summary in part order', () => {
    const out = reduceText({
      summaries: [first.summary, second.summary],
      keyPoints: [...first.keyPoints, ...second.keyPoints],
      maxKeyPoints: 5,
    });
    const sentences = splitSentences(out.summary);
    expect(sentences.length).toBeGreaterThanOrEqual(3);
    expect(sentences.length).toBeLessThanOrEqual(5);
    const all = `${first.summary} ${second.summary}`;
    const positions = sentences.map((s) => all.indexOf(s.trim()));
    expect(positions.every((p) => p >= 0)).toBe(true);
    expect(positions).toEqual([...positions].sort((a, b) => a - b));
    expect(out.keyPoints.length).toBeGreaterThan(0);
    expect(out.keyPoints.length).toBeLessThanOrEqual(5);
    expect(out.usage).toEqual({ inputTokens: 0, outputTokens: 0, modelCalls: 0 });
  });

  it('drops near-duplicate key points and keeps their original order', () => {
    const out = reduceText({
      summaries: ['Acme Corporation opened an office in Paris. Revenue rose sharply. The team grew.'],
      keyPoints: [
        'Acme Corporation opened a new office in Paris.',
        'Revenue rose 18% in 2024.',
        'Acme Corporation opened a new office in Paris!',
        'acme corporation opened a new office in paris',
        'John Smith leads the engineering group in Berlin.',
      ],
      maxKeyPoints: 10,
    });
    expect(out.keyPoints).toEqual([
      'Acme Corporation opened a new office in Paris.',
      'Revenue rose 18% in 2024.',
      'John Smith leads the engineering group in Berlin.',
    ]);
    expect(reduceText({ summaries: [], keyPoints: ['A point about Paris.'], maxKeyPoints: 0 }).keyPoints).toEqual([]);
    expect(reduceText({ summaries: ['', ' '], keyPoints: [], maxKeyPoints: 3 }).summary).toBe('');
  });
});

describe('speed', () => {
  // Timing is printed, not asserted (timed assertions flake on shared machines).
  it('analyses a 10-page chunk of ~4,000 words and prints how long it took', () => {
    const pages = largeChunk(10);
    expect(wordCount(pages)).toBeGreaterThanOrEqual(4000);
    analyzeText(chunk(pages)); // warm-up (JIT, caches)
    const times: number[] = [];
    let result: ChunkAnalysis | undefined;
    for (let i = 0; i < 3; i += 1) {
      const t0 = performance.now();
      result = analyzeText(chunk(pages));
      times.push(performance.now() - t0);
    }
    const best = Math.min(...times);
    console.info(`local analyzer, 10 pages / ${wordCount(pages)} words: ${times.map((t) => t.toFixed(0)).join(', ')} ms`);
    console.info(`local analyzer best of 3: ${best.toFixed(0)} ms`);
    expect(result?.summary).not.toBe('');
    expect(result?.keyPoints.length).toBeGreaterThanOrEqual(3);
    expect(result?.entities.length).toBeGreaterThan(10);
  });
});

describe('createLocalAnalyzer (worker threads)', () => {
  let analyzer: Analyzer;
  beforeAll(() => {
    analyzer = createLocalAnalyzer({ threads: 2, timeoutMs: 30_000 });
  });
  afterAll(async () => {
    await analyzer.close();
  });

  it('gives the same result as the in-process functions, for concurrent calls', async () => {
    expect(analyzer.name).toBe('local/wink-nlp');
    const inputs = [chunk(POSITIVE), chunk(NEGATIVE), chunk(POSITIVE, ['entities']), chunk(NEGATIVE, ['sentiment', 'summary'])];
    const results = await Promise.all([...inputs, ...inputs].map((input) => analyzer.analyzeChunk(input)));
    results.forEach((r, i) => expect(r).toEqual(analyzeText(inputs[i % inputs.length] as ChunkInput)));
    expect(results[0]?.sentiment.label).toBe('positive');
    expect(results[1]?.sentiment.label).toBe('negative');

    const reduced = await analyzer.reduceSummaries({
      summaries: [results[0]?.summary ?? '', results[1]?.summary ?? ''],
      keyPoints: [...(results[0]?.keyPoints ?? []), ...(results[1]?.keyPoints ?? [])],
      maxKeyPoints: 4,
    });
    expect(reduced.summary).not.toBe('');
    expect(reduced.keyPoints.length).toBeLessThanOrEqual(4);
  });

  it('keeps the event loop free while a large chunk is analysed', async () => {
    const pages = largeChunk(10);
    let maxGap = 0;
    let last = performance.now();
    const timer = setInterval(() => {
      const now = performance.now();
      maxGap = Math.max(maxGap, now - last);
      last = now;
    }, 5);
    let elapsed = 0;
    try {
      const t0 = performance.now();
      await Promise.all([analyzer.analyzeChunk(chunk(pages)), analyzer.analyzeChunk(chunk(pages))]);
      elapsed = performance.now() - t0;
      console.info(`two 10-page chunks through 2 threads: ${elapsed.toFixed(0)} ms, longest event-loop gap ${maxGap.toFixed(0)} ms`);
    } finally {
      clearInterval(timer);
    }
    // A ratio, not a time: had the analysis run on this thread, the longest gap would be about
    // the whole analysis; off-thread, the loop keeps ticking through it.
    expect(maxGap / elapsed).toBeLessThan(0.5);
  });

  it('fails with TIMEOUT when a call exceeds its budget, and keeps working after', async () => {
    const slow = createLocalAnalyzer({ threads: 1, timeoutMs: 20 });
    try {
      const err = await slow.analyzeChunk(chunk(largeChunk(20))).catch((e: unknown) => e);
      expect(isDocorchError(err, 'TIMEOUT')).toBe(true);
    } finally {
      await slow.close();
    }
    // The shared analyzer is unaffected.
    await expect(analyzer.analyzeChunk(chunk(POSITIVE, ['sentiment']))).resolves.toMatchObject({
      sentiment: { label: 'positive' },
    });
  });

  it('replaces a thread terminated by a timeout', async () => {
    const one = createLocalAnalyzer({ threads: 1, timeoutMs: 10_000 });
    try {
      await one.analyzeChunk(chunk(POSITIVE)); // thread up and warm
      const controller = new AbortController();
      const pending = one.analyzeChunk(chunk(largeChunk(20)), { signal: controller.signal });
      setTimeout(() => controller.abort(), 20);
      const err = await pending.catch((e: unknown) => e);
      expect(isDocorchError(err, 'TIMEOUT')).toBe(true);
      await expect(one.analyzeChunk(chunk(NEGATIVE, ['sentiment']))).resolves.toMatchObject({
        sentiment: { label: 'negative' },
      });
    } finally {
      await one.close();
    }
  });

  it('rejects an already aborted call and calls after close', async () => {
    const controller = new AbortController();
    controller.abort();
    await expect(analyzer.analyzeChunk(chunk(POSITIVE), { signal: controller.signal })).rejects.toMatchObject({
      code: 'TIMEOUT',
    });
    const closed = createLocalAnalyzer({ threads: 1 });
    await closed.close();
    await closed.close(); // idempotent
    await expect(closed.analyzeChunk(chunk(POSITIVE))).rejects.toMatchObject({ code: 'INTERNAL' });
  });

  it('rejects malformed input with INVALID_REQUEST', async () => {
    const bad = { ...chunk(POSITIVE), pages: [{ page: 0, text: 'x' }] };
    await expect(analyzer.analyzeChunk(bad)).rejects.toMatchObject({ code: 'INVALID_REQUEST' });
  });
});
