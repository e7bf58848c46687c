/**
 * The docorch API client. Types come from the API's OpenAPI document (./generated/openapi.ts).
 *
 * - Uploads stream from disk (a file-backed Blob, `fs.openAsBlob`); a stream input is spooled to a
 *   temporary file first, so that a retried upload can be sent again.
 * - Every submit carries an Idempotency-Key (made here unless given): a retry after a dropped
 *   connection replays the first answer instead of creating a second document.
 * - 429 and 503 (and 502, 504, a dropped connection) are retried with backoff, honouring
 *   Retry-After; quota errors (QUOTA_*) are not, since waiting minutes would not help.
 * - Errors are typed classes carrying the problem's `code` (./errors.ts).
 */
import { randomUUID } from 'node:crypto';
import { createWriteStream, openAsBlob } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { ConnectionError, DocorchApiError, DocumentFailedError, errorClassFor, type ProblemCode } from './errors.js';
import type { Accepted, Delivery, DeliveryList, Document, DocumentList, DocumentResult, JobStatus, Problem, Progress, UsageReport } from './generated/openapi.js';

/** Options of {@link DocorchClient}. */
export interface DocorchClientOptions {
  /** The API's base URL, e.g. `http://127.0.0.1:8080`. */
  baseUrl: string;
  /** An API key (`dk_live_...`). */
  apiKey: string;
  /** Retries of a retryable failure (429, 502, 503, 504, a dropped connection). @defaultValue 5 */
  maxRetries?: number;
  /** First backoff delay when the server gives no Retry-After; doubles per retry (full jitter). @defaultValue 500 */
  retryBaseMs?: number;
  /** Longest wait before a retry, Retry-After included: a longer Retry-After is thrown to the caller. @defaultValue 60000 */
  maxRetryWaitMs?: number;
  /** Deadline of one HTTP request (an upload's too). @defaultValue 300000 */
  timeoutMs?: number;
  /** The fetch implementation. @defaultValue globalThis.fetch */
  fetch?: typeof fetch;
  /** @defaultValue `docorch-client/<version>` */
  userAgent?: string;
}

/** What can be uploaded: a file path, a file: URL, bytes, a Blob, or a stream. */
export type UploadInput = string | URL | Blob | Uint8Array | ArrayBuffer | ReadableStream<Uint8Array> | NodeJS.ReadableStream;

/** Options of {@link DocorchClient.submit}. */
export interface SubmitOptions {
  /** The file name shown in listings. @defaultValue the path's base name, else `document.pdf` */
  filename?: string;
  /** @defaultValue 'auto' */
  mode?: 'auto' | 'sync' | 'async';
  /** Pages to analyse, e.g. `1-3,7`. @defaultValue all */
  pages?: string;
  pagesPerChunk?: number;
  analyses?: Array<'summary' | 'entities' | 'keyPoints' | 'sentiment'>;
  webhookUrl?: string;
  /** @defaultValue a new UUID, reused by this call's retries */
  idempotencyKey?: string;
  signal?: AbortSignal;
  /** Hears each retry before its wait (a 429 or 503 with Retry-After, a dropped connection). */
  onRetry?: (retry: RetryNotice) => void;
}

/** A retry about to wait. */
export interface RetryNotice {
  /** The retry's number, from 1. */
  attempt: number;
  waitMs: number;
  error: DocorchApiError;
}

/** The answer of a submit: a result (answered in the request) or an accepted document. */
export interface SubmitOutcome {
  id: string;
  status: JobStatus;
  /** Present when the document was answered in the request (sync path). */
  result?: DocumentResult;
  /** The server replayed an earlier answer of the same Idempotency-Key. */
  replayed: boolean;
  idempotencyKey: string;
}

/** One event of a document's live stream (GET /v1/documents/{id}/events). */
export type DocumentEvent =
  | { id: string; type: 'status'; data: { status: JobStatus; progress: Progress } }
  | { id: string; type: 'chunk'; data: { index: number; status: 'succeeded' | 'failed'; pages: [number, number]; progress: Progress; error?: { code: string; message: string } } }
  | { id: string; type: 'end'; data: { status: JobStatus; result: string | null; progress: Progress } };

/** What {@link DocorchClient.waitForResult} reports as the document advances. */
export interface ProgressUpdate {
  status: JobStatus;
  progress: Progress;
  /** The chunk that just finished, on a chunk event. */
  chunk?: { index: number; status: 'succeeded' | 'failed'; pages: [number, number] };
  /** Since waitForResult was called. */
  elapsedMs: number;
}

const TERMINAL = new Set<JobStatus>(['completed', 'completed_with_errors', 'failed', 'cancelled']);
const RETRY_STATUS = new Set([429, 502, 503, 504]);
/** 429s that waiting a few seconds does not cure. */
const NO_RETRY_CODES = new Set<string>(['QUOTA_PAGES_EXCEEDED', 'QUOTA_TOKENS_EXCEEDED']);
const VERSION = '0.1.0';

interface RequestOptions {
  query?: Record<string, string | number | undefined>;
  headers?: Record<string, string>;
  /** Made anew for each attempt (a stream body cannot be sent twice). */
  body?: () => RequestInit["body"] | Promise<RequestInit["body"]>;
  signal?: AbortSignal;
  /** Answers that are not errors besides 2xx. */
  accept?: number[];
  /** No deadline (an event stream lasts as long as the document). */
  noTimeout?: boolean;
  onRetry?: (retry: RetryNotice) => void;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => (clearTimeout(t), reject(signal.reason)), { once: true });
  });
}

/** Seconds of a Retry-After header (delta-seconds or an HTTP date). */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - now) / 1000));
}

/** The docorch API client. */
export class DocorchClient {
  private readonly baseUrl: string;
  private readonly fetchImpl: typeof fetch;

  constructor(private readonly options: DocorchClientOptions) {
    if (!options.baseUrl) throw new TypeError('baseUrl is required (e.g. DOCORCH_URL)');
    if (!options.apiKey) throw new TypeError('apiKey is required (e.g. DOCORCH_API_KEY)');
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  // ---- documents ---------------------------------------------------------------------------------

  /**
   * Uploads a PDF. A path is streamed from disk; a stream is spooled to a temporary file first.
   * Resolves with the result when the document was answered in the request, else with its id.
   */
  async submit(input: UploadInput, options: SubmitOptions = {}): Promise<SubmitOutcome> {
    const idempotencyKey = options.idempotencyKey ?? randomUUID();
    const file = await toFile(input, options.filename);
    try {
      const res = await this.request('POST', '/v1/documents', {
        headers: { 'Idempotency-Key': idempotencyKey },
        ...(options.signal ? { signal: options.signal } : {}),
        ...(options.onRetry ? { onRetry: options.onRetry } : {}),
        body: () => {
          const form = new FormData();
          if (options.mode) form.set('mode', options.mode);
          if (options.pages) form.set('pages', options.pages);
          if (options.pagesPerChunk !== undefined) form.set('pagesPerChunk', String(options.pagesPerChunk));
          if (options.analyses) form.set('analyses', options.analyses.join(','));
          if (options.webhookUrl) form.set('webhookUrl', options.webhookUrl);
          form.set('file', file.blob, file.name);
          return form;
        },
      });
      const replayed = res.headers.get('idempotent-replayed') === 'true';
      if (res.status === 200) {
        const result = (await res.json()) as DocumentResult;
        return { id: result.documentId, status: result.status, result, replayed, idempotencyKey };
      }
      const accepted = (await res.json()) as Accepted;
      return { id: accepted.id, status: accepted.status, replayed, idempotencyKey };
    } finally {
      await file.dispose();
    }
  }

  /** A document's status and progress. `wait` (seconds, up to 30) long-polls until it finishes. */
  async get(id: string, options: { wait?: number; signal?: AbortSignal } = {}): Promise<Document> {
    const res = await this.request('GET', `/v1/documents/${encodeURIComponent(id)}`, {
      query: { wait: options.wait },
      ...(options.signal ? { signal: options.signal } : {}),
    });
    return (await res.json()) as Document;
  }

  /** The result of a finished document (ConflictError RESULT_NOT_READY before). */
  async result(id: string, options: { signal?: AbortSignal } = {}): Promise<DocumentResult> {
    const res = await this.request('GET', `/v1/documents/${encodeURIComponent(id)}/result`, options.signal ? { signal: options.signal } : {});
    return (await res.json()) as DocumentResult;
  }

  /** One page of the tenant's documents, newest first. */
  async listPage(options: { limit?: number; cursor?: string; signal?: AbortSignal } = {}): Promise<DocumentList> {
    const res = await this.request('GET', '/v1/documents', {
      query: { limit: options.limit, cursor: options.cursor },
      ...(options.signal ? { signal: options.signal } : {}),
    });
    return (await res.json()) as DocumentList;
  }

  /** Every document of the tenant, newest first, fetched a page at a time as you iterate. */
  async *list(options: { pageSize?: number; signal?: AbortSignal } = {}): AsyncGenerator<Document> {
    let cursor: string | undefined;
    do {
      const page = await this.listPage({
        ...(options.pageSize !== undefined ? { limit: options.pageSize } : {}),
        ...(cursor ? { cursor } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      });
      yield* page.documents;
      cursor = page.next ? (new URL(page.next, this.baseUrl).searchParams.get('cursor') ?? undefined) : undefined;
    } while (cursor);
  }

  /** Cancels a running document (resolves with it, `cancelled`) or deletes a finished one's data (undefined). */
  async cancel(id: string, options: { signal?: AbortSignal } = {}): Promise<Document | undefined> {
    const res = await this.request('DELETE', `/v1/documents/${encodeURIComponent(id)}`, options.signal ? { signal: options.signal } : {});
    return res.status === 204 ? undefined : ((await res.json()) as Document);
  }

  /** The tenant's usage and quotas for a month (YYYY-MM; default the current one). */
  async usage(month?: string): Promise<UsageReport> {
    const res = await this.request('GET', '/v1/usage', { query: { month } });
    return (await res.json()) as UsageReport;
  }

  /** A document's webhook deliveries with their attempts. */
  async deliveries(id: string): Promise<Delivery[]> {
    const res = await this.request('GET', `/v1/documents/${encodeURIComponent(id)}/deliveries`);
    return ((await res.json()) as DeliveryList).deliveries;
  }

  /** Sends a webhook delivery again now. */
  async redeliver(id: string, deliveryId: string): Promise<Delivery> {
    const res = await this.request('POST', `/v1/documents/${encodeURIComponent(id)}/deliveries/${encodeURIComponent(deliveryId)}/redeliver`);
    return (await res.json()) as Delivery;
  }

  // ---- live progress -----------------------------------------------------------------------------

  /**
   * A document's live events (Server-Sent Events). Reconnects with Last-Event-ID when the stream
   * drops, so no event is missed or repeated; ends after the `end` event.
   */
  async *events(id: string, options: { lastEventId?: string; signal?: AbortSignal } = {}): AsyncGenerator<DocumentEvent> {
    let lastEventId = options.lastEventId;
    let reconnectMs = 1_000;
    let failures = 0;
    for (;;) {
      let res: Response;
      try {
        res = await this.request('GET', `/v1/documents/${encodeURIComponent(id)}/events`, {
          headers: { Accept: 'text/event-stream', ...(lastEventId ? { 'Last-Event-ID': lastEventId } : {}) },
          accept: [204],
          noTimeout: true,
          ...(options.signal ? { signal: options.signal } : {}),
        });
      } catch (err) {
        if (options.signal?.aborted || !(err instanceof ConnectionError) || ++failures > (this.options.maxRetries ?? 5)) throw err;
        await sleep(reconnectMs, options.signal);
        continue;
      }
      if (res.status === 204 || !res.body) return; // everything was sent already
      const queue: EventSourceMessage[] = [];
      const parser = createParser({
        onEvent: (m) => queue.push(m),
        onRetry: (ms) => (reconnectMs = ms),
      });
      const decoder = new TextDecoder();
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          parser.feed(decoder.decode(chunk, { stream: true }));
          while (queue.length > 0) {
            const m = queue.shift() as EventSourceMessage;
            if (m.id) lastEventId = m.id;
            const event = { id: m.id ?? '', type: m.event ?? 'message', data: JSON.parse(m.data) } as DocumentEvent;
            failures = 0;
            yield event;
            if (event.type === 'end') return;
          }
        }
      } catch (err) {
        if (options.signal?.aborted) throw err;
        // A dropped stream: reconnect below from the last event.
      }
      await sleep(reconnectMs, options.signal);
    }
  }

  /**
   * Waits until the document is finished and resolves with its result; `onProgress` hears every
   * status change and chunk completion (from the event stream; by long-polling if that fails).
   * Throws {@link DocumentFailedError} for a document that ends `failed` or `cancelled`.
   */
  async waitForResult(id: string, options: { onProgress?: (update: ProgressUpdate) => void; signal?: AbortSignal } = {}): Promise<DocumentResult> {
    const started = Date.now();
    const report = (status: JobStatus, progress: Progress, chunk?: ProgressUpdate['chunk']) =>
      options.onProgress?.({ status, progress, ...(chunk ? { chunk } : {}), elapsedMs: Date.now() - started });
    const signal = options.signal ? { signal: options.signal } : {};
    let finalStatus: JobStatus | undefined;
    try {
      for await (const e of this.events(id, signal)) {
        if (e.type === 'chunk') report('processing', e.data.progress, { index: e.data.index, status: e.data.status, pages: e.data.pages });
        else report(e.data.status, e.data.progress);
        if (e.type === 'end') finalStatus = e.data.status;
      }
    } catch (err) {
      // The event stream failed (a proxy that buffers, say): fall back to long-polling below,
      // unless the caller gave up or the document does not exist.
      if (options.signal?.aborted || !(err instanceof DocorchApiError) || err.status === 404 || err.status === 401) throw err;
    }
    // Fallback (or confirmation): long-poll the document.
    let doc = await this.get(id, signal);
    while (!TERMINAL.has(doc.status)) {
      report(doc.status, doc.progress);
      doc = await this.get(id, { wait: 20, ...signal });
    }
    if (finalStatus === undefined) report(doc.status, doc.progress);
    if (doc.status === 'completed' || doc.status === 'completed_with_errors') return this.result(id, signal);
    throw new DocumentFailedError(doc);
  }

  // ---- transport ---------------------------------------------------------------------------------

  private async request(method: string, pathname: string, options: RequestOptions = {}): Promise<Response> {
    const url = new URL(`${this.baseUrl}${pathname}`);
    for (const [k, v] of Object.entries(options.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const maxRetries = this.options.maxRetries ?? 5;
    const base = this.options.retryBaseMs ?? 500;
    const maxWait = this.options.maxRetryWaitMs ?? 60_000;
    for (let attempt = 0; ; attempt++) {
      const timeout = options.noTimeout ? undefined : AbortSignal.timeout(this.options.timeoutMs ?? 300_000);
      const signals = [options.signal, timeout].filter((s): s is AbortSignal => s !== undefined);
      let res: Response;
      try {
        const body = options.body ? await options.body() : undefined;
        res = await this.fetchImpl(url, {
          method,
          headers: {
            Authorization: `Bearer ${this.options.apiKey}`,
            'User-Agent': this.options.userAgent ?? `docorch-client/${VERSION}`,
            Accept: 'application/json',
            ...options.headers,
          },
          ...(body !== undefined ? { body } : {}),
          ...(signals.length > 0 ? { signal: AbortSignal.any(signals) } : {}),
        });
      } catch (err) {
        if (options.signal?.aborted) throw options.signal.reason ?? err;
        const error = new ConnectionError(`${method} ${url.pathname}: ${describeFetchError(err)}`, { status: 0, code: 'CONNECTION_FAILED', cause: err });
        if (attempt >= maxRetries) throw error;
        const waitMs = backoff(attempt, base, maxWait);
        options.onRetry?.({ attempt: attempt + 1, waitMs, error });
        await sleep(waitMs, options.signal);
        continue;
      }
      if (res.ok || options.accept?.includes(res.status)) return res;
      const error = await toApiError(res, method, url.pathname);
      const retryable = (RETRY_STATUS.has(res.status) || error.code === 'IDEMPOTENCY_IN_PROGRESS') && !NO_RETRY_CODES.has(error.code);
      const waitMs = error.retryAfterSeconds !== undefined ? error.retryAfterSeconds * 1000 : backoff(attempt, base, maxWait);
      if (!retryable || attempt >= maxRetries || waitMs > maxWait) throw error;
      await res.body?.cancel().catch(() => undefined);
      options.onRetry?.({ attempt: attempt + 1, waitMs, error });
      await sleep(waitMs, options.signal);
    }
  }
}

function backoff(attempt: number, baseMs: number, maxMs: number): number {
  return Math.round(Math.random() * Math.min(maxMs, baseMs * 2 ** attempt));
}

function describeFetchError(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (err as Error).message ?? String(err);
}

async function toApiError(res: Response, method: string, pathname: string): Promise<DocorchApiError> {
  const text = await res.text().catch(() => '');
  let problem: Problem | undefined;
  try {
    const parsed = JSON.parse(text) as Problem;
    if (parsed && typeof parsed.code === 'string') problem = parsed;
  } catch {
    // not a problem body (a proxy's page)
  }
  const Kind = errorClassFor(res.status);
  const retryAfterSeconds = parseRetryAfter(res.headers.get('retry-after'));
  const requestId = res.headers.get('x-request-id') ?? undefined;
  const code = (problem?.code ?? (res.status >= 500 ? 'INTERNAL' : 'INVALID_REQUEST')) as ProblemCode;
  return new Kind(problem?.detail ?? `${method} ${pathname} answered ${res.status}`, {
    status: res.status,
    code,
    ...(problem ? { problem } : {}),
    ...(requestId ? { requestId } : {}),
    ...(retryAfterSeconds !== undefined ? { retryAfterSeconds } : {}),
  });
}

/** A file to upload, backed by disk, and how to clean up after it. */
async function toFile(input: UploadInput, filename?: string): Promise<{ blob: Blob; name: string; dispose: () => Promise<void> }> {
  const none = async () => undefined;
  if (typeof input === 'string' || input instanceof URL) {
    const name = filename ?? path.basename(input instanceof URL ? input.pathname : input);
    return { blob: await openAsBlob(input, { type: 'application/pdf' }), name, dispose: none };
  }
  if (input instanceof Blob) return { blob: input, name: filename ?? 'document.pdf', dispose: none };
  if (input instanceof Uint8Array || input instanceof ArrayBuffer) {
    return { blob: new Blob([input instanceof ArrayBuffer ? new Uint8Array(input) : input], { type: 'application/pdf' }), name: filename ?? 'document.pdf', dispose: none };
  }
  // A stream is read once: spool it to a temporary file so retries can send it again.
  const dir = await mkdtemp(path.join(tmpdir(), 'docorch-upload-'));
  const spooled = path.join(dir, 'upload.pdf');
  const source = input instanceof ReadableStream ? Readable.fromWeb(input as never) : (input as NodeJS.ReadableStream);
  await pipeline(source, createWriteStream(spooled, { mode: 0o600 }));
  return { blob: await openAsBlob(spooled, { type: 'application/pdf' }), name: filename ?? 'document.pdf', dispose: () => rm(dir, { recursive: true, force: true }) };
}
