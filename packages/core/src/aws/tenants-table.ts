/**
 * Tenants and their API keys. Only a SHA-256 of each key is stored: keys are 256-bit random
 * secrets, so a fast hash is enough (no dictionary to guard against) and lookups stay O(1).
 */
import { GetCommand, PutCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Usage } from '../analysis/types.js';
import { createHash, randomBytes } from 'node:crypto';

/** A tenant as the API sees it. */
export interface Tenant {
  tenantId: string;
  name: string;
  /** Per-tenant override of RATE_LIMIT_PER_MINUTE. */
  rateLimitPerMinute?: number;
}

const TENANT_ID = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** Hex SHA-256 of an API key: the only form in which keys are stored. */
export function hashApiKey(apiKey: string): string {
  return createHash('sha256').update(apiKey, 'utf8').digest('hex');
}

/** A new random API key (`dk_` + 43 base64url characters, 256 bits). */
export function generateApiKey(): string {
  return `dk_${randomBytes(32).toString('base64url')}`;
}

/** A tenant's model usage in one calendar month (UTC). */
export interface MonthlyUsage extends Usage {
  tenantId: string;
  /** `YYYY-MM`. */
  month: string;
  /** Chunks analysed (succeeded or failed). */
  chunks: number;
}

/** `YYYY-MM` of a date, in UTC. */
export function usageMonth(at: Date = new Date()): string {
  return at.toISOString().slice(0, 7);
}

/** Key of a tenant's usage row for a month. */
export function usageKey(tenantId: string, month: string): { pk: string } {
  return { pk: `USAGE#${tenantId}#${month}` };
}

/** The UpdateItem that adds usage to a month's row (also used inside chunk-completion transactions). */
export function usageUpdate(tableName: string, tenantId: string, usage: Usage, chunks: number, at: Date = new Date()) {
  return {
    TableName: tableName,
    Key: usageKey(tenantId, usageMonth(at)),
    UpdateExpression: 'SET tenantId = :t, #month = :m ADD inputTokens :i, outputTokens :o, modelCalls :c, chunks :n',
    ExpressionAttributeNames: { '#month': 'month' },
    ExpressionAttributeValues: {
      ':t': tenantId,
      ':m': usageMonth(at),
      ':i': usage.inputTokens,
      ':o': usage.outputTokens,
      ':c': usage.modelCalls,
      ':n': chunks,
    },
  };
}

/** Repository of tenants and API keys, with a short in-process cache of lookups. */
export class TenantsTable {
  private readonly cache = new Map<string, { tenant: Tenant | undefined; until: number }>();

  /**
   * @param cacheTtlMs - how long a key lookup is cached in process. @defaultValue 30000
   */
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    readonly tableName: string,
    private readonly cacheTtlMs = 30_000,
  ) {}

  /** Creates or updates a tenant and binds `apiKey` to it (stores the key's hash only). */
  async putTenant(tenant: Tenant, apiKey: string): Promise<void> {
    if (!TENANT_ID.test(tenant.tenantId)) throw new Error(`Invalid tenant id ${JSON.stringify(tenant.tenantId)}`);
    await this.doc.send(new PutCommand({ TableName: this.tableName, Item: { pk: `TENANT#${tenant.tenantId}`, ...tenant } }));
    await this.doc.send(
      new PutCommand({
        TableName: this.tableName,
        Item: { pk: `KEY#${hashApiKey(apiKey)}`, tenantId: tenant.tenantId, createdAt: new Date().toISOString() },
      }),
    );
    this.cache.clear();
  }

  /** The tenant an API key belongs to, or undefined. */
  async authenticate(apiKey: string): Promise<Tenant | undefined> {
    const hash = hashApiKey(apiKey);
    const now = Date.now();
    const hit = this.cache.get(hash);
    if (hit && hit.until > now) return hit.tenant;
    const key = await this.doc.send(new GetCommand({ TableName: this.tableName, Key: { pk: `KEY#${hash}` } }));
    let tenant: Tenant | undefined;
    const tenantId = key.Item?.tenantId;
    if (typeof tenantId === 'string') {
      const row = await this.doc.send(new GetCommand({ TableName: this.tableName, Key: { pk: `TENANT#${tenantId}` } }));
      if (row.Item) {
        const { pk: _pk, ...rest } = row.Item;
        tenant = rest as Tenant;
      }
    }
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(hash, { tenant, until: now + this.cacheTtlMs });
    return tenant;
  }

  /** Adds usage to the tenant's current month (for work not counted with a chunk: reduce, sync). */
  async addUsage(tenantId: string, usage: Usage, chunks = 0): Promise<void> {
    if (usage.modelCalls === 0 && usage.inputTokens === 0 && usage.outputTokens === 0 && chunks === 0) return;
    await this.doc.send(new UpdateCommand(usageUpdate(this.tableName, tenantId, usage, chunks)));
  }

  /** The tenant's usage in a month (zeros when nothing was used). */
  async getUsage(tenantId: string, month: string = usageMonth()): Promise<MonthlyUsage> {
    const out = await this.doc.send(new GetCommand({ TableName: this.tableName, Key: usageKey(tenantId, month), ConsistentRead: true }));
    const n = (k: string) => Number(out.Item?.[k] ?? 0);
    return { tenantId, month, inputTokens: n('inputTokens'), outputTokens: n('outputTokens'), modelCalls: n('modelCalls'), chunks: n('chunks') };
  }
}
