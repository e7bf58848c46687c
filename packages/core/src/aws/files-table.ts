/**
 * The file-metadata table: one row per uploaded document, plus idempotency rows that map a
 * client's Idempotency-Key to the document it created.
 */
import { isConditionFailure } from './conditions.js';
import { DeleteCommand, GetCommand, PutCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { documentPk } from './status-table.js';

/** Metadata of an uploaded file. */
export interface FileRecord {
  tenantId: string;
  documentId: string;
  filename: string;
  contentType: string;
  sizeBytes: number;
  sha256: string;
  bucket: string;
  key: string;
  createdAt: string;
}

/** What an idempotency key is bound to. */
export interface IdempotencyRecord {
  documentId: string;
  /** Hash of the request (file hash and options): a reused key with another request is a conflict. */
  requestHash: string;
  createdAt: string;
}

/** The row key of a tenant's Idempotency-Key binding. */
function idempotencyPk(tenantId: string, key: string): string {
  return `${tenantId}#idem#${key}`;
}

/** Repository of file rows. */
export class FilesTable {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    readonly tableName: string,
  ) {}

  /** The Put of a file row, for a transaction that writes it with its job (StatusTable.createJob). */
  putItem(file: FileRecord): { TableName: string; Item: Record<string, unknown> } {
    return { TableName: this.tableName, Item: { ...file, pk: documentPk(file.tenantId, file.documentId) } };
  }

  async getFile(tenantId: string, documentId: string): Promise<FileRecord | undefined> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: { pk: documentPk(tenantId, documentId) }, ConsistentRead: true }),
    );
    if (!out.Item) return undefined;
    const { pk: _pk, ...file } = out.Item;
    return file as FileRecord;
  }

  async deleteFile(tenantId: string, documentId: string): Promise<void> {
    await this.doc.send(new DeleteCommand({ TableName: this.tableName, Key: { pk: documentPk(tenantId, documentId) } }));
  }

  /**
   * Binds an idempotency key to a document with one conditional write. Returns the existing
   * binding when the key was used before (the caller answers with that document), else undefined.
   * Keys expire after `ttlSeconds` (DynamoDB TTL on `expiresAt`).
   */
  async claimIdempotencyKey(
    tenantId: string,
    key: string,
    record: IdempotencyRecord,
    ttlSeconds = 24 * 3600,
  ): Promise<IdempotencyRecord | undefined> {
    const pk = idempotencyPk(tenantId, key);
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { pk, ...record, expiresAt: Math.floor(Date.now() / 1000) + ttlSeconds },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
      return undefined;
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
      return this.getIdempotencyKey(tenantId, key);
    }
  }

  /** The document an idempotency key is bound to, if it is (a consistent read). */
  async getIdempotencyKey(tenantId: string, key: string): Promise<IdempotencyRecord | undefined> {
    const out = await this.doc.send(new GetCommand({ TableName: this.tableName, Key: { pk: idempotencyPk(tenantId, key) }, ConsistentRead: true }));
    if (!out.Item) return undefined;
    const { documentId, requestHash, createdAt } = out.Item as IdempotencyRecord;
    return { documentId, requestHash, createdAt };
  }

  /**
   * Moves a binding from the document it names (`seen`, as read) to `next`, on condition that it
   * still names `seen`'s document: of two requests taking over one binding, one wins. Returns
   * whether this one did.
   */
  async takeOverIdempotencyKey(tenantId: string, key: string, seen: IdempotencyRecord, next: IdempotencyRecord, ttlSeconds = 24 * 3600): Promise<boolean> {
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { pk: idempotencyPk(tenantId, key), ...next, expiresAt: Math.floor(Date.now() / 1000) + ttlSeconds },
          ConditionExpression: 'documentId = :seen',
          ExpressionAttributeValues: { ':seen': seen.documentId },
        }),
      );
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  /**
   * The condition, for the transaction that creates a document (StatusTable.createJob), that the
   * request's idempotency key is still bound to that document: a request whose binding was taken
   * over by a retry (it was presumed dead) can then never create a second document.
   */
  bindingCheck(tenantId: string, key: string, documentId: string): { TableName: string; Key: Record<string, unknown>; ConditionExpression: string; ExpressionAttributeValues: Record<string, unknown> } {
    return { TableName: this.tableName, Key: { pk: idempotencyPk(tenantId, key) }, ConditionExpression: 'documentId = :doc', ExpressionAttributeValues: { ':doc': documentId } };
  }

  /**
   * Releases an idempotency key (the request it guarded failed before creating anything durable,
   * or its document was deleted), on condition that it still names `documentId`: a request whose
   * binding a retry took over must not remove the retry's.
   */
  async releaseIdempotencyKey(tenantId: string, key: string, documentId: string): Promise<void> {
    try {
      await this.doc.send(
        new DeleteCommand({
          TableName: this.tableName,
          Key: { pk: idempotencyPk(tenantId, key) },
          ConditionExpression: 'documentId = :doc',
          ExpressionAttributeValues: { ':doc': documentId },
        }),
      );
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
  }
}
