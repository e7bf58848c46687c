/**
 * The console's API access: same origin, the key from session storage in the Authorization header
 * (never in a URL), problem+json errors, and the live events read with fetch (EventSource cannot
 * send a header), resumed with Last-Event-ID.
 */
import { createParser } from 'eventsource-parser';

export type JobStatus = 'queued' | 'splitting' | 'processing' | 'assembling' | 'completed' | 'completed_with_errors' | 'failed' | 'cancelled';
export interface Progress {
  chunksTotal: number;
  chunksSucceeded: number;
  chunksFailed: number;
  percent: number;
}
export interface DocumentView {
  id: string;
  status: JobStatus;
  mode: 'sync' | 'async';
  filename: string;
  sizeBytes: number;
  pages: { total: number | null; selected: number | null; selection: string };
  progress: Progress;
  error: { code: string; message: string } | null;
  createdAt: string;
  completedAt: string | null;
}
export interface Entity {
  text: string;
  type: string;
  count: number;
  pages: number[];
}
export interface ChunkResult {
  index: number;
  pages: number[];
  status: 'succeeded' | 'failed';
  summary: string;
  sentiment: { label: string; score: number };
  error?: { code: string; message: string };
}
export interface DocumentResult {
  documentId: string;
  status: JobStatus;
  pages: { total: number; analysed: number; selection: string };
  analyzer: string;
  summary: string;
  keyPoints: string[];
  entities: Entity[];
  sentiment: { label: string; score: number };
  chunks: ChunkResult[];
  failedPages: Array<{ page: number; code: string }>;
  usage: { inputTokens: number; outputTokens: number; modelCalls: number };
}
export type DocumentEvent =
  | { id: string; type: 'status'; data: { status: JobStatus; progress: Progress } }
  | { id: string; type: 'chunk'; data: { index: number; status: 'succeeded' | 'failed'; pages: [number, number]; progress: Progress; error?: { code: string } } }
  | { id: string; type: 'end'; data: { status: JobStatus; result: string | null; progress: Progress } };

export const TERMINAL: ReadonlySet<JobStatus> = new Set(['completed', 'completed_with_errors', 'failed', 'cancelled']);

const KEY = 'docorch.apiKey';
export const storedKey = (): string | null => sessionStorage.getItem(KEY);
export const storeKey = (key: string | null): void => (key ? sessionStorage.setItem(KEY, key) : sessionStorage.removeItem(KEY));

/** An error answer (problem+json). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

async function call(path: string, init: RequestInit = {}): Promise<Response> {
  const key = storedKey();
  const res = await fetch(path, { ...init, headers: { ...(init.headers ?? {}), ...(key ? { authorization: `Bearer ${key}` } : {}) } });
  if (!res.ok && res.status !== 204) {
    const body = (await res.json().catch(() => ({}))) as { code?: string; detail?: string };
    throw new ApiError(res.status, body.code ?? `HTTP_${res.status}`, body.detail ?? res.statusText);
  }
  return res;
}

export const api = {
  async list(cursor?: string): Promise<{ documents: DocumentView[]; next?: string }> {
    return (await call(`/v1/documents?limit=50${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`)).json();
  },
  async get(id: string): Promise<DocumentView> {
    return (await call(`/v1/documents/${encodeURIComponent(id)}`)).json();
  },
  async result(id: string): Promise<DocumentResult> {
    return (await call(`/v1/documents/${encodeURIComponent(id)}/result`)).json();
  },
  async cancel(id: string): Promise<void> {
    await call(`/v1/documents/${encodeURIComponent(id)}`, { method: 'DELETE' });
  },
  async upload(file: File, fields: Record<string, string>): Promise<{ id: string; status: JobStatus }> {
    const form = new FormData();
    for (const [k, v] of Object.entries(fields)) if (v) form.set(k, v);
    form.set('file', file, file.name);
    const res = await call('/v1/documents', { method: 'POST', body: form, headers: { 'Idempotency-Key': crypto.randomUUID() } });
    const body = (await res.json()) as { id?: string; documentId?: string; status: JobStatus };
    return { id: body.id ?? body.documentId ?? '', status: body.status };
  },
  /** Streams a document's events until its end (or `signal`), reconnecting from the last event id. */
  async events(id: string, onEvent: (e: DocumentEvent) => void, signal: AbortSignal): Promise<void> {
    let last: string | undefined;
    while (!signal.aborted) {
      try {
        const res = await call(`/v1/documents/${encodeURIComponent(id)}/events`, { headers: { accept: 'text/event-stream', ...(last ? { 'last-event-id': last } : {}) }, signal });
        if (res.status === 204 || !res.body) return;
        let ended = false;
        const parser = createParser({
          onEvent: (m) => {
            if (m.id) last = m.id;
            const e = { id: m.id ?? '', type: m.event, data: JSON.parse(m.data) } as DocumentEvent;
            if (e.type === 'end') ended = true;
            onEvent(e);
          },
        });
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          parser.feed(value);
        }
        if (ended) return;
      } catch (err) {
        if (signal.aborted) return;
        if (err instanceof ApiError && err.status < 500 && err.status !== 429) throw err;
      }
      await new Promise((r) => setTimeout(r, 2_000));
    }
  },
};
