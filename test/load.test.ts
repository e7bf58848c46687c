/**
 * A bounded load test on loopback: 200 concurrent async uploads from 4 tenants with different
 * plans through two API replicas. Every request is answered, none with a 5xx, and each tenant's
 * limit holds exactly: a rate limit (20 per minute), a monthly page quota (10 documents' worth),
 * a concurrent-documents limit (5), and a generous plan (all 50 admitted). No workers run, so
 * admitted documents stay in flight, which is what the concurrency limit counts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIsolatedResources, generatePdf, startService, type IsolatedResources, type ServiceProcess } from '@docorch/testkit';
import { seedTenant, upload } from '../services/api/test/helpers.js';

describe('200 concurrent uploads from 4 tenants', () => {
  let resources: IsolatedResources;
  let apis: ServiceProcess[];
  let env: Record<string, string>;

  beforeAll(async () => {
    resources = await createIsolatedResources({ prefix: 'load', shardCount: 1 });
    env = { ...resources.names, LOG_LEVEL: 'warn' };
    apis = await Promise.all([startService({ service: 'api', env }), startService({ service: 'api', env })]);
  });
  afterAll(async () => {
    await Promise.all((apis ?? []).map((a) => a.stop()));
    await resources?.cleanup();
  });

  it('answers every request, no 5xx, each tenant held to its plan exactly', { timeout: 240_000 }, async () => {
    const generous = { uploadsPerMinute: 1_000 };
    const tenants = {
      rate: await seedTenant('rate', { uploadsPerMinute: 20 }, { ...process.env, ...env }),
      pages: await seedTenant('pages', { ...generous, pagesPerMonth: 30 }, { ...process.env, ...env }),
      inflight: await seedTenant('inflight', { ...generous, concurrentDocuments: 5 }, { ...process.env, ...env }),
      free: await seedTenant('free', generous, { ...process.env, ...env }),
    };
    const pdf = await generatePdf({ pages: 3, seed: 7 });
    // One fixed rate-limit window for the whole burst.
    const intoWindow = Date.now() % 60_000;
    if (intoWindow > 30_000 || intoWindow < 2_000) await new Promise((r) => setTimeout(r, (62_000 - intoWindow) % 60_000));
    const started = Date.now();
    const requests = Object.entries(tenants).flatMap(([name, t]) =>
      Array.from({ length: 50 }, (_, i) =>
        upload((apis[i % 2] as ServiceProcess).baseUrl, t.apiKey, pdf.bytes, { mode: 'async' }).then(async (res) => ({
          name,
          status: res.status,
          code: res.status >= 400 ? ((await res.json()) as { code: string; detail: string }) : { code: 'ok', detail: '' },
        })),
      ),
    );
    const answers = await Promise.all(requests);
    const seconds = (Date.now() - started) / 1000;
    const tally = (name: string) => {
      const out: Record<string, number> = {};
      for (const a of answers.filter((x) => x.name === name)) out[`${a.status} ${a.code.code}`] = (out[`${a.status} ${a.code.code}`] ?? 0) + 1;
      return out;
    };
    console.log(`load: ${answers.length} uploads in ${seconds.toFixed(1)} s`, JSON.stringify(Object.fromEntries(Object.keys(tenants).map((n) => [n, tally(n)]))));
    expect(answers).toHaveLength(200);
    expect(answers.filter((a) => a.status >= 500)).toEqual([]);
    expect(tally('rate')).toEqual({ '202 ok': 20, '429 THROTTLED': 30 });
    expect(tally('pages')).toEqual({ '202 ok': 10, '429 QUOTA_PAGES_EXCEEDED': 40 });
    expect(tally('inflight')).toEqual({ '202 ok': 5, '429 CONCURRENCY_LIMIT': 45 });
    expect(tally('free')).toEqual({ '202 ok': 50 });
  });
});
