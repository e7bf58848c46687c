/**
 * The OpenAPI 3.1 document, generated from ./schemas.ts (zod-openapi). Every route, parameter,
 * header and status is here, and each error status lists the problem codes it can carry (the
 * response schema restricts `code` to them, so a route answering an undocumented code fails the
 * contract test in test/contract).
 */
import { z } from 'zod';
import { createDocument, type ZodOpenApiResponseObject, type ZodOpenApiResponsesObject } from 'zod-openapi';
import { ERROR_CODES, type ErrorCode } from '@docorch/core';
import {
  Accepted,
  Document,
  DocumentId,
  DocumentList,
  DocumentResult,
  Health,
  Problem,
  Readiness,
  UploadBody,
  UsageReport,
} from './schemas.js';
import { DeliveryList, Delivery, EVENT_STREAM_DESCRIPTION } from './events-schemas.js';

const retryAfter = z.string().meta({ description: 'Seconds to wait before retrying.', example: '2' });
const rateLimitHeaders = {
  RateLimit: z.string().optional().meta({ description: 'IETF draft-8 RateLimit: the remaining budget of the current window, e.g. `"reads";r=99;t=60`.' }),
  'RateLimit-Policy': z.string().optional().meta({ description: 'IETF draft-8 RateLimit-Policy: the budget, e.g. `"reads";q=120;w=60`.' }),
  'X-Request-Id': z.string().optional().meta({ description: 'The request id (echoed from the request, or made); in every log line of the request.' }),
};

/** Problem responses by status, each restricted to its codes. */
function problems(codes: readonly ErrorCode[]): ZodOpenApiResponsesObject {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of codes) {
    const status = ERROR_CODES[code].status;
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const out: ZodOpenApiResponsesObject = {};
  for (const [status, list] of [...byStatus].sort((a, b) => a[0] - b[0])) {
    const retry = status === 429 || status === 503;
    const response: ZodOpenApiResponseObject = {
      description: `Problem (RFC 9457). Codes: ${list.map((c) => `\`${c}\` (${ERROR_CODES[c].title})`).join('; ')}.`,
      content: { 'application/problem+json': { schema: Problem.extend({ code: z.enum(list as [ErrorCode, ...ErrorCode[]]) }) } },
      headers: z.object({ ...rateLimitHeaders, ...(retry ? { 'Retry-After': retryAfter } : {}) }),
    };
    out[String(status) as `${1 | 2 | 3 | 4 | 5}${string}`] = response;
  }
  return out;
}

/** Codes any authenticated route can answer. */
const V1_COMMON: ErrorCode[] = ['INVALID_REQUEST', 'UNAUTHENTICATED', 'FORBIDDEN', 'THROTTLED', 'INTERNAL', 'UPSTREAM_UNAVAILABLE', 'SHUTTING_DOWN', 'TIMEOUT'];
const json = <T extends z.ZodType>(schema: T, description: string, headers: Record<string, z.ZodType> = {}): ZodOpenApiResponseObject => ({
  description,
  content: { 'application/json': { schema } },
  headers: z.object({ ...rateLimitHeaders, ...headers }),
});
const idParam = { path: z.object({ id: DocumentId }) };
const security = [{ apiKey: [] }];

/** Builds the document (the served `/openapi.json`). */
export function openApiDocument(serverUrl = '/'): ReturnType<typeof createDocument> {
  return createDocument({
    openapi: '3.1.0',
    info: {
      title: 'docorch',
      version: '1.0.0',
      description:
        'PDF analysis (summary, entities, key points, sentiment). Small files are answered in the request; large ones are ' +
        'split into chunks analysed in parallel. Authenticate with `Authorization: Bearer <api key>`. Errors are ' +
        '`application/problem+json` with a stable `code`; 429 and 503 carry `Retry-After`.',
    },
    servers: [{ url: serverUrl }],
    components: {
      securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: 'An API key (`docorch keys create`).' } },
      // Each error status restricts `code` inline; the general shape is registered for clients.
      schemas: { Problem },
    },
    paths: {
      '/v1/documents': {
        post: {
          operationId: 'submitDocument',
          summary: 'Upload a PDF for analysis',
          security,
          requestParams: {
            header: z.object({
              'Idempotency-Key': z
                .string()
                .max(255)
                .optional()
                .meta({ description: 'Retrying with the same key never creates a second document: the first answer is replayed (`Idempotent-Replayed: true`).' }),
            }),
          },
          requestBody: { required: true, content: { 'multipart/form-data': { schema: UploadBody } } },
          responses: {
            '200': json(DocumentResult, 'Answered in the request (sync path): the result.', {
              Location: z.string().meta({ description: 'The document.' }),
              'Idempotent-Replayed': z.literal('true').optional(),
            }),
            '202': json(Accepted, 'Accepted: the document is analysed on the async path. Poll `Location` or read its events.', {
              Location: z.string().meta({ description: 'The document.' }),
              'Idempotent-Replayed': z.literal('true').optional(),
            }),
            ...problems([
              ...V1_COMMON,
              'IDEMPOTENCY_IN_PROGRESS',
              // A request so slow that a retry with its Idempotency-Key took the key over: the retry's document stands.
              'CONFLICT',
              'TOO_LARGE',
              'UNSUPPORTED_MEDIA_TYPE',
              'BAD_PDF',
              'ENCRYPTED_PDF',
              'TOO_MANY_PAGES',
              'INVALID_PAGE_RANGE',
              'IDEMPOTENCY_KEY_REUSED',
              'QUOTA_PAGES_EXCEEDED',
              'QUOTA_TOKENS_EXCEEDED',
              'CONCURRENCY_LIMIT',
            ]),
          },
        },
        get: {
          operationId: 'listDocuments',
          summary: "The tenant's documents, newest first",
          security,
          requestParams: {
            query: z.object({
              limit: z.coerce.number().int().min(1).max(100).default(20).optional(),
              cursor: z.string().optional().meta({ description: 'From the previous page\'s `next`.' }),
            }),
          },
          responses: { '200': json(DocumentList, 'A page of documents.'), ...problems(V1_COMMON) },
        },
      },
      '/v1/documents/{id}': {
        get: {
          operationId: 'getDocument',
          summary: 'Status and progress of a document',
          security,
          requestParams: {
            ...idParam,
            query: z.object({
              wait: z.coerce.number().min(0).max(30).optional().meta({ description: 'Long-poll: answer when the document is finished or after this many seconds.' }),
            }),
          },
          responses: { '200': json(Document, 'The document.'), ...problems([...V1_COMMON, 'NOT_FOUND']) },
        },
        delete: {
          operationId: 'cancelDocument',
          summary: 'Cancel pending work and delete the stored data',
          security,
          requestParams: idParam,
          responses: {
            '200': json(Document, 'Cancelled: the document as it is now (`cancelled`).'),
            '204': { description: 'Already finished: its stored data is deleted.', headers: z.object(rateLimitHeaders) },
            ...problems([...V1_COMMON, 'NOT_FOUND']),
          },
        },
      },
      '/v1/documents/{id}/result': {
        get: {
          operationId: 'getResult',
          summary: 'The result of a finished document',
          security,
          requestParams: idParam,
          responses: {
            '200': json(DocumentResult, 'The result.'),
            ...problems([...V1_COMMON, 'NOT_FOUND', 'RESULT_NOT_READY']),
          },
        },
      },
      '/v1/documents/{id}/events': {
        get: {
          operationId: 'streamEvents',
          summary: 'Live progress as Server-Sent Events',
          description: EVENT_STREAM_DESCRIPTION,
          security,
          requestParams: {
            ...idParam,
            header: z.object({
              'Last-Event-ID': z.string().optional().meta({ description: 'Resume after this event (sent by EventSource on reconnect).' }),
            }),
          },
          responses: {
            '200': {
              description: 'An event stream (`text/event-stream`).',
              content: { 'text/event-stream': { schema: z.string() } },
              headers: z.object(rateLimitHeaders),
            },
            '204': { description: 'Last-Event-ID says the end was sent already: nothing more (EventSource stops reconnecting).', headers: z.object(rateLimitHeaders) },
            ...problems([...V1_COMMON, 'NOT_FOUND']),
          },
        },
      },
      '/v1/documents/{id}/deliveries': {
        get: {
          operationId: 'listDeliveries',
          summary: "The document's webhook deliveries and their attempts",
          security,
          requestParams: idParam,
          responses: { '200': json(DeliveryList, 'The deliveries, oldest first.'), ...problems([...V1_COMMON, 'NOT_FOUND']) },
        },
      },
      '/v1/documents/{id}/deliveries/{deliveryId}/redeliver': {
        post: {
          operationId: 'redeliver',
          summary: 'Send a delivery again now (a new attempt with the same event id)',
          security,
          requestParams: { path: z.object({ id: DocumentId, deliveryId: z.string() }) },
          responses: { '202': json(Delivery, 'Scheduled: the delivery as it is now.'), ...problems([...V1_COMMON, 'NOT_FOUND', 'CONFLICT']) },
        },
      },
      '/v1/usage': {
        get: {
          operationId: 'getUsage',
          summary: "The tenant's usage and quotas for a month",
          security,
          requestParams: { query: z.object({ month: z.string().regex(/^\d{4}-(0[1-9]|1[0-2])$/).optional().meta({ description: 'YYYY-MM (UTC); default the current month.' }) }) },
          responses: { '200': json(UsageReport, 'The usage.'), ...problems(V1_COMMON) },
        },
      },
      '/healthz': {
        get: { operationId: 'health', summary: 'Liveness', responses: { '200': json(Health, 'Alive.') } },
      },
      '/readyz': {
        get: {
          operationId: 'ready',
          summary: 'Readiness (dependencies reachable, not shutting down)',
          responses: { '200': json(Readiness, 'Ready.'), '503': json(Readiness, 'Not ready.') },
        },
      },
      '/metrics': {
        get: {
          operationId: 'metrics',
          summary: 'Prometheus metrics',
          responses: { '200': { description: 'Prometheus text format.', content: { 'text/plain': { schema: z.string() } } } },
        },
      },
      '/openapi.json': {
        get: {
          operationId: 'openapi',
          summary: 'This document',
          responses: { '200': { description: 'OpenAPI 3.1.', content: { 'application/json': { schema: z.record(z.string(), z.unknown()) } } } },
        },
      },
    },
  });
}
