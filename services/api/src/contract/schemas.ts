/**
 * The API's request and response shapes, defined once: the routes parse requests with these
 * schemas and type their answers with them, and ./openapi.ts generates the OpenAPI 3.1 document
 * from them (served at /openapi.json; the typed client's types are generated from that).
 */
import { z } from 'zod';
import 'zod-openapi';
import { ANALYSIS_KINDS, ENTITY_TYPES, ERROR_CODES, JOB_STATUSES, isPageRangeSyntax, type ErrorCode } from '@docorch/core';

/** Every problem code the API can answer with (core's taxonomy). */
export const PROBLEM_CODES = Object.keys(ERROR_CODES) as [ErrorCode, ...ErrorCode[]];

export const DocumentId = z
  .string()
  .regex(/^[A-Za-z0-9_-]{8,64}$/)
  .meta({ description: 'A document id, as returned by the upload.', example: 'doc_V1StGXR8Z5jdHi6B' });

export const JobStatus = z.enum(JOB_STATUSES).meta({ id: 'JobStatus', description: 'Where the document is in its life.' });

/** The form fields of an upload (multipart text parts, besides `file`). */
export function uploadFields() {
  return z.object({
    mode: z
      .enum(['auto', 'sync', 'async'])
      .default('auto')
      .meta({ description: 'auto: answer in the request when the file is small, else 202. sync: always try in the request (202 when its time budget runs out). async: always 202.' }),
    pages: z
      .string()
      .max(200)
      .refine(isPageRangeSyntax, 'expected a page selection such as 1-3,7')
      .optional()
      .meta({ description: 'The pages to analyse, 1-based, e.g. `1-3,7`. Default: all.', example: '1-3,7' }),
    pagesPerChunk: z.coerce
      .number()
      .int()
      .min(1)
      .max(200)
      .optional()
      .meta({
        description:
          'Pages analysed per model call. Default: chunks sized by tokens, pages packed into one call up to CHUNK_TARGET_TOKENS of text (scanned pages at their image cost), at most CHUNK_MAX_PAGES pages, and spread over at least CHUNK_MIN_COUNT chunks when the document is long enough.',
      }),
    analyses: z
      .string()
      .transform((s) => s.split(',').map((a) => a.trim()).filter(Boolean))
      .pipe(z.array(z.enum(ANALYSIS_KINDS)).min(1))
      .optional()
      .meta({ description: `Comma-separated subset of ${ANALYSIS_KINDS.join(', ')}. Default: all.`, example: 'summary,entities' }),
    webhookUrl: z
      .url({ protocol: /^https?$/ })
      .max(2048)
      .optional()
      .meta({ description: 'Called with document.* events when the document is finished (see the webhooks guide).' }),
  });
}

/** The multipart body as the spec shows it (the file part plus the fields). */
export const UploadBody = uploadFields()
  .extend({ file: z.string().meta({ format: 'binary', description: 'The PDF (application/pdf).' }) })
  .meta({ id: 'UploadForm' });

export const Progress = z
  .object({
    chunksTotal: z.number().int().min(0),
    chunksSucceeded: z.number().int().min(0),
    chunksFailed: z.number().int().min(0),
    percent: z.number().int().min(0).max(100).meta({ description: '100 only once the document is finished.' }),
  })
  .meta({ id: 'Progress' });

export const RecordedError = z.object({ code: z.string(), message: z.string() }).meta({ id: 'DocumentError' });

export const DocumentLinks = z
  .object({
    self: z.string(),
    result: z.string(),
    events: z.string().meta({ description: 'Server-Sent Events of this document (status, chunk completions).' }),
  })
  .meta({ id: 'DocumentLinks' });

/** The public view of a document (GET /v1/documents/{id}). */
export const Document = z
  .object({
    id: z.string(),
    status: JobStatus,
    mode: z.enum(['sync', 'async']),
    filename: z.string(),
    sizeBytes: z.number().int(),
    pages: z.object({
      total: z.number().int().nullable(),
      selected: z.number().int().nullable(),
      selection: z.string(),
    }),
    analyses: z.array(z.enum(ANALYSIS_KINDS)),
    progress: Progress,
    analyzer: z.string().nullable(),
    error: RecordedError.nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
    completedAt: z.string().nullable(),
    links: DocumentLinks,
  })
  .meta({ id: 'Document' });

/** 202: accepted on the async path. */
export const Accepted = z
  .object({ id: z.string(), status: JobStatus, links: DocumentLinks })
  .meta({ id: 'Accepted' });

export const DocumentList = z
  .object({
    documents: z.array(Document),
    next: z.string().optional().meta({ description: 'The next page, when there is one.' }),
  })
  .meta({ id: 'DocumentList' });

const Entity = z
  .object({
    text: z.string(),
    type: z.enum(ENTITY_TYPES),
    count: z.number().int().min(1),
    pages: z.array(z.number().int().min(1)),
  })
  .meta({ id: 'Entity' });

const Sentiment = z
  .object({ label: z.enum(['positive', 'negative', 'neutral', 'mixed']), score: z.number().min(-1).max(1) })
  .meta({ id: 'Sentiment' });

const Usage = z
  .object({ inputTokens: z.number().int(), outputTokens: z.number().int(), modelCalls: z.number().int() })
  .meta({ id: 'ModelUsage' });

const FailedPage = z.object({ page: z.number().int().min(1), code: z.string() }).meta({ id: 'FailedPage' });

const ChunkResult = z
  .object({
    index: z.number().int().min(0),
    pages: z.array(z.number().int()).min(2).max(2).meta({ description: '[first, last] page of the chunk.' }),
    status: z.enum(['succeeded', 'failed']),
    summary: z.string(),
    keyPoints: z.array(z.string()),
    entities: z.array(Entity),
    sentiment: Sentiment,
    textLength: z.number().int(),
    failedPages: z.array(FailedPage),
    usage: Usage,
    ocr: z.literal(true).optional(),
    ocrPages: z.array(z.number().int()).optional(),
    error: RecordedError.optional(),
  })
  .meta({ id: 'ChunkResult' });

/** The document result (schema version 1). */
export const DocumentResult = z
  .object({
    schemaVersion: z.literal(1),
    documentId: z.string(),
    status: z.enum(['completed', 'completed_with_errors', 'failed']),
    pages: z.object({ total: z.number().int(), analysed: z.number().int(), selection: z.string() }),
    analyzer: z.string(),
    summary: z.string(),
    keyPoints: z.array(z.string()),
    entities: z.array(Entity),
    sentiment: Sentiment,
    chunks: z.array(ChunkResult),
    failedPages: z.array(FailedPage),
    ocrPages: z.array(z.number().int()).optional().meta({ description: 'Pages read from their image (scanned).' }),
    usage: Usage,
    createdAt: z.string(),
  })
  .meta({ id: 'DocumentResult' });

const Quota = z.object({ used: z.number(), limit: z.number() });
export const UsageReport = z
  .object({
    tenantId: z.string(),
    month: z.string().meta({ example: '2026-12' }),
    inputTokens: z.number().int(),
    outputTokens: z.number().int(),
    modelCalls: z.number().int(),
    chunks: z.number().int(),
    quotas: z.object({
      pagesPerMonth: Quota.extend({ reserved: z.number() }),
      tokensPerMonth: Quota,
      concurrentDocuments: Quota,
    }),
  })
  .meta({ id: 'UsageReport' });

/** RFC 9457 problem details with docorch's stable `code`. Extensions never override these members. */
export const Problem = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int().min(400).max(599),
    code: z.enum(PROBLEM_CODES),
    detail: z.string(),
    instance: z.string().optional(),
  })
  .catchall(z.unknown())
  .meta({ id: 'Problem' });

export const Health = z.object({ status: z.literal('ok'), state: z.string() }).meta({ id: 'Health' });
export const Readiness = z.object({ ready: z.boolean() }).catchall(z.unknown()).meta({ id: 'Readiness' });

export type DocumentView = z.infer<typeof Document>;
export type AcceptedView = z.infer<typeof Accepted>;
