/**
 * Fixed-window request counters shared by every API replica, in the rate-limit table (key `pk`):
 * one row per key and window, `API#<key>#<windowStart>`, incremented with one atomic update and
 * expired by DynamoDB TTL (`expiresAt`). The API's express-rate-limit store (services/api) wraps it,
 * so N replicas together admit what the plan allows, not N times that.
 */
import { UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';

/** The state of a key's current window after a hit. */
export interface WindowHits {
  totalHits: number;
  /** When the window ends. */
  resetTime: Date;
}

/** Shared fixed-window counters. */
export class RateLimitCounters {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    readonly tableName: string,
    private readonly now: () => number = Date.now,
  ) {}

  private window(key: string, windowMs: number): { pk: string; start: number } {
    const start = Math.floor(this.now() / windowMs) * windowMs;
    return { pk: `API#${key}#${start}`, start };
  }

  /** Counts one request of `key` in the current window; returns the window's count and end. */
  async hit(key: string, windowMs: number, by = 1): Promise<WindowHits> {
    const { pk, start } = this.window(key, windowMs);
    const out = await this.doc.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: { pk },
        UpdateExpression: 'ADD hits :n SET expiresAt = if_not_exists(expiresAt, :exp)',
        ExpressionAttributeValues: { ':n': by, ':exp': Math.ceil((start + 2 * windowMs) / 1000) },
        ReturnValues: 'UPDATED_NEW',
      }),
    );
    return { totalHits: Number(out.Attributes?.hits ?? by), resetTime: new Date(start + windowMs) };
  }

  /** Takes a hit back (express-rate-limit's skip of successful or failed requests). */
  async unhit(key: string, windowMs: number): Promise<void> {
    await this.hit(key, windowMs, -1);
  }
}
