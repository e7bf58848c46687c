/**
 * Records on the stream: a versioned JSON envelope carrying pointers (ids, S3 keys), never
 * document text (Kinesis records are capped at 1 MiB). Validated with zod on the way in, so a
 * malformed record is dead-lettered instead of crashing or stalling its shard.
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { ANALYSIS_KINDS } from '../analysis/types.js';
import { currentTraceparent } from '../telemetry/tracing.js';

const ids = {
  tenantId: z.string().min(1).max(64),
  documentId: z.string().min(1).max(64),
};

/** Payload schemas by event type. */
export const EVENT_PAYLOADS = {
  /** A stored upload waiting to be split into chunks. */
  'document.submitted': z.object({
    ...ids,
    /**
     * Published by the reconciler for a stale document: a job already split also has its claimed
     * chunks re-published (their claims may be orphaned), not only its pending ones.
     */
    recover: z.boolean().optional(),
  }),
  /** A chunk whose input is in S3, waiting for analysis. */
  'chunk.ready': z.object({
    ...ids,
    chunkIndex: z.number().int().min(0),
    /** Delivery attempt of this chunk, from 1. */
    attempt: z.number().int().min(1),
    analyses: z.array(z.enum(ANALYSIS_KINDS)).min(1),
    /**
     * The document's fair-share window (pipeline/fair-share.ts): when this chunk is finished, the
     * chunk `chunkIndex + window` is published. Absent: every chunk was published at once.
     */
    window: z.number().int().min(1).optional(),
    /** The tenant's share weight, for the worker's fair queue. @defaultValue 1 */
    weight: z.number().positive().optional(),
  }),
} as const;

export type EventType = keyof typeof EVENT_PAYLOADS;
export type EventPayload<T extends EventType> = z.infer<(typeof EVENT_PAYLOADS)[T]>;

/** The envelope of every record. */
export interface StreamEvent<T extends EventType = EventType> {
  /** Envelope version. */
  v: 1;
  /** Unique id of this record (a re-publish gets a new one). */
  id: string;
  type: T;
  payload: EventPayload<T>;
  createdAt: string;
  /** W3C trace context of the span that published it: its handler's span continues the trace. */
  traceparent?: string;
}

const envelope = z.object({
  v: z.literal(1),
  id: z.string().min(1),
  type: z.enum(Object.keys(EVENT_PAYLOADS) as [EventType, ...EventType[]]),
  payload: z.unknown(),
  createdAt: z.string(),
  traceparent: z.string().max(128).optional(),
});

/** Builds an event. */
export function createEvent<T extends EventType>(type: T, payload: EventPayload<T>): StreamEvent<T> {
  const traceparent = currentTraceparent();
  return { v: 1, id: randomUUID(), type, payload, createdAt: new Date().toISOString(), ...(traceparent ? { traceparent } : {}) };
}

/** Serialises an event for PutRecords. */
export function encodeEvent(event: StreamEvent): Uint8Array {
  return Buffer.from(JSON.stringify(event), 'utf8');
}

/** Parses a record's data; throws a descriptive Error for anything that is not a valid event. */
export function decodeEvent(data: Uint8Array): StreamEvent {
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(data).toString('utf8'));
  } catch (err) {
    throw new Error(`record is not JSON: ${(err as Error).message}`);
  }
  const env = envelope.safeParse(raw);
  if (!env.success) throw new Error(`record is not a docorch event: ${env.error.issues[0]?.message ?? 'invalid'}`);
  const payload = EVENT_PAYLOADS[env.data.type].safeParse(env.data.payload);
  if (!payload.success) {
    throw new Error(`invalid ${env.data.type} payload: ${payload.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  return { ...env.data, payload: payload.data } as StreamEvent;
}
