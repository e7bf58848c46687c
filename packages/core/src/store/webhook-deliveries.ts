/**
 * The webhook deliveries table: one row per (document, event, target), with its attempts. The rows
 * of pending deliveries are the delivery schedule (the sparse `byDue` index, by next attempt), so a
 * restart of any process loses nothing: a worker finds what is due and claims it with a
 * conditional write before it sends (docs/webhooks.md).
 */
import { GetCommand, PutCommand, QueryCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { isConditionFailure } from '../aws/conditions.js';
import { WEBHOOKS_TABLE_KEYS as K } from '../aws/resources.js';
import type { WebhookEvent } from '../webhooks/events.js';

/** A finished delivery's log is kept this long (DynamoDB TTL), then expires. */
export const DELIVERY_LOG_RETENTION_S = 30 * 24 * 3600;
const DUE = 'due';

/** One attempt of a delivery. */
export interface DeliveryAttempt {
  at: string;
  statusCode: number | null;
  error: string | null;
  durationMs: number;
}

/** A delivery (a row). */
export interface WebhookDelivery {
  tenantId: string;
  documentId: string;
  deliveryId: string;
  /** The event's id: the receiver dedupes on it (the same on every attempt and target). */
  eventId: string;
  event: WebhookEvent;
  url: string;
  /** Where the URL came from: the upload's `webhookUrl` or the tenant's setting. */
  source: 'document' | 'tenant';
  status: 'pending' | 'delivered' | 'failed';
  attempts: DeliveryAttempt[];
  /** The JSON body, the same bytes on every attempt. */
  payload: string;
  createdAt: string;
  /** Start of the retry window (the event, or the last manual redelivery). */
  windowStart: string;
  /** The next attempt while pending. */
  nextAttemptAt?: string;
}

type Key = { tenantId: string; documentId: string; deliveryId: string };

function keyOf(k: Key): Record<string, string> {
  return { [K.pk]: `${k.tenantId}#${k.documentId}`, [K.sk]: k.deliveryId };
}

function fromItem(item: Record<string, unknown> | undefined): WebhookDelivery | undefined {
  if (!item) return undefined;
  const { pk: _pk, sk: _sk, dueShard: _d, dueAt: _a, claimedBy: _c, expiresAt: _e, ...rest } = item;
  return rest as unknown as WebhookDelivery;
}

/** Access to the deliveries table. */
export class WebhookDeliveries {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    readonly tableName: string,
  ) {}

  /** Creates a pending delivery due now; false when it exists already (a retried stream record). */
  async create(d: Omit<WebhookDelivery, 'status' | 'attempts' | 'nextAttemptAt'>): Promise<boolean> {
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { ...keyOf(d), ...d, status: 'pending', attempts: [], nextAttemptAt: d.createdAt, [K.dueShard]: DUE, [K.dueAt]: d.createdAt },
          ConditionExpression: 'attribute_not_exists(#pk)',
          ExpressionAttributeNames: { '#pk': K.pk },
        }),
      );
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  /** A document's deliveries, oldest first. */
  async list(tenantId: string, documentId: string): Promise<WebhookDelivery[]> {
    const out: WebhookDelivery[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const page = await this.doc.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: '#pk = :pk',
          ExpressionAttributeNames: { '#pk': K.pk },
          ExpressionAttributeValues: { ':pk': `${tenantId}#${documentId}` },
          ConsistentRead: true,
          ...(start ? { ExclusiveStartKey: start } : {}),
        }),
      );
      for (const item of page.Items ?? []) {
        const d = fromItem(item);
        if (d) out.push(d);
      }
      start = page.LastEvaluatedKey;
    } while (start);
    return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.deliveryId.localeCompare(b.deliveryId));
  }

  /** One delivery, or undefined. */
  async get(key: Key): Promise<WebhookDelivery | undefined> {
    const out = await this.doc.send(new GetCommand({ TableName: this.tableName, Key: keyOf(key), ConsistentRead: true }));
    return fromItem(out.Item);
  }

  /** Keys and due times of deliveries due at `now`, earliest first. */
  async due(now: Date, limit: number): Promise<Array<{ pk: string; sk: string; dueAt: string }>> {
    const out = await this.doc.send(
      new QueryCommand({
        TableName: this.tableName,
        IndexName: K.byDueIndex,
        KeyConditionExpression: '#s = :due AND #at <= :now',
        ExpressionAttributeNames: { '#s': K.dueShard, '#at': K.dueAt },
        ExpressionAttributeValues: { ':due': DUE, ':now': now.toISOString() },
        Limit: limit,
      }),
    );
    return (out.Items ?? []).map((i) => ({ pk: String(i[K.pk]), sk: String(i[K.sk]), dueAt: String(i[K.dueAt]) }));
  }

  /**
   * Claims a due delivery for one attempt: its due time moves to `until` (when an attempt that
   * died is retried) on condition it is still pending and due as seen. Undefined when another
   * worker claimed it first or it changed.
   */
  async claim(row: { pk: string; sk: string; dueAt: string }, owner: string, until: Date): Promise<WebhookDelivery | undefined> {
    try {
      const out = await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { [K.pk]: row.pk, [K.sk]: row.sk },
          UpdateExpression: 'SET #at = :until, claimedBy = :me',
          ConditionExpression: '#status = :pending AND #at = :seen',
          ExpressionAttributeNames: { '#at': K.dueAt, '#status': 'status' },
          ExpressionAttributeValues: { ':until': until.toISOString(), ':me': owner, ':pending': 'pending', ':seen': row.dueAt },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return fromItem(out.Attributes);
    } catch (err) {
      if (isConditionFailure(err)) return undefined;
      throw err;
    }
  }

  /**
   * Records an attempt by the claim's owner: delivered, failed (given up), or pending with the next
   * attempt at `retryAt`. False when the claim was lost (a redelivery or another worker took it).
   */
  async recordAttempt(key: Key, owner: string, attempt: DeliveryAttempt, next: { status: 'delivered' | 'failed' } | { status: 'pending'; retryAt: Date }): Promise<boolean> {
    const pending = next.status === 'pending';
    const finishedTtl = Math.floor(Date.now() / 1000) + DELIVERY_LOG_RETENTION_S;
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keyOf(key),
          UpdateExpression: pending
            ? 'SET attempts = list_append(attempts, :a), #at = :next, nextAttemptAt = :next REMOVE claimedBy'
            : 'SET attempts = list_append(attempts, :a), #status = :status, #exp = :ttl REMOVE claimedBy, #shard, #at, nextAttemptAt',
          ConditionExpression: 'claimedBy = :me AND #status = :pending',
          ExpressionAttributeNames: { '#status': 'status', '#at': K.dueAt, ...(pending ? {} : { '#shard': K.dueShard, '#exp': K.ttl }) },
          ExpressionAttributeValues: {
            ':a': [attempt],
            ':me': owner,
            ':pending': 'pending',
            ...(pending ? { ':next': next.retryAt.toISOString() } : { ':status': next.status, ':ttl': finishedTtl }),
          },
        }),
      );
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  /** Makes a delivery pending and due now, with a fresh retry window (POST .../redeliver). */
  async redeliver(key: Key, now: Date): Promise<WebhookDelivery | undefined> {
    try {
      const out = await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keyOf(key),
          UpdateExpression: 'SET #status = :pending, #shard = :due, #at = :now, nextAttemptAt = :now, windowStart = :now REMOVE claimedBy, #exp',
          ConditionExpression: 'attribute_exists(#pk)',
          ExpressionAttributeNames: { '#status': 'status', '#shard': K.dueShard, '#at': K.dueAt, '#exp': K.ttl, '#pk': K.pk },
          ExpressionAttributeValues: { ':pending': 'pending', ':due': DUE, ':now': now.toISOString() },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return fromItem(out.Attributes);
    } catch (err) {
      if (isConditionFailure(err)) return undefined;
      throw err;
    }
  }
}
