/**
 * The document event feed (events/document-feed.ts): event ids are cursors, so resuming from any
 * event sends exactly what the client lacks, whatever order the chunks finished in.
 */
import { describe, expect, it } from 'vitest';
import type { ChunkRow } from '../src/aws/status-table.js';
import { decodeCursor, emptyCursor, encodeCursor, eventsSince, formatServerSentEvent, type DocumentEvent } from '../src/events/document-feed.js';
import type { Job, JobStatus } from '../src/jobs/model.js';

function job(status: JobStatus, succeeded: number, failed = 0, total = 6): Job {
  return {
    tenantId: 't',
    documentId: 'doc_12345678',
    status,
    chunksTotal: total,
    chunksSucceeded: succeeded,
    chunksFailed: failed,
    ...(status === 'completed' || status === 'completed_with_errors' ? { resultKey: 'r' } : {}),
  } as Job;
}

function rows(done: Record<number, 'succeeded' | 'failed'>, total = 6): ChunkRow[] {
  return Array.from({ length: total }, (_, i) => ({ index: i, firstPage: i * 10 + 1, lastPage: i * 10 + 10, status: done[i] ?? 'processing', attempt: 1, claimCounter: 1 }) as ChunkRow);
}

describe('document event feed', () => {
  it('sends the status, each chunk once with its pages, then the end, and resumes from any event without gaps or repeats', () => {
    // The chunks finish out of order: 3, 0, 5, 1, 2, 4.
    const order = [3, 0, 5, 1, 2, 4];
    const states: Array<{ job: Job; chunks: ChunkRow[] }> = [{ job: job('splitting', 0, 0, 0), chunks: [] }];
    const done: Record<number, 'succeeded' | 'failed'> = {};
    order.forEach((index, n) => {
      done[index] = index === 5 ? 'failed' : 'succeeded';
      const failed = Object.values(done).filter((s) => s === 'failed').length;
      states.push({ job: job('processing', n + 1 - failed, failed), chunks: rows(done) });
    });
    states.push({ job: job('completed_with_errors', 5, 1), chunks: rows(done) });

    // One uninterrupted client.
    const all: DocumentEvent[] = [];
    let cursor = emptyCursor();
    for (const s of states) {
      const next = eventsSince(cursor, s.job, s.chunks);
      all.push(...next.events);
      cursor = next.cursor;
    }
    expect(all.map((e) => (e.type === 'chunk' ? `chunk ${e.data.index}` : `${e.type} ${e.data.status}`))).toEqual([
      'status splitting',
      'status processing',
      ...order.map((i) => `chunk ${i}`),
      'status completed_with_errors',
      'end completed_with_errors',
    ]);
    const chunk5 = all.find((e) => e.type === 'chunk' && e.data.index === 5);
    expect(chunk5?.data).toMatchObject({ status: 'failed', pages: [51, 60] });
    expect(all.at(-1)?.data).toMatchObject({ result: '/v1/documents/doc_12345678/result' });

    // A client that reconnects after every k-th event, to a replica that sees only the final state,
    // gets the rest exactly once.
    for (let k = 0; k < all.length; k++) {
      const resumed = eventsSince(decodeCursor(all[k]?.id), states.at(-1)!.job, states.at(-1)!.chunks);
      const seen = all.slice(0, k + 1).filter((e) => e.type === 'chunk').map((e) => (e as { data: { index: number } }).data.index);
      const got = resumed.events.filter((e) => e.type === 'chunk').map((e) => (e as { data: { index: number } }).data.index);
      expect([...seen, ...got].sort()).toEqual([0, 1, 2, 3, 4, 5]);
      expect(new Set([...seen, ...got]).size).toBe(6);
      expect(resumed.events.at(-1)?.type).toBe(k === all.length - 1 ? undefined : 'end');
    }
  });

  it('round-trips cursors, treats a foreign id as a fresh start, and formats the wire format', () => {
    const c = { status: 2, ended: false, chunks: new Uint8Array([0b1010_0001, 0, 0b1]) };
    const back = decodeCursor(encodeCursor(c));
    expect(back.status).toBe(2);
    expect([...back.chunks]).toEqual([0b1010_0001, 0, 1]);
    expect(decodeCursor('garbage')).toEqual(emptyCursor());
    expect(decodeCursor('e1.99.0.')).toEqual(emptyCursor());
    const text = formatServerSentEvent({ id: 'e1.0.0.', type: 'status', data: { status: 'queued', progress: { chunksTotal: 0, chunksSucceeded: 0, chunksFailed: 0, percent: 0 } } });
    expect(text).toBe('id: e1.0.0.\nevent: status\ndata: {"status":"queued","progress":{"chunksTotal":0,"chunksSucceeded":0,"chunksFailed":0,"percent":0}}\n\n');
  });
});
