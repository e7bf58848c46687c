/**
 * Tenants, their plans and their API keys: one module for the API (authentication, limits), the
 * admin command line and the fleet (share weights). Rows in the tenants table (key `pk`):
 *
 *   TENANT#<tenantId>  name, status (active | suspended), plan, inFlight (documents not finished)
 *   KEYID#<keyId>      tenantId, name, sha256 of the whole key, readOnly, expiresAt, createdAt,
 *                      lastUsedAt, revokedAt
 *
 * A key is `dk_live_<keyId>_<secret>`: the key id (12 base32 characters, public, names the key in
 * listings and logs) and a 256-bit secret (43 base64url characters). Only a SHA-256 of the whole key
 * is stored; a 256-bit random secret needs no slow hash (there is no dictionary to guard against).
 *
 * Authentication caches in process, bounded:
 * - a valid key for `authCacheTtlMs` (5 s): a revoked, expired or suspended key stops working on
 *   every replica within that bound;
 * - an unknown key id in a separate LRU of `negativeCacheSize` entries, so a flood of random keys
 *   can neither grow memory nor evict the valid keys' entries (and a malformed key costs no read).
 */
import { newWebhookSecret } from '../webhooks/signature.js';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { GetCommand, PutCommand, ScanCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { isConditionFailure } from '../aws/conditions.js';
import type { Config } from '../config.js';
import { DocorchError } from '../errors.js';

/** A tenant's limits; a field left unset falls back to the config default (see {@link resolvePlan}). */
export interface Plan {
  /** Largest upload in bytes (413 above) [MAX_UPLOAD_BYTES]. */
  maxFileBytes?: number;
  /** Most pages in one document (422 above) [MAX_PAGES]. */
  maxPages?: number;
  /** Uploads and deletes per minute (429 above) [RATE_LIMIT_PER_MINUTE]. */
  uploadsPerMinute?: number;
  /** Reads per minute (429 above) [READ_RATE_LIMIT_PER_MINUTE]. */
  readsPerMinute?: number;
  /** Documents admitted and not yet finished (429 above) [CONCURRENT_DOCUMENTS]. */
  concurrentDocuments?: number;
  /** Pages admitted per calendar month, UTC (429 above) [PAGES_PER_MONTH]. */
  pagesPerMonth?: number;
  /** Model tokens (input + output) per calendar month (429 above) [TOKENS_PER_MONTH]. */
  tokensPerMonth?: number;
  /** Share of the fleet and of the model quota relative to other tenants [TENANT_WEIGHT]. */
  weight?: number;
}

/** Every plan field, for flags and listings. */
export const PLAN_FIELDS = [
  'maxFileBytes',
  'maxPages',
  'uploadsPerMinute',
  'readsPerMinute',
  'concurrentDocuments',
  'pagesPerMonth',
  'tokensPerMonth',
  'weight',
] as const satisfies ReadonlyArray<keyof Plan>;

export type TenantStatus = 'active' | 'suspended';

/** A tenant row. */
export interface Tenant {
  tenantId: string;
  name: string;
  status: TenantStatus;
  plan: Plan;
  /** The tenant's webhook: every document's terminal event is sent here (besides an upload's own `webhookUrl`). */
  webhookUrl?: string;
  createdAt: string;
  updatedAt: string;
}

/** An API key's metadata (never its secret). */
export interface ApiKeyInfo {
  keyId: string;
  tenantId: string;
  name: string;
  /** GET and HEAD only (403 on writes). */
  readOnly: boolean;
  createdAt: string;
  expiresAt?: string;
  lastUsedAt?: string;
  revokedAt?: string;
}

/** What a valid key authenticates. */
export interface Principal {
  tenant: Tenant;
  key: ApiKeyInfo;
}

export const TENANT_ID_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const KEY_PATTERN = /^dk_live_([a-z2-7]{12})_([A-Za-z0-9_-]{43})$/;
const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

/** Hex SHA-256 of an API key: the only form in which keys are stored. */
export function hashApiKey(apiKey: string): string {
  return createHash('sha256').update(apiKey, 'utf8').digest('hex');
}

/** A new key: its id and the whole secret string (shown once). */
export function generateApiKey(): { keyId: string; key: string } {
  const id = [...randomBytes(12)].map((b) => BASE32[b % 32]).join('');
  return { keyId: id, key: `dk_live_${id}_${randomBytes(32).toString('base64url')}` };
}

/** The key id of a well-formed key, else undefined (no lookup is spent on a malformed one). */
export function keyIdOf(apiKey: string): string | undefined {
  return KEY_PATTERN.exec(apiKey)?.[1];
}

/** The plan in force: the tenant's fields, else the config defaults. */
export function resolvePlan(plan: Plan, config: Pick<Config, 'MAX_UPLOAD_BYTES' | 'MAX_PAGES' | 'RATE_LIMIT_PER_MINUTE' | 'READ_RATE_LIMIT_PER_MINUTE' | 'CONCURRENT_DOCUMENTS' | 'PAGES_PER_MONTH' | 'TOKENS_PER_MONTH' | 'TENANT_WEIGHT'>): Required<Plan> {
  return {
    maxFileBytes: plan.maxFileBytes ?? config.MAX_UPLOAD_BYTES,
    maxPages: plan.maxPages ?? config.MAX_PAGES,
    uploadsPerMinute: plan.uploadsPerMinute ?? config.RATE_LIMIT_PER_MINUTE,
    readsPerMinute: plan.readsPerMinute ?? config.READ_RATE_LIMIT_PER_MINUTE,
    concurrentDocuments: plan.concurrentDocuments ?? config.CONCURRENT_DOCUMENTS,
    pagesPerMonth: plan.pagesPerMonth ?? config.PAGES_PER_MONTH,
    tokensPerMonth: plan.tokensPerMonth ?? config.TOKENS_PER_MONTH,
    weight: plan.weight ?? config.TENANT_WEIGHT,
  };
}

/** Parses a duration like `30d`, `12h`, `90m` into ms. */
export function parseDuration(text: string): number {
  const m = /^(\d+)\s*([smhd])$/.exec(text.trim());
  if (!m) throw new DocorchError('INVALID_REQUEST', `Invalid duration ${JSON.stringify(text)}: use e.g. 30d, 12h, 90m`);
  return Number(m[1]) * { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 's' | 'm' | 'h' | 'd'];
}

/** Options of {@link TenantStore}. */
export interface TenantStoreOptions {
  /** How long a valid key's lookup is reused in process [AUTH_CACHE_TTL_MS]. @defaultValue 5000 */
  authCacheTtlMs?: number;
  /** Entries of the unknown-key cache (LRU) [AUTH_NEGATIVE_CACHE_SIZE]. @defaultValue 10000 */
  negativeCacheSize?: number;
  /** Entries of the valid-key cache. @defaultValue 10000 */
  positiveCacheSize?: number;
  /** How often a key's lastUsedAt is written at most. @defaultValue 60000 */
  lastUsedIntervalMs?: number;
  /** Clock. @defaultValue Date.now */
  now?: () => number;
  /** Told of every key-row read (metrics: what authentication costs in DynamoDB reads). @defaultValue none */
  onLookup?: () => void;
}

/** Why a key did not authenticate. */
export type AuthFailure = 'malformed' | 'unknown' | 'revoked' | 'expired' | 'suspended';

const tenantPk = (tenantId: string) => `TENANT#${tenantId}`;
const keyPk = (keyId: string) => `KEYID#${keyId}`;

function toTenant(item: Record<string, unknown>): Tenant {
  return {
    tenantId: item.tenantId as string,
    name: item.name as string,
    status: (item.status as TenantStatus | undefined) ?? 'active',
    plan: (item.plan as Plan | undefined) ?? {},
    ...(typeof item.webhookUrl === 'string' ? { webhookUrl: item.webhookUrl } : {}),
    createdAt: (item.createdAt as string | undefined) ?? '',
    updatedAt: (item.updatedAt as string | undefined) ?? '',
  };
}

function toKey(item: Record<string, unknown>): ApiKeyInfo {
  const info: ApiKeyInfo = {
    keyId: item.keyId as string,
    tenantId: item.tenantId as string,
    name: item.name as string,
    readOnly: item.readOnly === true,
    createdAt: item.createdAt as string,
  };
  for (const k of ['expiresAt', 'lastUsedAt', 'revokedAt'] as const) if (typeof item[k] === 'string') info[k] = item[k] as string;
  return info;
}

/** Repository of tenants and keys, with the bounded authentication caches. */
export class TenantStore {
  private readonly ttlMs: number;
  private readonly negativeSize: number;
  private readonly positiveSize: number;
  private readonly lastUsedIntervalMs: number;
  private readonly now: () => number;
  /** keyId -> principal and the hash it was checked against. Insertion order = LRU order. */
  private readonly valid = new Map<string, { principal: Principal; hash: string; until: number }>();
  /** keyIds that do not exist (bounded LRU, apart from the valid ones). */
  private readonly unknown = new Map<string, number>();
  private readonly lastUsedWrites = new Map<string, number>();
  /** Lookups in flight by key id: concurrent requests with one key share one read. */
  private readonly loading = new Map<string, Promise<{ principal: Principal; hash: string; until: number } | undefined>>();

  constructor(
    private readonly doc: DynamoDBDocumentClient,
    readonly tableName: string,
    private readonly options: TenantStoreOptions = {},
  ) {
    this.ttlMs = options.authCacheTtlMs ?? 5_000;
    this.negativeSize = options.negativeCacheSize ?? 10_000;
    this.positiveSize = options.positiveCacheSize ?? 10_000;
    this.lastUsedIntervalMs = options.lastUsedIntervalMs ?? 60_000;
    this.now = options.now ?? Date.now;
  }

  // ---- tenants ----------------------------------------------------------------------------------

  /** Creates a tenant; CONFLICT if the id exists. */
  async createTenant(input: { tenantId: string; name: string; plan?: Plan }): Promise<Tenant> {
    if (!TENANT_ID_PATTERN.test(input.tenantId)) {
      throw new DocorchError('INVALID_REQUEST', `Invalid tenant id ${JSON.stringify(input.tenantId)}: lower-case letters, digits, - and _, up to 63`);
    }
    const at = new Date(this.now()).toISOString();
    const tenant: Tenant = { tenantId: input.tenantId, name: input.name, status: 'active', plan: cleanPlan(input.plan ?? {}), createdAt: at, updatedAt: at };
    try {
      await this.doc.send(
        new PutCommand({ TableName: this.tableName, Item: { pk: tenantPk(tenant.tenantId), ...tenant, inFlight: 0 }, ConditionExpression: 'attribute_not_exists(pk)' }),
      );
    } catch (err) {
      if (isConditionFailure(err)) throw new DocorchError('CONFLICT', `Tenant ${input.tenantId} already exists`);
      throw err;
    }
    return tenant;
  }

  /** Creates the tenant, or updates its name and plan when it exists (the local stack's dev tenant). */
  async upsertTenant(input: { tenantId: string; name: string; plan?: Plan }): Promise<Tenant> {
    try {
      return await this.createTenant(input);
    } catch (err) {
      if (!(err instanceof DocorchError && err.code === 'CONFLICT')) throw err;
      return this.updateTenant(input.tenantId, { name: input.name, plan: input.plan ?? {} });
    }
  }

  /** Changes the name, merges plan fields (a field set to null is removed: back to the default), or the status. */
  async updateTenant(tenantId: string, patch: { name?: string; plan?: { [K in keyof Plan]?: number | null }; status?: TenantStatus }): Promise<Tenant> {
    const current = await this.getTenant(tenantId);
    if (!current) throw new DocorchError('NOT_FOUND', `Tenant ${tenantId} not found`);
    const plan: Plan = { ...current.plan };
    for (const [k, v] of Object.entries(patch.plan ?? {})) {
      if (v === null || v === undefined) delete plan[k as keyof Plan];
      else plan[k as keyof Plan] = v;
    }
    const out = await this.doc.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: { pk: tenantPk(tenantId) },
        UpdateExpression: 'SET #name = :name, #plan = :plan, #status = :status, updatedAt = :at',
        ConditionExpression: 'attribute_exists(pk)',
        ExpressionAttributeNames: { '#name': 'name', '#status': 'status', '#plan': 'plan' },
        ExpressionAttributeValues: {
          ':name': patch.name ?? current.name,
          ':plan': cleanPlan(plan),
          ':status': patch.status ?? current.status,
          ':at': new Date(this.now()).toISOString(),
        },
        ReturnValues: 'ALL_NEW',
      }),
    );
    this.valid.clear(); // plans and statuses of cached principals changed
    return toTenant(out.Attributes ?? {});
  }

  async getTenant(tenantId: string): Promise<Tenant | undefined> {
    const out = await this.doc.send(new GetCommand({ TableName: this.tableName, Key: { pk: tenantPk(tenantId) }, ConsistentRead: true }));
    return out.Item ? toTenant(out.Item) : undefined;
  }

  /** Every tenant (an admin listing: a scan of the small tenants table). */
  async listTenants(): Promise<Tenant[]> {
    const items = await this.scan('begins_with(pk, :p)', { ':p': 'TENANT#' });
    return items.map(toTenant).sort((a, b) => a.tenantId.localeCompare(b.tenantId));
  }

  // ---- webhooks ---------------------------------------------------------------------------------

  /** Sets (or with null removes) the tenant's webhook URL. The caller vets the URL first. */
  async setWebhookUrl(tenantId: string, url: string | null): Promise<Tenant> {
    const out = await this.doc.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: { pk: tenantPk(tenantId) },
        UpdateExpression: url === null ? 'REMOVE webhookUrl SET updatedAt = :at' : 'SET webhookUrl = :url, updatedAt = :at',
        ConditionExpression: 'attribute_exists(pk)',
        ExpressionAttributeValues: { ':at': new Date(this.now()).toISOString(), ...(url === null ? {} : { ':url': url }) },
        ReturnValues: 'ALL_NEW',
      }),
    ).catch((err: unknown) => {
      if (isConditionFailure(err)) throw new DocorchError('NOT_FOUND', `Tenant ${tenantId} not found`);
      throw err;
    });
    return toTenant(out.Attributes ?? {});
  }

  /**
   * The tenant's webhook signing secret, made on first use (never logged; shown by the admin
   * command line). `rotate` replaces it: deliveries signed from then on use the new one.
   */
  async webhookSecret(tenantId: string, options: { rotate?: boolean } = {}): Promise<string> {
    // Every delivery attempt asks: read first, so the tenant row is written once, not per attempt.
    if (!options.rotate) {
      const current = await this.doc.send(new GetCommand({ TableName: this.tableName, Key: { pk: tenantPk(tenantId) }, ConsistentRead: true }));
      if (typeof current.Item?.webhookSecret === 'string') return current.Item.webhookSecret;
    }
    const out = await this.doc.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: { pk: tenantPk(tenantId) },
        UpdateExpression: options.rotate ? 'SET webhookSecret = :new' : 'SET webhookSecret = if_not_exists(webhookSecret, :new)',
        ConditionExpression: 'attribute_exists(pk)',
        ExpressionAttributeValues: { ':new': newWebhookSecret() },
        ReturnValues: 'ALL_NEW',
      }),
    ).catch((err: unknown) => {
      if (isConditionFailure(err)) throw new DocorchError('NOT_FOUND', `Tenant ${tenantId} not found`);
      throw err;
    });
    return String(out.Attributes?.webhookSecret);
  }

  // ---- keys -------------------------------------------------------------------------------------

  /** Creates a key for an existing tenant; returns its metadata and the secret (shown once, stored as a hash). */
  async createKey(tenantId: string, options: { name?: string; expiresInMs?: number; readOnly?: boolean } = {}): Promise<{ info: ApiKeyInfo; key: string }> {
    if (!(await this.getTenant(tenantId))) throw new DocorchError('NOT_FOUND', `Tenant ${tenantId} not found`);
    const { keyId, key } = generateApiKey();
    const at = this.now();
    const info: ApiKeyInfo = {
      keyId,
      tenantId,
      name: options.name ?? 'default',
      readOnly: options.readOnly ?? false,
      createdAt: new Date(at).toISOString(),
      ...(options.expiresInMs !== undefined ? { expiresAt: new Date(at + options.expiresInMs).toISOString() } : {}),
    };
    await this.doc.send(
      new PutCommand({ TableName: this.tableName, Item: { pk: keyPk(keyId), ...info, hash: hashApiKey(key) }, ConditionExpression: 'attribute_not_exists(pk)' }),
    );
    return { info, key };
  }

  /**
   * Binds a given key string (well-formed) to a tenant: the local stack keeps the dev key across
   * restarts this way. Replaces a previous binding of the same key id.
   */
  async importKey(tenantId: string, key: string, name = 'default'): Promise<ApiKeyInfo> {
    const keyId = keyIdOf(key);
    if (!keyId) throw new DocorchError('INVALID_REQUEST', 'Not a docorch API key (dk_live_<keyid>_<secret>)');
    const info: ApiKeyInfo = { keyId, tenantId, name, readOnly: false, createdAt: new Date(this.now()).toISOString() };
    await this.doc.send(new PutCommand({ TableName: this.tableName, Item: { pk: keyPk(keyId), ...info, hash: hashApiKey(key) } }));
    this.valid.delete(keyId);
    this.unknown.delete(keyId);
    return info;
  }

  async listKeys(tenantId: string): Promise<ApiKeyInfo[]> {
    const items = await this.scan('begins_with(pk, :p) AND tenantId = :t', { ':p': 'KEYID#', ':t': tenantId });
    return items.map(toKey).sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  /** Revokes a key (kept for the record); NOT_FOUND when there is no such key. */
  async revokeKey(keyId: string): Promise<ApiKeyInfo> {
    try {
      const out = await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: keyPk(keyId) },
          UpdateExpression: 'SET revokedAt = if_not_exists(revokedAt, :at)',
          ConditionExpression: 'attribute_exists(pk)',
          ExpressionAttributeValues: { ':at': new Date(this.now()).toISOString() },
          ReturnValues: 'ALL_NEW',
        }),
      );
      this.valid.delete(keyId);
      return toKey(out.Attributes ?? {});
    } catch (err) {
      if (isConditionFailure(err)) throw new DocorchError('NOT_FOUND', `Key ${keyId} not found`);
      throw err;
    }
  }

  // ---- authentication ---------------------------------------------------------------------------

  /**
   * True when this replica has seen the key's id authenticate (its cache entry, fresh or not): the
   * API exempts such requests from the per-address limit on failed keys, so a client sharing an
   * address with a flood of random keys keeps working. A forged secret with a known id is refused
   * by the cached hash without a read.
   */
  knows(apiKey: string): boolean {
    const keyId = keyIdOf(apiKey);
    return keyId !== undefined && this.valid.has(keyId);
  }

  /**
   * The principal of an API key, or why it failed. At most one strongly consistent read of the key
   * row and one of the tenant row per key id and {@link TenantStoreOptions.authCacheTtlMs}.
   */
  async authenticate(apiKey: string): Promise<{ ok: true; principal: Principal } | { ok: false; reason: AuthFailure }> {
    const keyId = keyIdOf(apiKey);
    if (!keyId) return { ok: false, reason: 'malformed' };
    const now = this.now();
    const hash = hashApiKey(apiKey);
    let entry = this.valid.get(keyId);
    if (!entry || entry.until <= now) {
      if (!entry && this.unknown.has(keyId)) {
        // Refresh its LRU position; unknown ids stay unknown until the cache forgets them.
        this.unknown.delete(keyId);
        this.unknown.set(keyId, now);
        return { ok: false, reason: 'unknown' };
      }
      let load = this.loading.get(keyId);
      if (!load) {
        load = this.load(keyId, now).finally(() => this.loading.delete(keyId));
        this.loading.set(keyId, load);
      }
      entry = await load;
      if (!entry) return { ok: false, reason: 'unknown' };
    }
    const { principal } = entry;
    if (!safeEqual(entry.hash, hash)) return { ok: false, reason: 'unknown' };
    if (principal.key.revokedAt) return { ok: false, reason: 'revoked' };
    if (principal.key.expiresAt && Date.parse(principal.key.expiresAt) <= now) return { ok: false, reason: 'expired' };
    if (principal.tenant.status !== 'active') return { ok: false, reason: 'suspended' };
    this.touch(principal.key, now);
    return { ok: true, principal };
  }

  /** Reads a key row and its tenant into the caches; undefined for an unknown key id. */
  private async load(keyId: string, now: number): Promise<{ principal: Principal; hash: string; until: number } | undefined> {
    this.options.onLookup?.();
    const row = await this.doc.send(new GetCommand({ TableName: this.tableName, Key: { pk: keyPk(keyId) }, ConsistentRead: true }));
    if (!row.Item) {
      this.remember(this.unknown, keyId, now, this.negativeSize);
      this.valid.delete(keyId);
      return undefined;
    }
    const key = toKey(row.Item);
    const tenant = await this.getTenant(key.tenantId);
    if (!tenant) return undefined;
    const entry = { principal: { tenant, key }, hash: String(row.Item.hash ?? ''), until: now + this.ttlMs };
    this.remember(this.valid, keyId, entry, this.positiveSize);
    return entry;
  }

  /** Writes lastUsedAt at most once per interval per key and process (best effort, off the request path). */
  private touch(key: ApiKeyInfo, now: number): void {
    const last = this.lastUsedWrites.get(key.keyId) ?? 0;
    if (now - last < this.lastUsedIntervalMs) return;
    this.remember(this.lastUsedWrites, key.keyId, now, this.positiveSize);
    this.doc
      .send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: keyPk(key.keyId) },
          UpdateExpression: 'SET lastUsedAt = :at',
          ConditionExpression: 'attribute_exists(pk)',
          ExpressionAttributeValues: { ':at': new Date(now).toISOString() },
        }),
      )
      .catch(() => undefined);
  }

  private remember<V>(map: Map<string, V>, key: string, value: V, max: number): void {
    map.delete(key);
    map.set(key, value);
    while (map.size > max) map.delete(map.keys().next().value as string);
  }

  private async scan(filter: string, values: Record<string, unknown>): Promise<Array<Record<string, unknown>>> {
    const items: Array<Record<string, unknown>> = [];
    let start: Record<string, unknown> | undefined;
    do {
      const out = await this.doc.send(
        new ScanCommand({ TableName: this.tableName, FilterExpression: filter, ExpressionAttributeValues: values, ConsistentRead: true, ExclusiveStartKey: start }),
      );
      items.push(...(out.Items ?? []));
      start = out.LastEvaluatedKey;
    } while (start);
    return items;
  }
}

function cleanPlan(plan: Plan): Plan {
  const out: Plan = {};
  for (const k of PLAN_FIELDS) {
    const v = plan[k];
    if (v === undefined) continue;
    if (!Number.isFinite(v) || v < 0 || (k !== 'weight' && !Number.isInteger(v)) || (k === 'weight' && v <= 0)) {
      throw new DocorchError('INVALID_REQUEST', `Invalid plan value ${k}=${v}`);
    }
    out[k] = v;
  }
  return out;
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}
