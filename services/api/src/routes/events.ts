/**
 * GET /v1/documents/{id}/events: the document's live events as Server-Sent Events (core's
 * events/document-feed.ts; docs/events.md). The stream re-reads the job row every EVENTS_POLL_MS
 * and the chunk rows only when a count or the status moved; it sends a keep-alive comment when
 * quiet, closes after EVENTS_IDLE_MS without an event, at the end of the document, and when the
 * process starts draining (the client reconnects with Last-Event-ID and loses nothing).
 */
import type { Request, Response } from 'express';
import { decodeCursor, eventsSince, formatServerSentEvent, sleep, type ChunkRow, type Job, type PipelineContext } from '@docorch/core';
import { loadJob } from './documents.js';

/** Builds the handler. @param drain - aborted when the process starts draining */
export function eventsHandler(ctx: PipelineContext, drain?: AbortSignal) {
  const { EVENTS_POLL_MS: pollMs, EVENTS_KEEPALIVE_MS: keepAliveMs, EVENTS_IDLE_MS: idleMs } = ctx.config;
  return async (req: Request, res: Response): Promise<void> => {
    let job: Job | undefined = await loadJob(ctx, req);
    const lastEventId = req.get('Last-Event-ID') ?? (typeof req.query.lastEventId === 'string' ? req.query.lastEventId : undefined);
    let cursor = decodeCursor(lastEventId);
    if (cursor.ended) {
      // Everything was sent: 204 tells EventSource not to reconnect.
      res.status(204).end();
      return;
    }
    res.status(200);
    res.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
    res.setHeader('Cache-Control', 'no-cache, no-transform');
    res.setHeader('X-Accel-Buffering', 'no');
    res.flushHeaders();
    res.write('retry: 2000\n\n');
    const log = req.log.child({ tenantId: job.tenantId, documentId: job.documentId });
    const closed = new AbortController();
    req.on('close', () => closed.abort());
    const stop = AbortSignal.any([closed.signal, ...(drain ? [drain] : [])]);
    let chunks: ChunkRow[] = [];
    let listedAt: string | undefined;
    let lastEventAt = Date.now();
    let lastWriteAt = Date.now();
    try {
      while (!stop.aborted && job) {
        // The chunk rows are read only when the job row says something moved.
        const moved = `${job.status}:${job.chunksSucceeded + job.chunksFailed}`;
        if (moved !== listedAt && job.chunksTotal > 0) {
          chunks = await ctx.status.listChunks(job.tenantId, job.documentId);
          listedAt = moved;
        }
        const next = eventsSince(cursor, job, chunks);
        if (next.events.length > 0) {
          res.write(next.events.map(formatServerSentEvent).join(''));
          cursor = next.cursor;
          lastEventAt = lastWriteAt = Date.now();
        }
        if (cursor.ended) break;
        if (Date.now() - lastEventAt >= idleMs) break;
        if (Date.now() - lastWriteAt >= keepAliveMs) {
          res.write(': keep-alive\n\n');
          lastWriteAt = Date.now();
        }
        await sleep(pollMs, stop).catch(() => undefined);
        if (stop.aborted) break;
        job = await ctx.status.getJob(job.tenantId, job.documentId);
      }
    } catch (err) {
      // Headers are sent: the stream just ends; the client resumes from its last event id.
      log.warn({ err }, 'event stream failed; closing it');
    }
    res.end();
  };
}
