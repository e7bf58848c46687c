/**
 * Reduce of chunk results into the document result (DESIGN.md section 5): entities merged with
 * counts and pages, sentiment weighted by text length, summary and key points reduced
 * hierarchically with bounded input per analyzer call.
 */
import pLimit from 'p-limit';
import type { AnalyzeOptions, Analyzer, Entity, FailedPage, Sentiment, Usage } from '../analysis/types.js';
import { addUsage, sentimentLabel } from '../analysis/types.js';
import type { Config } from '../config.js';
import type { ChunkResult, DocumentResult } from './result.js';
import { RESULT_SCHEMA_VERSION } from './result.js';

/** Bounds of the hierarchical reduce and of the result's lists. */
export interface AssembleOptions {
  /** Most part summaries merged in one analyzer call. @defaultValue 32 */
  fanIn?: number;
  /** Most characters of summaries and key points sent in one analyzer call. @defaultValue 48000 */
  maxInputChars?: number;
  /** Most key points in the document result. @defaultValue 10 */
  maxKeyPoints?: number;
  /** Most entities in the document result (most frequent first). @defaultValue 200 */
  maxEntities?: number;
  /** Reduce calls in flight at once within one level of the tree. @defaultValue 8 */
  concurrency?: number;
  /** Above this share of failed chunks the document is `failed`. @defaultValue 0.5 */
  maxFailedChunkRatio?: number;
  signal?: AbortSignal;
}

/** The configured bounds of the reduce and the failed-chunk ratio, as {@link AssembleOptions}. */
export function assembleOptionsFrom(
  config: Pick<Config, 'REDUCE_FAN_IN' | 'REDUCE_MAX_INPUT_CHARS' | 'MAX_FAILED_CHUNK_RATIO'>,
): AssembleOptions {
  return { fanIn: config.REDUCE_FAN_IN, maxInputChars: config.REDUCE_MAX_INPUT_CHARS, maxFailedChunkRatio: config.MAX_FAILED_CHUNK_RATIO };
}

/** Merges entities by type and case-insensitive text: counts add up, pages are unioned. */
export function mergeEntities(lists: readonly Entity[][], max = Number.POSITIVE_INFINITY): Entity[] {
  const merged = new Map<string, { entity: Entity; pages: Set<number> }>();
  for (const list of lists) {
    for (const e of list) {
      const key = `${e.type}\u0000${e.text.trim().toLowerCase().replace(/\s+/g, ' ')}`;
      const hit = merged.get(key);
      if (hit) {
        hit.entity.count += e.count;
        for (const p of e.pages) hit.pages.add(p);
      } else {
        merged.set(key, { entity: { ...e, pages: [] }, pages: new Set(e.pages) });
      }
    }
  }
  return [...merged.values()]
    .map(({ entity, pages }) => ({ ...entity, pages: [...pages].sort((a, b) => a - b) }))
    .sort((a, b) => b.count - a.count || a.text.localeCompare(b.text))
    .slice(0, max);
}

/** Sentiment weighted by text length; `mixed` when substantial weight sits on both sides. */
export function mergeSentiment(parts: ReadonlyArray<{ sentiment: Sentiment; textLength: number }>): Sentiment {
  let total = 0;
  let weighted = 0;
  let positive = 0;
  let negative = 0;
  for (const p of parts) {
    const w = Math.max(0, p.textLength);
    total += w;
    weighted += p.sentiment.score * w;
    if (p.sentiment.score > 0.2) positive += w;
    if (p.sentiment.score < -0.2) negative += w;
  }
  if (total === 0) return { label: 'neutral', score: 0 };
  const score = Math.round((weighted / total) * 1000) / 1000;
  const mixed = positive / total >= 0.3 && negative / total >= 0.3;
  return { label: sentimentLabel(score, mixed), score };
}

/** Groups items into batches of at most `fanIn` items and `maxChars` characters (at least one item each). */
function batches<T>(items: readonly T[], size: (item: T) => number, fanIn: number, maxChars: number): T[][] {
  const out: T[][] = [];
  let current: T[] = [];
  let chars = 0;
  for (const item of items) {
    const n = size(item);
    if (current.length > 0 && (current.length >= fanIn || chars + n > maxChars)) {
      out.push(current);
      current = [];
      chars = 0;
    }
    current.push(item);
    chars += n;
  }
  if (current.length > 0) out.push(current);
  return out;
}

interface Part {
  summary: string;
  keyPoints: string[];
}

/**
 * Hierarchical reduce of part summaries: each level merges batches of at most `fanIn` parts and
 * `maxInputChars` characters, until one part is left. A 2,000-page document therefore never
 * sends one oversized request, and the depth is logarithmic in the number of chunks.
 */
export async function reduceSummaries(
  parts: readonly Part[],
  analyzer: Pick<Analyzer, 'reduceSummaries'>,
  options: Pick<AssembleOptions, 'fanIn' | 'maxInputChars' | 'maxKeyPoints' | 'concurrency' | 'signal'> = {},
): Promise<Part & { usage: Usage }> {
  const fanIn = Math.max(2, options.fanIn ?? 32);
  const maxInputChars = options.maxInputChars ?? 48_000;
  const maxKeyPoints = options.maxKeyPoints ?? 10;
  const callOptions: AnalyzeOptions = options.signal ? { signal: options.signal } : {};
  let usage: Usage = addUsage();
  let level: Part[] = parts.filter((p) => p.summary.trim() !== '' || p.keyPoints.length > 0);
  if (level.length === 0) return { summary: '', keyPoints: [], usage };
  if (level.length === 1) {
    const only = level[0] as Part;
    return { summary: only.summary, keyPoints: only.keyPoints.slice(0, maxKeyPoints), usage };
  }
  const size = (p: Part) => p.summary.length + p.keyPoints.reduce((n, k) => n + k.length, 0);
  // The batches of one level are independent: reduce them in parallel (bounded), so the time is
  // the depth of the tree, not the number of calls.
  const limit = pLimit(options.concurrency ?? 8);
  while (level.length > 1) {
    const outs = await Promise.all(
      batches(level, size, fanIn, maxInputChars).map((batch) =>
        limit(() =>
          analyzer.reduceSummaries(
            {
              summaries: batch.map((p) => p.summary),
              keyPoints: batch.flatMap((p) => p.keyPoints),
              maxKeyPoints,
            },
            callOptions,
          ),
        ),
      ),
    );
    usage = addUsage(usage, ...outs.map((o) => o.usage));
    level = outs.map((out) => ({ summary: out.summary, keyPoints: out.keyPoints }));
  }
  const root = level[0] as Part;
  return { summary: root.summary, keyPoints: root.keyPoints.slice(0, maxKeyPoints), usage };
}

/** What the document result is built from. */
export interface AssembleInput {
  documentId: string;
  analyzer: Pick<Analyzer, 'name' | 'reduceSummaries'>;
  chunks: readonly ChunkResult[];
  pageCount: number;
  pagesSelected: number;
  pageSelection?: string;
}

/**
 * Builds the document result from every chunk's result. The status is `completed` when every
 * chunk succeeded and no page failed, `failed` when the share of failed chunks exceeds
 * `maxFailedChunkRatio` (or all failed), else `completed_with_errors` with the failed pages listed.
 */
export async function assembleResult(input: AssembleInput, options: AssembleOptions = {}): Promise<DocumentResult> {
  const chunks = [...input.chunks].sort((a, b) => a.index - b.index);
  const ok = chunks.filter((c) => c.status === 'succeeded');
  const failedChunks = chunks.length - ok.length;
  const failedPages: FailedPage[] = chunks.flatMap((c) => c.failedPages).sort((a, b) => a.page - b.page);
  const maxFailed = options.maxFailedChunkRatio ?? 0.5;
  const failedRatio = chunks.length === 0 ? 1 : failedChunks / chunks.length;
  const status: DocumentResult['status'] =
    ok.length === 0 || failedRatio > maxFailed ? 'failed' : failedPages.length > 0 || failedChunks > 0 ? 'completed_with_errors' : 'completed';

  const reduced = await reduceSummaries(ok, input.analyzer, options);
  return {
    schemaVersion: RESULT_SCHEMA_VERSION,
    documentId: input.documentId,
    status,
    pages: { total: input.pageCount, analysed: input.pagesSelected, selection: input.pageSelection ?? 'all' },
    analyzer: input.analyzer.name,
    summary: reduced.summary,
    keyPoints: reduced.keyPoints,
    entities: mergeEntities(ok.map((c) => c.entities), options.maxEntities ?? 200),
    sentiment: mergeSentiment(ok),
    chunks,
    failedPages,
    ocrPages: ok.flatMap((c) => c.ocrPages ?? []).sort((a, b) => a - b),
    usage: addUsage(...chunks.map((c) => c.usage), reduced.usage),
    createdAt: new Date().toISOString(),
  };
}
