/**
 * The JSON the model must answer with: a response schema sent with the request (Gemini's
 * constrained decoding, `responseJsonSchema`) and the same shape checked again with zod on our
 * side, because constrained decoding is not a guarantee (truncation, model regressions, proxies).
 *
 * Only the analyses asked for are requested (fewer output tokens); the others come back empty.
 * No descriptions: the task text says what each field means, and every call repeats the schema.
 * Entity pages must lie within the chunk: the schema bounds them, and our check drops any page
 * outside the chunk (and an entity left with none), rather than failing a whole chunk over one
 * mis-cited page number. Structural problems (bad JSON, missing fields, wrong types) are invalid
 * output and trigger the bounded retry.
 */
import { z } from 'zod';
import { ENTITY_TYPES, type AnalysisKind, type Entity, type Sentiment } from '../types.js';
import { PROMPT_LIMITS } from './prompts.js';

/** A JSON Schema object (the subset Gemini's `responseJsonSchema` accepts). */
export type JsonSchema = { [key: string]: JsonSchemaValue };
type JsonSchemaValue = string | number | boolean | null | JsonSchemaValue[] | { [key: string]: JsonSchemaValue };

const SENTIMENT_LABELS = ['positive', 'negative', 'neutral', 'mixed'] as const;

/** The response schema of one chunk analysis, for the analyses asked for and the chunk's page bounds. */
export function chunkResponseSchema(analyses: readonly AnalysisKind[], firstPage: number, lastPage: number): JsonSchema {
  const all: Record<AnalysisKind, JsonSchema> = {
    summary: { type: 'string' },
    keyPoints: { type: 'array', items: { type: 'string' }, maxItems: PROMPT_LIMITS.chunkKeyPoints },
    entities: {
      type: 'array',
      maxItems: PROMPT_LIMITS.chunkEntities,
      items: {
        type: 'object',
        properties: {
          text: { type: 'string' },
          type: { type: 'string', enum: [...ENTITY_TYPES] },
          count: { type: 'integer', minimum: 1 },
          pages: { type: 'array', items: { type: 'integer', minimum: firstPage, maximum: lastPage } },
        },
        required: ['text', 'type', 'count', 'pages'],
      },
    },
    sentiment: {
      type: 'object',
      properties: {
        label: { type: 'string', enum: [...SENTIMENT_LABELS] },
        score: { type: 'number', minimum: -1, maximum: 1 },
      },
      required: ['label', 'score'],
    },
  };
  const kinds = unique(analyses);
  return {
    type: 'object',
    properties: Object.fromEntries(kinds.map((k) => [k, all[k]])),
    required: kinds,
  };
}

/** The response schema of one reduce step. */
export function reduceResponseSchema(maxKeyPoints: number): JsonSchema {
  return {
    type: 'object',
    properties: {
      summary: { type: 'string', description: 'One faithful summary of all parts.' },
      keyPoints: { type: 'array', items: { type: 'string' }, maxItems: Math.max(0, maxKeyPoints) },
    },
    required: ['summary', 'keyPoints'],
  };
}

const trimmed = z.string().transform((s) => s.trim());

const chunkShape = {
  summary: trimmed.pipe(z.string().min(1, 'summary is empty')),
  keyPoints: z.array(trimmed),
  entities: z.array(
    z.object({
      text: trimmed.pipe(z.string().min(1)),
      type: z.enum(ENTITY_TYPES),
      count: z.number().int().min(1),
      pages: z.array(z.number().int()),
    }),
  ),
  sentiment: z.object({ label: z.enum(SENTIMENT_LABELS), score: z.number().min(-1).max(1) }),
};

/** Output that failed parsing or validation; the analyzer retries it a bounded number of times. */
export class InvalidModelOutput extends Error {
  constructor(
    message: string,
    /** What was wrong, for logs (never the output itself: it may quote the document). */
    readonly problems: string[],
  ) {
    super(message);
    this.name = 'InvalidModelOutput';
  }
}

/** A validated chunk analysis (fields not asked for are empty). */
export interface ParsedChunkOutput {
  summary: string;
  keyPoints: string[];
  entities: Entity[];
  sentiment: Sentiment;
  /** Entity page citations dropped because they were outside the chunk. */
  droppedPageCitations: number;
}

/** Parses and validates a chunk answer. @throws InvalidModelOutput */
export function parseChunkOutput(text: string | undefined, analyses: readonly AnalysisKind[], chunkPages: ReadonlySet<number>): ParsedChunkOutput {
  const kinds = unique(analyses);
  const schema = z.object(Object.fromEntries(kinds.map((k) => [k, chunkShape[k]])) as Partial<typeof chunkShape>);
  const data = validate(schema, parseJson(text)) as {
    summary?: string;
    keyPoints?: string[];
    entities?: Array<{ text: string; type: Entity['type']; count: number; pages: number[] }>;
    sentiment?: Sentiment;
  };

  let dropped = 0;
  const merged = new Map<string, Entity>();
  for (const e of data.entities ?? []) {
    const pages = e.pages.filter((p) => chunkPages.has(p));
    dropped += e.pages.length - pages.length;
    if (pages.length === 0) continue;
    const key = `${e.type}\u0000${e.text.toLowerCase()}`;
    const seen = merged.get(key);
    if (seen) {
      seen.count += e.count;
      seen.pages = sortedUnique([...seen.pages, ...pages]);
    } else {
      merged.set(key, { text: e.text, type: e.type, count: e.count, pages: sortedUnique(pages) });
    }
  }
  const entities = [...merged.values()].map((e) => ({ ...e, count: Math.max(e.count, e.pages.length) }));

  return {
    summary: data.summary ?? '',
    keyPoints: (data.keyPoints ?? []).filter((k) => k !== '').slice(0, PROMPT_LIMITS.chunkKeyPoints),
    entities,
    sentiment: data.sentiment ?? { label: 'neutral', score: 0 },
    droppedPageCitations: dropped,
  };
}

/** Parses and validates a reduce answer. @throws InvalidModelOutput */
export function parseReduceOutput(text: string | undefined, maxKeyPoints: number): { summary: string; keyPoints: string[] } {
  const schema = z.object({ summary: chunkShape.summary, keyPoints: z.array(trimmed) });
  const data = validate(schema, parseJson(text));
  return { summary: data.summary, keyPoints: data.keyPoints.filter((k) => k !== '').slice(0, Math.max(0, maxKeyPoints)) };
}

function parseJson(text: string | undefined): unknown {
  if (text === undefined || text.trim() === '') throw new InvalidModelOutput('The model returned no text', ['empty']);
  // JSON mode answers bare JSON; a fenced block is tolerated in case a model or proxy adds one.
  const body = text.trim().replace(/^```(?:json)?\s*([\s\S]*?)\s*```$/, '$1');
  try {
    return JSON.parse(body);
  } catch (err) {
    throw new InvalidModelOutput('The model returned malformed JSON', [err instanceof Error ? err.message : String(err)]);
  }
}

function validate<T extends z.ZodType>(schema: T, value: unknown): z.output<T> {
  const result = schema.safeParse(value);
  if (!result.success) {
    const problems = result.error.issues.slice(0, 10).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new InvalidModelOutput(`The model's JSON does not match the schema: ${problems.join('; ')}`, problems);
  }
  return result.data;
}

function unique<T>(items: readonly T[]): T[] {
  return [...new Set(items)];
}

function sortedUnique(numbers: number[]): number[] {
  return [...new Set(numbers)].sort((a, b) => a - b);
}
