/**
 * A uniquely named lease table per test file (KCL layout: HASH key leaseKey (S), on-demand),
 * deleted afterwards, plus the document client the lease layer uses.
 */
import { randomUUID } from 'node:crypto';
import {
  CreateTableCommand,
  DeleteTableCommand,
  waitUntilTableExists,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { DeleteCommand, DynamoDBDocumentClient, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { startDynamoDbLocal, localDynamoDbClient, type DynamoDbLocal } from './dynamodb-local.js';

/** A lease table and its clients. */
export interface LeaseTableFixture {
  db: DynamoDbLocal;
  client: DynamoDBClient;
  doc: DynamoDBDocumentClient;
  tableName: string;
  /** Deletes every row (between tests). */
  clear(): Promise<void>;
  /** Deletes the table, closes the clients, stops DynamoDB Local if started here. */
  dispose(): Promise<void>;
}

/** Creates a lease table named `leases-<prefix>-<uuid>`. */
export async function createLeaseTableFixture(prefix: string): Promise<LeaseTableFixture> {
  const db = await startDynamoDbLocal();
  const client = localDynamoDbClient(db.endpoint);
  const doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
  const tableName = `leases-${prefix}-${randomUUID()}`;
  await client.send(
    new CreateTableCommand({
      TableName: tableName,
      AttributeDefinitions: [{ AttributeName: 'leaseKey', AttributeType: 'S' }],
      KeySchema: [{ AttributeName: 'leaseKey', KeyType: 'HASH' }],
      BillingMode: 'PAY_PER_REQUEST',
    }),
  );
  await waitUntilTableExists({ client, maxWaitTime: 30 }, { TableName: tableName });
  return {
    db,
    client,
    doc,
    tableName,
    async clear() {
      const out = await doc.send(new ScanCommand({ TableName: tableName, ConsistentRead: true }));
      await Promise.all(
        (out.Items ?? []).map((item) => doc.send(new DeleteCommand({ TableName: tableName, Key: { leaseKey: item.leaseKey } }))),
      );
    },
    async dispose() {
      try {
        await client.send(new DeleteTableCommand({ TableName: tableName }));
      } finally {
        doc.destroy();
        client.destroy();
        await db.stop();
      }
    },
  };
}
