/**
 * Many tenants on one deployment, through two API processes sharing the tables (as replicas
 * behind a load balancer), on isolated resources:
 * - the admin command line: tenant with a plan, two keys, one used then revoked (401 on both
 *   replicas within the cache bound), key listings without secrets, usage;
 * - isolation: every endpoint and method with the other tenant's ids answers 404, bad keys 401,
 *   read-only keys 403 on writes; 10,000 random ids find nothing;
 * - rate limits shared by both replicas (no more than the plan per window), a second tenant
 *   unaffected; 1,000 random keys cost a bounded number of key reads and end in 429;
 * - quotas: pages per month (429 and nothing stored; 20 parallel uploads admit exactly what
 *   fits), concurrent documents (429 until one finishes);
 * - Idempotency-Key: 20 parallel POSTs make one document and one charge; another file is 422;
 * - no table holds a plaintext API key.
 * No workers run: admitted async documents stay queued, which is what the quotas count.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAwsClients, generateApiKey, loadConfig, type AwsClients, type Config } from '@docorch/core';
import { createIsolatedResources, generatePdf, startService, type IsolatedResources, type ServiceProcess } from '@docorch/testkit';
import { runAdmin } from '../packages/cli/src/admin.js';
import { problemBody, seedTenant, upload } from '../services/api/test/helpers.js';

const AUTH_TTL_MS = 1_000;

describe('tenancy across two API replicas', () => {
  let resources: IsolatedResources;
  let apis: ServiceProcess[];
  let config: Config;
  let aws: AwsClients;
  let stackDir: string;
  let env: Record<string, string>;
  const keysSeen: string[] = [];

  /** The admin command line, in process, against these resources (a stack file like `npm start`'s). */
  async function admin(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
    let out = '';
    let err = '';
    const code = await runAdmin([...argv, '--stack', path.join(stackDir, 'stack.json')], { out: (t) => (out += t), err: (t) => (err += t) }, stackDir);
    return { code, out, err };
  }
  const get = (api: ServiceProcess, url: string, key?: string, method = 'GET') =>
    fetch(`${api.baseUrl}${url}`, { method, headers: key ? { authorization: `Bearer ${key}` } : {} });
  const tenant = async (plan: Record<string, number> = {}) => {
    const t = await seedTenant('ten', plan, { ...process.env, ...env });
    keysSeen.push(t.apiKey);
    return t;
  };

  beforeAll(async () => {
    resources = await createIsolatedResources({ prefix: 'tenancy', shardCount: 1 });
    // Every client here is 127.0.0.1: room for the bad-key probes of the isolation matrix too.
    env = { ...resources.names, LOG_LEVEL: 'warn', AUTH_CACHE_TTL_MS: String(AUTH_TTL_MS), AUTH_FAILURES_PER_MINUTE: '40' };
    config = loadConfig({ ...process.env, ...env });
    aws = createAwsClients(config);
    stackDir = await mkdtemp(path.join(tmpdir(), 'docorch-tenancy-'));
    const emulatorEnv = Object.fromEntries(
      ['S3_ENDPOINT', 'DYNAMODB_ENDPOINT', 'KINESIS_ENDPOINT', 'AWS_REGION', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'].map((k) => [k, process.env[k] ?? '']),
    );
    await writeFile(path.join(stackDir, 'stack.json'), JSON.stringify({ env: { ...emulatorEnv, ...resources.names } }));
    apis = await Promise.all([startService({ service: 'api', env }), startService({ service: 'api', env })]);
  });
  afterAll(async () => {
    await Promise.all((apis ?? []).map((a) => a.stop()));
    aws?.destroy();
    await resources?.cleanup();
    if (stackDir) await rm(stackDir, { recursive: true, force: true });
  });

  it('administers tenants and keys with the command line; a revoked key stops on both replicas within the bound', { timeout: 120_000 }, async () => {
    const id = `acme-${Date.now().toString(36)}`;
    const created = await admin('tenants', 'create', id, '--name', 'Acme Corp', '--pages-per-month', '5000', '--uploads-per-minute', '30', '--weight', '2', '--json');
    expect(created.code, created.err).toBe(0);
    expect(JSON.parse(created.out)).toMatchObject({ tenantId: id, status: 'active', plan: { pagesPerMonth: 5000, uploadsPerMinute: 30, weight: 2 } });
    const k1 = JSON.parse((await admin('keys', 'create', id, '--name', 'ci', '--json')).out) as { key: string; keyId: string };
    const k2 = JSON.parse((await admin('keys', 'create', id, '--name', 'dash', '--read-only', '--expires-in', '30d', '--json')).out) as { key: string; keyId: string };
    keysSeen.push(k1.key, k2.key);
    expect((await get(apis[0] as ServiceProcess, '/v1/documents', k1.key)).status).toBe(200);
    expect((await get(apis[1] as ServiceProcess, '/v1/documents', k1.key)).status).toBe(200);

    const revoked = await admin('keys', 'revoke', k1.keyId);
    expect(revoked.code, revoked.err).toBe(0);
    const t0 = Date.now();
    const stoppedAfter = await Promise.all(
      (apis as ServiceProcess[]).map(async (api) => {
        for (;;) {
          const res = await get(api, '/v1/documents', k1.key);
          if (res.status === 401) return { ms: Date.now() - t0, detail: (await problemBody(res)).detail };
          expect(res.status).toBe(200);
          await new Promise((r) => setTimeout(r, 50));
        }
      }),
    );
    for (const s of stoppedAfter) {
      expect(s.detail).toBe('The API key has been revoked');
      expect(s.ms).toBeLessThan(AUTH_TTL_MS + 2_000);
    }
    // The other key still works; it is read-only.
    expect((await get(apis[1] as ServiceProcess, '/v1/documents', k2.key)).status).toBe(200);
    expect((await get(apis[1] as ServiceProcess, '/v1/documents/x1234567', k2.key, 'DELETE')).status).toBe(403);

    const listed = await admin('keys', 'list', id, '--json');
    const keys = JSON.parse(listed.out) as Array<Record<string, unknown>>;
    expect(keys.map((k) => k.name)).toEqual(['ci', 'dash']);
    expect(keys[0]).toMatchObject({ revokedAt: expect.any(String), lastUsedAt: expect.any(String) });
    expect(listed.out).not.toContain(k1.key.slice('dk_live_'.length + 13));
    expect(listed.out).not.toContain(k2.key.slice('dk_live_'.length + 13));
    const text = await admin('keys', 'list', id);
    expect(text.out).toMatch(/ci\s+read-write/);
    const usage = JSON.parse((await admin('usage', 'show', id, '--json')).out) as { quotas: { pagesPerMonth: { limit: number } } };
    expect(usage.quotas.pagesPerMonth.limit).toBe(5000);
    expect((await admin('tenants', 'show', id)).out).toMatch(/uploadsPerMinute\s+30\s+tenant/);
    expect((await admin('tenants', 'list', '--json')).code).toBe(0);
    expect((await admin('keys', 'frobnicate')).code).toBe(3);
    expect((await admin('tenants', 'show', 'no-such-tenant')).code).toBe(1);
    expect((await admin('tenants', 'create', '--help')).out).toContain('--pages-per-month');
  });

  it('isolates tenants on every endpoint and method; 10,000 random ids find nothing', { timeout: 240_000 }, async () => {
    const a = await tenant({ readsPerMinute: 100_000 });
    const b = await tenant({ readsPerMinute: 100_000 });
    const [api] = apis as [ServiceProcess];
    const pdf = await generatePdf({ pages: 2, seed: 2 });
    const ids: Record<string, string> = {};
    for (const t of [a, b]) {
      const res = await upload(api.baseUrl, t.apiKey, pdf.bytes, { mode: 'async' });
      expect(res.status).toBe(202);
      ids[t.tenantId] = ((await res.json()) as { id: string }).id;
    }
    const routes = (id: string): Array<[string, string]> => [
      ['GET', `/v1/documents/${id}`],
      ['GET', `/v1/documents/${id}?wait=1`],
      ['GET', `/v1/documents/${id}/result`],
      ['HEAD', `/v1/documents/${id}`],
      ['DELETE', `/v1/documents/${id}`],
    ];
    for (const [owner, other] of [
      [a, b],
      [b, a],
    ] as const) {
      for (const [method, url] of routes(ids[owner.tenantId] as string)) {
        const res = await get(api, url, other.apiKey, method);
        expect(res.status, `${method} ${url} with the other tenant's key`).toBe(404);
        expect((await get(apis[1] as ServiceProcess, url, generateApiKey().key, method)).status).toBe(401);
        expect((await get(apis[1] as ServiceProcess, url, undefined, method)).status).toBe(401);
      }
      const list = (await (await get(api, '/v1/documents?limit=100', other.apiKey)).json()) as { documents: Array<{ id: string }> };
      expect(list.documents.map((d) => d.id)).not.toContain(ids[owner.tenantId]);
    }
    // Both documents are still there for their owners.
    for (const t of [a, b]) expect((await get(api, `/v1/documents/${ids[t.tenantId]}`, t.apiKey)).status).toBe(200);

    // 10,000 random ids (same shape as real ones) probed by tenant a: every one a 404.
    let found = 0;
    let probed = 0;
    const alphabet = '0123456789abcdefghijklmnopqrstuvwxyz';
    const randomId = () => Array.from({ length: 33 }, () => alphabet[Math.floor(Math.random() * 36)]).join('');
    await Promise.all(
      Array.from({ length: 32 }, async (_, lane) => {
        for (let i = lane; i < 10_000; i += 32) {
          const res = await get(apis[i % 2] as ServiceProcess, `/v1/documents/${randomId()}`, a.apiKey);
          await res.arrayBuffer();
          if (res.status !== 404) found++;
          probed++;
        }
      }),
    );
    expect(probed).toBe(10_000);
    expect(found).toBe(0);
  });

  it('enforces the monthly page quota atomically and stores nothing for a refused upload', { timeout: 120_000 }, async () => {
    const t = await tenant({ pagesPerMonth: 30, concurrentDocuments: 1_000 });
    const [api] = apis as [ServiceProcess];
    const pdf = await generatePdf({ pages: 3, seed: 3 });
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => upload((apis[i % 2] as ServiceProcess).baseUrl, t.apiKey, pdf.bytes, { mode: 'async' })));
    const admitted = answers.filter((r) => r.status === 202);
    const refused = answers.filter((r) => r.status === 429);
    expect(admitted).toHaveLength(10);
    expect(refused).toHaveLength(10);
    for (const r of refused) {
      const body = await problemBody(r);
      expect(body.code).toBe('QUOTA_PAGES_EXCEEDED');
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
    }
    // Over quota now: 429 and nothing stored (10 sources and 10 job rows, from the admitted ones).
    const over = await upload(api.baseUrl, t.apiKey, pdf.bytes, { mode: 'sync' });
    expect(over.status).toBe(429);
    expect((await problemBody(over)).code).toBe('QUOTA_PAGES_EXCEEDED');
    const objects = await aws.s3.send(new ListObjectsV2Command({ Bucket: config.UPLOADS_BUCKET, Prefix: `tenants/${t.tenantId}/` }));
    expect(objects.KeyCount).toBe(10);
    const list = (await (await get(api, '/v1/documents?limit=100', t.apiKey)).json()) as { documents: unknown[] };
    expect(list.documents).toHaveLength(10);
    const usage = (await (await get(api, '/v1/usage', t.apiKey)).json()) as { quotas: { pagesPerMonth: { used: number; reserved: number; limit: number } } };
    expect(usage.quotas.pagesPerMonth).toEqual({ used: 0, reserved: 30, limit: 30 });
    // Cancelling one releases its pages: one more fits.
    const first = ((await admitted[0]?.json()) as { id: string }).id;
    expect((await get(api, `/v1/documents/${first}`, t.apiKey, 'DELETE')).status).toBe(200);
    expect((await upload(api.baseUrl, t.apiKey, pdf.bytes, { mode: 'async' })).status).toBe(202);
  });

  it('answers 429 at the concurrent-documents limit until one finishes', { timeout: 60_000 }, async () => {
    const t = await tenant({ concurrentDocuments: 2 });
    const [api] = apis as [ServiceProcess];
    const pdf = await generatePdf({ pages: 1, seed: 4 });
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const res = await upload(api.baseUrl, t.apiKey, pdf.bytes, { mode: 'async' });
      expect(res.status).toBe(202);
      ids.push(((await res.json()) as { id: string }).id);
    }
    const refused = await upload(api.baseUrl, t.apiKey, pdf.bytes, { mode: 'async' });
    expect(refused.status).toBe(429);
    expect((await problemBody(refused)).code).toBe('CONCURRENCY_LIMIT');
    expect(refused.headers.get('retry-after')).not.toBeNull();
    expect((await get(api, `/v1/documents/${ids[0]}`, t.apiKey, 'DELETE')).status).toBe(200);
    expect((await upload(api.baseUrl, t.apiKey, pdf.bytes, { mode: 'async' })).status).toBe(202);
  });

  it('makes one document and one charge of 20 parallel POSTs with one Idempotency-Key; another file is 422', { timeout: 120_000 }, async () => {
    const t = await tenant({ uploadsPerMinute: 1_000 });
    const pdf = await generatePdf({ pages: 4, seed: 5 });
    const post = (bytes: Uint8Array, key: string, api: ServiceProcess, mode = 'async') => {
      const form = new FormData();
      form.set('mode', mode);
      form.set('file', new Blob([bytes], { type: 'application/pdf' }), 'same.pdf');
      return fetch(`${api.baseUrl}/v1/documents`, { method: 'POST', body: form, headers: { authorization: `Bearer ${t.apiKey}`, 'idempotency-key': key } });
    };
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => post(pdf.bytes, 'order-42', apis[i % 2] as ServiceProcess)));
    const bodies = await Promise.all(answers.map(async (r) => ({ status: r.status, body: (await r.json()) as { id?: string; code?: string } })));
    const ids = new Set(bodies.filter((b) => b.status === 202).map((b) => b.body.id));
    expect(ids.size).toBe(1);
    // Every other answer is the same document, or a 409 asking to retry (never a second document).
    for (const b of bodies) expect([202, 409]).toContain(b.status);
    const [api] = apis as [ServiceProcess];
    const list = (await (await get(api, '/v1/documents?limit=100', t.apiKey)).json()) as { documents: Array<{ id: string }> };
    expect(list.documents.map((d) => d.id)).toEqual([...ids]);
    const usage = (await (await get(api, '/v1/usage', t.apiKey)).json()) as { quotas: { pagesPerMonth: { reserved: number } } };
    expect(usage.quotas.pagesPerMonth.reserved).toBe(4);
    // The same key later: the same document, no new work.
    const again = await post(pdf.bytes, 'order-42', api);
    expect(again.status).toBe(202);
    expect(((await again.json()) as { id: string }).id).toBe([...ids][0]);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    // The same key with another file.
    const other = await post((await generatePdf({ pages: 2, seed: 6 })).bytes, 'order-42', api);
    expect(other.status).toBe(422);
    expect((await problemBody(other)).code).toBe('IDEMPOTENCY_KEY_REUSED');
    // A sync request replayed returns the sync result.
    const sync1 = await post(pdf.bytes, 'sync-1', api, 'sync');
    expect(sync1.status).toBe(200);
    const first = (await sync1.json()) as { documentId: string };
    const sync2 = await post(pdf.bytes, 'sync-1', apis[1] as ServiceProcess, 'sync');
    expect(sync2.status).toBe(200);
    expect(((await sync2.json()) as { documentId: string }).documentId).toBe(first.documentId);
  });

  // Last but one: the random-key flood leaves 127.0.0.1 limited for new keys for the rest of the minute.
  it('shares a tenant rate limit across replicas, leaves other tenants alone, and bounds random-key lookups', { timeout: 120_000 }, async () => {
    const limited = await tenant({ uploadsPerMinute: 10 });
    const other = await tenant({ uploadsPerMinute: 10 });
    // Stay inside one fixed window: start at least 2 s after a minute boundary, finish well before the next.
    const intoWindow = Date.now() % 60_000;
    if (intoWindow > 40_000 || intoWindow < 2_000) await new Promise((r) => setTimeout(r, (62_000 - intoWindow) % 60_000));
    const statuses = await Promise.all(
      Array.from({ length: 30 }, (_, i) => get(apis[i % 2] as ServiceProcess, `/v1/documents/nosuchdoc${i}0000`, limited.apiKey, 'DELETE').then((r) => r.status)),
    );
    expect(statuses.filter((s) => s !== 429)).toHaveLength(10);
    expect(statuses.filter((s) => s === 429)).toHaveLength(20);
    const res429 = await get(apis[0] as ServiceProcess, '/v1/documents/nosuchdoc00000', limited.apiKey, 'DELETE');
    expect(res429.status).toBe(429);
    expect(Number(res429.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(res429.headers.get('ratelimit')).toMatch(/"writes"; r=0/);
    expect((await problemBody(res429)).code).toBe('THROTTLED');
    // The other tenant is not affected, and reads have their own budget.
    expect((await get(apis[1] as ServiceProcess, '/v1/documents/nosuchdoc00000', other.apiKey, 'DELETE')).status).toBe(404);
    expect((await get(apis[0] as ServiceProcess, '/v1/documents', limited.apiKey)).status).toBe(200);

    // 1,000 requests with random well-formed keys from one address: bounded key reads, then 429.
    const lookups = async () =>
      (
        await Promise.all(
          (apis as ServiceProcess[]).map(async (api) => {
            const text = await (await fetch(`${api.baseUrl}/metrics`)).text();
            return Number(/^docorch_auth_lookups_total(?:\{[^}]*\})? (\d+)/m.exec(text)?.[1] ?? 0);
          }),
        )
      ).reduce((x, y) => x + y, 0);
    // The failure limit is a window per address and replica that began at this address's first
    // failure there (earlier tests made some): when less of it is left than the run below needs,
    // wait for it to end, so the run is judged against one window per replica.
    let waitMs = 0;
    for (const api of apis as ServiceProcess[]) {
      for (let i = 0; i <= config.AUTH_FAILURES_PER_MINUTE; i++) {
        const res = await get(api, '/v1/documents', generateApiKey().key);
        if (res.status !== 429) continue;
        const leftMs = Number(res.headers.get('retry-after') ?? 0) * 1_000;
        if (leftMs < 30_000) waitMs = Math.max(waitMs, leftMs + 1_000);
        break;
      }
    }
    await new Promise((r) => setTimeout(r, waitMs));
    const before = await lookups();
    const codes: number[] = [];
    for (let i = 0; i < 1_000; i += 50) {
      codes.push(...(await Promise.all(Array.from({ length: 50 }, (_, j) => get(apis[(i + j) % 2] as ServiceProcess, '/v1/documents', generateApiKey().key).then((r) => r.status)))));
    }
    const spent = (await lookups()) - before;
    // At most AUTH_FAILURES_PER_MINUTE (20) lookups per replica before the address is limited.
    expect(spent).toBeLessThanOrEqual(2 * config.AUTH_FAILURES_PER_MINUTE);
    expect(codes.filter((c) => c === 401).length).toBeLessThanOrEqual(2 * config.AUTH_FAILURES_PER_MINUTE);
    expect(codes.slice(-100).every((c) => c === 429)).toBe(true);
    console.log(`random keys: ${codes.length} requests, ${spent} key reads, ${codes.filter((c) => c === 429).length} answered 429`);
  });

  it('keeps no plaintext API key in any table', async () => {
    expect(keysSeen.length).toBeGreaterThan(5);
    for (const table of [config.TENANTS_TABLE, config.FILES_TABLE, config.STATUS_TABLE, config.RATE_LIMIT_TABLE, config.DEAD_LETTERS_TABLE, config.LEASES_TABLE]) {
      const items: unknown[] = [];
      let start: Record<string, unknown> | undefined;
      do {
        const out = await aws.doc.send(new ScanCommand({ TableName: table, ExclusiveStartKey: start }));
        items.push(...(out.Items ?? []));
        start = out.LastEvaluatedKey;
      } while (start);
      const dump = JSON.stringify(items);
      for (const key of keysSeen) {
        expect(dump.includes(key), `${table} holds a plaintext key`).toBe(false);
        expect(dump.includes(key.slice('dk_live_'.length + 13)), `${table} holds a key's secret`).toBe(false);
      }
    }
  });
});
