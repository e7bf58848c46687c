/**
 * Shapes of the webhook deliveries and the document event stream (see docs/webhooks.md and
 * docs/events.md).
 */
import { z } from 'zod';
import { WEBHOOK_EVENTS } from '@docorch/core';

export const DeliveryAttempt = z
  .object({
    at: z.string(),
    statusCode: z.number().int().nullable().meta({ description: "The receiver's HTTP status; null when no answer came." }),
    error: z.string().nullable().meta({ description: 'Why the attempt failed (timeout, refused target, ...), null on success.' }),
    durationMs: z.number().int(),
  })
  .meta({ id: 'DeliveryAttempt' });

export const Delivery = z
  .object({
    id: z.string(),
    eventId: z.string().meta({ description: 'The event id the receiver dedupes on (the same for every attempt).' }),
    event: z.enum(WEBHOOK_EVENTS),
    url: z.string(),
    status: z.enum(['pending', 'delivered', 'failed']).meta({ description: 'failed: gave up after the retry window (24 h) or the target was refused.' }),
    attempts: z.array(DeliveryAttempt),
    nextAttemptAt: z.string().nullable(),
    createdAt: z.string(),
  })
  .meta({ id: 'Delivery' });

export const DeliveryList = z.object({ deliveries: z.array(Delivery) }).meta({ id: 'DeliveryList' });

export const EVENT_STREAM_DESCRIPTION = [
  'Server-Sent Events of one document, read from the tables (any API replica serves them):',
  '',
  '- `status` `{status, progress}`: the status changed (the first event is always the current status);',
  '- `chunk` `{index, status, pages: [first, last], progress}`: a chunk finished (succeeded or failed);',
  '- `end` `{status, result}`: the document finished; `result` is the result link (null when cancelled). The stream closes.',
  '',
  'Every event has an `id`; reconnect with `Last-Event-ID` (EventSource does) to resume without gaps or repeats.',
  'A comment line `: keep-alive` comes every 15 s; a stream closes after `EVENTS_MAX_STREAM_MS` (reconnect to continue).',
].join('\n');
