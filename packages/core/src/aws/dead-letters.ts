/**
 * The dead-letter store: records that could not be processed (undecodable, or out of attempts)
 * are kept here with their error, so nothing is lost and an operator can inspect and replay them.
 */
import { PutCommand, QueryCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';

/** One dead letter. */
export interface DeadLetter {
  /** `${tenantId}#${documentId}` when known, else `stream`. */
  pk: string;
  /** `${iso timestamp}#${record id}`: sorts by time. */
  sk: string;
  /** Why: an error code from errors.ts (or DECODE_ERROR) and its message. */
  code: string;
  message: string;
  /** The record as received (base64 of the raw data when it was not a valid event). */
  record: unknown;
  shardId?: string;
  sequenceNumber?: string;
  deadAt: string;
}

/** Repository of dead letters. */
export class DeadLetters {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    readonly tableName: string,
  ) {}

  /** Stores a dead letter. */
  async put(letter: Omit<DeadLetter, 'pk' | 'sk' | 'deadAt'> & { tenantId?: string; documentId?: string; id: string }): Promise<DeadLetter> {
    const deadAt = new Date().toISOString();
    const { tenantId, documentId, id, ...rest } = letter;
    const item: DeadLetter = {
      ...rest,
      pk: tenantId && documentId ? `${tenantId}#${documentId}` : 'stream',
      sk: `${deadAt}#${id}`,
      deadAt,
    };
    await this.doc.send(new PutCommand({ TableName: this.tableName, Item: item }));
    return item;
  }

  /** Dead letters of one document (or `stream` for records without one), oldest first. */
  async list(pk: string): Promise<DeadLetter[]> {
    const out: DeadLetter[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const page = await this.doc.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: 'pk = :pk',
          ExpressionAttributeValues: { ':pk': pk },
          ExclusiveStartKey: start,
        }),
      );
      out.push(...((page.Items ?? []) as DeadLetter[]));
      start = page.LastEvaluatedKey;
    } while (start);
    return out;
  }
}
