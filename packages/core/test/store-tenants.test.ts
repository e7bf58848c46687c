/**
 * Tenants, keys and plans (store/tenants.ts) and quota admission (store/usage-meter.ts) against
 * DynamoDB Local, with manual time for the authentication cache:
 * - keys are shown once and stored as a hash; several per tenant; read-only; expiry; revocation
 *   and suspension take effect within the cache bound, not later;
 * - a flood of random keys costs bounded reads and never evicts a valid key's cache entry;
 * - admission is atomic: parallel admissions never overshoot the page or concurrency quota.
 */
import { randomUUID } from 'node:crypto';
import { CreateTableCommand, DeleteTableCommand, ScanCommand, waitUntilTableExists, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TABLE_SCHEMAS } from '../src/aws/resources.js';
import { DocorchError } from '../src/errors.js';
import { generateApiKey, hashApiKey, keyIdOf, TenantStore } from '../src/store/tenants.js';
import { UsageMeter } from '../src/store/usage-meter.js';
import { localDynamoDbClient, startDynamoDbLocal, type DynamoDbLocal } from './helpers/dynamodb-local.js';

let db: DynamoDbLocal;
let admin: DynamoDBClient;
let doc: DynamoDBDocumentClient;
const tableName = `tenants-test-${randomUUID()}`;

beforeAll(async () => {
  db = await startDynamoDbLocal();
  admin = localDynamoDbClient(db.endpoint);
  const { timeToLiveAttribute: _ttl, ...schema } = TABLE_SCHEMAS.TENANTS_TABLE as typeof TABLE_SCHEMAS.TENANTS_TABLE & { timeToLiveAttribute?: string };
  await admin.send(new CreateTableCommand({ ...schema, TableName: tableName }));
  await waitUntilTableExists({ client: admin, maxWaitTime: 30 }, { TableName: tableName });
  doc = DynamoDBDocumentClient.from(admin);
});

afterAll(async () => {
  await admin?.send(new DeleteTableCommand({ TableName: tableName })).catch(() => undefined);
  admin?.destroy();
  await db?.stop();
});

/** The secret part of a key (base64url may itself contain "_"). */
const secretOf = (key: string) => key.slice('dk_live_'.length + 13);

/** A store on manual time, counting its key-row reads. */
function store(options: { negativeCacheSize?: number; positiveCacheSize?: number } = {}) {
  const clock = { now: 1_800_000_000_000 };
  const counts = { lookups: 0 };
  const s = new TenantStore(doc, tableName, { authCacheTtlMs: 5_000, now: () => clock.now, onLookup: () => counts.lookups++, ...options });
  return { s, clock, counts };
}

describe('TenantStore', () => {
  it('creates keys shown once, stored only as a hash, several per tenant, with scope and expiry', async () => {
    const { s, clock } = store();
    const tenantId = `t-${randomUUID().slice(0, 8)}`;
    await s.createTenant({ tenantId, name: 'Acme', plan: { pagesPerMonth: 100, weight: 2 } });
    await expect(s.createTenant({ tenantId, name: 'again' })).rejects.toMatchObject({ code: 'CONFLICT' });
    const a = await s.createKey(tenantId, { name: 'ci' });
    clock.now += 1_000; // listings are in creation order
    const b = await s.createKey(tenantId, { name: 'dashboard', readOnly: true, expiresInMs: 86_400_000 });
    expect(a.key).toMatch(/^dk_live_[a-z2-7]{12}_[A-Za-z0-9_-]{43}$/);
    expect(keyIdOf(a.key)).toBe(a.info.keyId);
    const keys = await s.listKeys(tenantId);
    expect(keys.map((k) => k.name)).toEqual(['ci', 'dashboard']);
    expect(keys[1]).toMatchObject({ readOnly: true, expiresAt: expect.any(String) });
    // Nothing in the table holds the secret; the key rows hold its hash.
    const dump = JSON.stringify((await admin.send(new ScanCommand({ TableName: tableName }))).Items);
    expect(dump).not.toContain(a.key);
    expect(dump).not.toContain(secretOf(b.key));
    expect(dump).toContain(hashApiKey(a.key));
    const ok = await s.authenticate(b.key);
    expect(ok).toMatchObject({ ok: true, principal: { tenant: { tenantId, plan: { pagesPerMonth: 100, weight: 2 } }, key: { readOnly: true } } });
  });

  it('stops a revoked key, a suspended tenant and an expired key within the cache bound', async () => {
    const { s, clock } = store();
    const other = store().s; // another API replica
    const tenantId = `t-${randomUUID().slice(0, 8)}`;
    await s.createTenant({ tenantId, name: 'Acme' });
    const { info, key } = await s.createKey(tenantId, { expiresInMs: 60_000 });
    expect((await s.authenticate(key)).ok).toBe(true);
    expect((await other.authenticate(key)).ok).toBe(true);
    await other.revokeKey(info.keyId);
    // The revoking replica forgets at once; the other within authCacheTtlMs.
    expect(await other.authenticate(key)).toEqual({ ok: false, reason: 'revoked' });
    expect((await s.authenticate(key)).ok).toBe(true);
    clock.now += 5_001;
    expect(await s.authenticate(key)).toEqual({ ok: false, reason: 'revoked' });

    const second = await s.createKey(tenantId, { expiresInMs: 60_000 });
    expect((await s.authenticate(second.key)).ok).toBe(true);
    await other.updateTenant(tenantId, { status: 'suspended' });
    clock.now += 5_001;
    expect(await s.authenticate(second.key)).toEqual({ ok: false, reason: 'suspended' });
    await other.updateTenant(tenantId, { status: 'active' });
    clock.now += 5_001;
    expect((await s.authenticate(second.key)).ok).toBe(true);
    clock.now += 60_000;
    expect(await s.authenticate(second.key)).toEqual({ ok: false, reason: 'expired' });
  });

  it('bounds the cost of random keys and never lets them evict a valid key', async () => {
    const { s, counts } = store({ negativeCacheSize: 100, positiveCacheSize: 100 });
    const tenantId = `t-${randomUUID().slice(0, 8)}`;
    await s.createTenant({ tenantId, name: 'Acme' });
    const { key } = await s.createKey(tenantId);
    expect((await s.authenticate(key)).ok).toBe(true);
    const before = counts.lookups;
    // Malformed keys cost nothing; a well-formed random key costs one read, once.
    for (let i = 0; i < 300; i++) expect((await s.authenticate(`dk_nope_${i}`)).ok).toBe(false);
    expect(counts.lookups).toBe(before);
    const random = Array.from({ length: 300 }, () => generateApiKey().key);
    for (const k of random) expect(await s.authenticate(k)).toEqual({ ok: false, reason: 'unknown' });
    expect(counts.lookups).toBe(before + 300);
    // The valid key is still cached: no read for it, whatever the flood did to the unknown-key cache.
    const mid = counts.lookups;
    expect((await s.authenticate(key)).ok).toBe(true);
    expect(counts.lookups).toBe(mid);
    // A forged secret with a real key id is refused (and does not poison the valid entry).
    const forged = `dk_live_${keyIdOf(key)}_${'A'.repeat(43)}`;
    expect(await s.authenticate(forged)).toEqual({ ok: false, reason: 'unknown' });
    expect((await s.authenticate(key)).ok).toBe(true);
  });
});

describe('UsageMeter admission', () => {
  it('admits exactly what fits the page quota when 20 admissions race', async () => {
    const s = store().s;
    const meter = new UsageMeter(doc, tableName);
    const tenantId = `t-${randomUUID().slice(0, 8)}`;
    await s.createTenant({ tenantId, name: 'Acme' });
    const limits = { pagesPerMonth: 100, tokensPerMonth: 1_000_000, concurrentDocuments: 1_000 };
    const outcomes = await Promise.allSettled(Array.from({ length: 20 }, () => meter.admit(tenantId, 10, limits)));
    const admitted = outcomes.filter((o) => o.status === 'fulfilled').length;
    expect(admitted).toBe(10);
    for (const o of outcomes) if (o.status === 'rejected') expect((o.reason as DocorchError).code).toBe('QUOTA_PAGES_EXCEEDED');
    const report = await meter.report(tenantId, limits);
    expect(report.quotas.pagesPerMonth).toEqual({ used: 0, reserved: 100, limit: 100 });
    expect(report.quotas.concurrentDocuments.used).toBe(10);
    // A rejected admission gave its slot back; the 429 says when the quota resets.
    const rejected = outcomes.find((o) => o.status === 'rejected') as PromiseRejectedResult;
    expect((rejected.reason as DocorchError).retryAfterMs).toBeGreaterThan(0);
  });

  it('admits exactly the concurrency limit and frees a slot when given back', async () => {
    const s = store().s;
    const meter = new UsageMeter(doc, tableName);
    const tenantId = `t-${randomUUID().slice(0, 8)}`;
    await s.createTenant({ tenantId, name: 'Acme' });
    const limits = { pagesPerMonth: 1_000_000, tokensPerMonth: 1_000_000, concurrentDocuments: 3 };
    const outcomes = await Promise.allSettled(Array.from({ length: 8 }, () => meter.admit(tenantId, 1, limits)));
    const granted = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
    expect(granted).toHaveLength(3);
    await expect(meter.admit(tenantId, 1, limits)).rejects.toMatchObject({ code: 'CONCURRENCY_LIMIT' });
    await meter.cancelAdmission(granted[0] as (typeof granted)[number]);
    await expect(meter.admit(tenantId, 1, limits)).resolves.toMatchObject({ pages: 1 });
    // Pages given back with the cancelled admission.
    expect((await meter.report(tenantId, limits)).quotas.pagesPerMonth.reserved).toBe(3);
  });
});
