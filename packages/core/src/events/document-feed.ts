/**
 * A document's live events (the API's Server-Sent Events, docs/events.md), derived from the status
 * table alone, so that any API replica serves any stream and a reconnect resumes on another one.
 *
 * An event's id is a cursor that says everything the client has seen up to it: the status last
 * sent and a bitmap of the chunks whose completion was sent. Resuming from `Last-Event-ID` sends
 * exactly what the bitmap lacks: no gap (a chunk that finished out of order is still missing from
 * the bitmap) and no repeat (a chunk in the bitmap is never sent again), whichever replica answers.
 */
import type { ChunkRow } from '../aws/status-table.js';
import { JOB_STATUSES, progressOf, TERMINAL_STATUSES, type Job, type JobStatus, type Progress } from '../jobs/model.js';

/** One event of the feed. */
export type DocumentEvent =
  | { id: string; type: 'status'; data: { status: JobStatus; progress: Progress } }
  | { id: string; type: 'chunk'; data: { index: number; status: 'succeeded' | 'failed'; pages: [number, number]; progress: Progress; error?: { code: string; message: string } } }
  | { id: string; type: 'end'; data: { status: JobStatus; result: string | null; progress: Progress } };

/** What a client has seen (the event id, decoded). */
export interface FeedCursor {
  /** Index in JOB_STATUSES of the status last sent; -1 for none. */
  status: number;
  /** Bit i: chunk i's completion was sent. */
  chunks: Uint8Array;
  /** The end event was sent. */
  ended: boolean;
}

const PREFIX = 'e1';

/** A cursor that has seen nothing. */
export function emptyCursor(): FeedCursor {
  return { status: -1, chunks: new Uint8Array(0), ended: false };
}

/** Encodes a cursor as an event id (`e1.<status>.<end>.<bitmap base64url>`). */
export function encodeCursor(cursor: FeedCursor): string {
  let last = cursor.chunks.length;
  while (last > 0 && cursor.chunks[last - 1] === 0) last--;
  return `${PREFIX}.${cursor.status}.${cursor.ended ? 1 : 0}.${Buffer.from(cursor.chunks.subarray(0, last)).toString('base64url')}`;
}

/** Decodes an event id; a malformed or foreign one is the empty cursor (the client starts over). */
export function decodeCursor(id: string | undefined): FeedCursor {
  const m = id ? /^e1\.(-1|\d{1,2})\.([01])\.([A-Za-z0-9_-]{0,20000})$/.exec(id) : null;
  if (!m) return emptyCursor();
  const status = Number(m[1]);
  if (status >= JOB_STATUSES.length) return emptyCursor();
  return { status, ended: m[2] === '1', chunks: new Uint8Array(Buffer.from(m[3] ?? '', 'base64url')) };
}

function hasChunk(cursor: FeedCursor, index: number): boolean {
  const byte = cursor.chunks[index >> 3];
  return byte !== undefined && (byte & (1 << (index & 7))) !== 0;
}

function withChunk(cursor: FeedCursor, index: number): FeedCursor {
  const size = Math.max(cursor.chunks.length, (index >> 3) + 1);
  const chunks = new Uint8Array(size);
  chunks.set(cursor.chunks);
  chunks[index >> 3] = (chunks[index >> 3] ?? 0) | (1 << (index & 7));
  return { ...cursor, chunks };
}

/**
 * The events that take a client from `cursor` to the state of `job` and its `chunks`, and the
 * cursor after them. Order: a status change first, then chunk completions by index; at a terminal
 * status the chunks come first, then the status, then `end`.
 */
export function eventsSince(cursor: FeedCursor, job: Job, chunks: readonly ChunkRow[]): { events: DocumentEvent[]; cursor: FeedCursor } {
  const events: DocumentEvent[] = [];
  let at = cursor;
  if (at.ended) return { events, cursor: at };
  const progress = progressOf(job);
  const statusIndex = JOB_STATUSES.indexOf(job.status);
  const terminal = TERMINAL_STATUSES.has(job.status);
  const pushStatus = () => {
    if (at.status === statusIndex) return;
    at = { ...at, status: statusIndex };
    events.push({ id: encodeCursor(at), type: 'status', data: { status: job.status, progress } });
  };
  if (!terminal) pushStatus();
  const done = chunks.filter((c) => (c.status === 'succeeded' || c.status === 'failed') && !hasChunk(at, c.index)).sort((a, b) => a.index - b.index);
  for (const row of done) {
    at = withChunk(at, row.index);
    events.push({
      id: encodeCursor(at),
      type: 'chunk',
      data: {
        index: row.index,
        status: row.status as 'succeeded' | 'failed',
        pages: [row.firstPage, row.lastPage],
        progress,
        ...(row.error ? { error: row.error } : {}),
      },
    });
  }
  if (terminal) {
    pushStatus();
    at = { ...at, ended: true };
    const result = job.resultKey ? `/v1/documents/${job.documentId}/result` : null;
    events.push({ id: encodeCursor(at), type: 'end', data: { status: job.status, result, progress } });
  }
  return { events, cursor: at };
}

/** Formats one event in the text/event-stream wire format. */
export function formatServerSentEvent(event: DocumentEvent): string {
  return `id: ${event.id}\nevent: ${event.type}\ndata: ${JSON.stringify(event.data)}\n\n`;
}
