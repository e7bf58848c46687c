/**
 * The dead-letter store: records that could not be processed (undecodable, or out of attempts)
 * are kept here with their error, so nothing is lost and an operator can inspect and replay them
 * (`docorch dead-letters list|show|replay|purge`, pipeline/dead-letter.ts).
 *
 * Layout: `pk` = `${tenantId}#${documentId}` (or `stream` for a record naming no document), so a
 * document's letters are one Query and are deleted with it; `sk` = `${iso}#${recordId}`.
 */
import { BatchWriteCommand, DeleteCommand, GetCommand, PutCommand, QueryCommand, ScanCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { DocorchError } from '../errors.js';
import { isConditionFailure } from '../aws/conditions.js';

/**
 * What became of a dead letter:
 * - `held`: its work item (a chunk, or a document's split) waits for a replay; the reconciler
 *   finishes it with its error once its document is stale (RECONCILE_STALE_MS);
 * - `failed`: its work was finished as failed (the chunk counted failed, or the job failed);
 * - `replayed`: re-published by an operator (or the record named no document: informational).
 */
export type DeadLetterDisposition = 'held' | 'failed' | 'replayed' | 'unheld';

/** One dead letter. */
export interface DeadLetter {
  /** `${tenantId}#${documentId}` when known, else `stream`. */
  pk: string;
  /** `${iso timestamp}#${record id}`: sorts by time. */
  sk: string;
  tenantId?: string;
  documentId?: string;
  /** The record's event type (`chunk.ready`, `document.submitted`), when it decoded. */
  type?: string;
  /** Chunk index of a `chunk.ready`. */
  chunkIndex?: number;
  /** Why: an error code from errors.ts (or DECODE_ERROR) and its message. */
  code: string;
  message: string;
  /** The record as received (base64 of the raw data when it was not a valid event). */
  record: unknown;
  shardId?: string;
  sequenceNumber?: string;
  deadAt: string;
  disposition: DeadLetterDisposition;
  /** When and by whom the letter was replayed. */
  replayedAt?: string;
}

/** The id an operator uses for a dead letter (its key, base64url). */
export function deadLetterId(letter: Pick<DeadLetter, 'pk' | 'sk'>): string {
  return `dl_${Buffer.from(`${letter.pk}\n${letter.sk}`).toString('base64url')}`;
}

/** The key of a dead-letter id; INVALID_REQUEST when it is not one. */
export function deadLetterKey(id: string): { pk: string; sk: string } {
  const decoded = id.startsWith('dl_') ? Buffer.from(id.slice(3), 'base64url').toString('utf8') : '';
  const at = decoded.indexOf('\n');
  if (at <= 0) throw new DocorchError('INVALID_REQUEST', `Not a dead-letter id: ${id}`);
  return { pk: decoded.slice(0, at), sk: decoded.slice(at + 1) };
}

/** Repository of dead letters. */
export class DeadLetters {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    readonly tableName: string,
  ) {}

  /** Stores a dead letter. */
  async put(
    letter: Omit<DeadLetter, 'pk' | 'sk' | 'deadAt' | 'disposition'> & { id: string; disposition?: DeadLetterDisposition },
  ): Promise<DeadLetter> {
    const deadAt = new Date().toISOString();
    const { id, tenantId, documentId, ...rest } = letter;
    const item: DeadLetter = {
      disposition: 'replayed',
      ...rest,
      ...(tenantId && documentId ? { tenantId, documentId } : {}),
      pk: tenantId && documentId ? `${tenantId}#${documentId}` : 'stream',
      sk: `${deadAt}#${id}`,
      deadAt,
    };
    await this.doc.send(new PutCommand({ TableName: this.tableName, Item: item }));
    return item;
  }

  /** One dead letter, or undefined. */
  async get(key: { pk: string; sk: string }): Promise<DeadLetter | undefined> {
    const out = await this.doc.send(new GetCommand({ TableName: this.tableName, Key: { pk: key.pk, sk: key.sk }, ConsistentRead: true }));
    return out.Item as DeadLetter | undefined;
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
          ConsistentRead: true,
          ExclusiveStartKey: start,
        }),
      );
      out.push(...((page.Items ?? []) as DeadLetter[]));
      start = page.LastEvaluatedKey;
    } while (start);
    return out;
  }

  /**
   * Every dead letter (an operator's listing: the table holds only failures, so a scan is the
   * right tool), optionally of one tenant, oldest first.
   */
  async listAll(filter: { tenantId?: string } = {}): Promise<DeadLetter[]> {
    const out: DeadLetter[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const page = await this.doc.send(
        new ScanCommand({
          TableName: this.tableName,
          ExclusiveStartKey: start,
          ...(filter.tenantId ? { FilterExpression: 'tenantId = :t', ExpressionAttributeValues: { ':t': filter.tenantId } } : {}),
        }),
      );
      out.push(...((page.Items ?? []) as DeadLetter[]));
      start = page.LastEvaluatedKey;
    } while (start);
    return out.sort((a, b) => a.deadAt.localeCompare(b.deadAt));
  }

  /** Moves a letter from `from` to `to`; false when it was not in `from`. */
  async setDisposition(key: { pk: string; sk: string }, from: DeadLetterDisposition, to: DeadLetterDisposition): Promise<boolean> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: key.pk, sk: key.sk },
          UpdateExpression: to === 'replayed' ? 'SET disposition = :to, replayedAt = :now' : 'SET disposition = :to',
          ConditionExpression: 'disposition = :from',
          ExpressionAttributeValues: { ':to': to, ':from': from, ...(to === 'replayed' ? { ':now': new Date().toISOString() } : {}) },
        }),
      );
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  /** Deletes one letter. */
  async delete(key: { pk: string; sk: string }): Promise<void> {
    await this.doc.send(new DeleteCommand({ TableName: this.tableName, Key: { pk: key.pk, sk: key.sk } }));
  }

  /** Deletes every letter of a document (with the document). */
  async deleteDocument(tenantId: string, documentId: string): Promise<void> {
    const letters = await this.list(`${tenantId}#${documentId}`);
    for (let i = 0; i < letters.length; i += 25) {
      const group = letters.slice(i, i + 25).map((l) => ({ DeleteRequest: { Key: { pk: l.pk, sk: l.sk } } }));
      let pending: typeof group = group;
      for (let attempt = 0; pending.length > 0 && attempt < 10; attempt++) {
        const out = await this.doc.send(new BatchWriteCommand({ RequestItems: { [this.tableName]: pending } }));
        pending = (out.UnprocessedItems?.[this.tableName] ?? []) as typeof group;
      }
    }
  }
}
