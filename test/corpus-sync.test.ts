/**
 * Every real-world PDF of ../shared/corpus through the sync endpoint of a real API process:
 * each answers 200 or a 4xx problem+json, none takes the process down, and it still answers
 * /healthz afterwards.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import pLimit from 'p-limit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot, startService, type ServiceProcess } from '@docorch/testkit';
import { seedTenant, upload } from '../services/api/test/helpers.js';

const corpusDir = path.resolve(repoRoot, '../shared/corpus');
const files = existsSync(corpusDir)
  ? ['pdfjs', 'qpdf'].flatMap((sub) => {
      const dir = path.join(corpusDir, sub);
      return existsSync(dir) ? readdirSync(dir).filter((f) => f.toLowerCase().endsWith('.pdf')).map((f) => path.join(dir, f)) : [];
    })
  : [];
if (files.length === 0) console.warn(`corpus test skipped: no PDFs under ${corpusDir} (the shared corpus is absent)`);

describe.skipIf(files.length === 0)('shared corpus through POST /v1/documents', () => {
  let api: ServiceProcess;
  let apiKey: string;

  beforeAll(async () => {
    ({ apiKey } = await seedTenant('corpus'));
    api = await startService({
      service: 'api',
      env: { LOG_LEVEL: 'error', RATE_LIMIT_PER_MINUTE: '100000', PDF_TIMEOUT_MS: '15000', SYNC_TIMEOUT_MS: '60000' },
    });
  });
  afterAll(async () => {
    await api?.stop();
  });

  it(`answers each of the corpus files with 200 or a 4xx problem+json`, { timeout: 480_000 }, async () => {
    const outcomes = new Map<string, number>();
    const unexpected: string[] = [];
    const limit = pLimit(3);
    await Promise.all(
      files.map((file) =>
        limit(async () => {
          const name = path.relative(corpusDir, file);
          let res: Response;
          try {
            res = await upload(api.baseUrl, apiKey, readFileSync(file), { mode: 'sync' }, path.basename(file));
          } catch (err) {
            unexpected.push(`${name}: request failed: ${String(err)}`);
            return;
          }
          const type = res.headers.get('content-type') ?? '';
          const body = await res.text();
          let key = String(res.status);
          if (res.status === 200) {
            if (!type.startsWith('application/json')) unexpected.push(`${name}: 200 with ${type}`);
          } else if (res.status >= 400 && res.status < 500 && type.startsWith('application/problem+json')) {
            key = `${res.status} ${(JSON.parse(body) as { code: string }).code}`;
          } else {
            unexpected.push(`${name}: ${res.status} ${type} ${body.slice(0, 200)}`);
          }
          outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
        }),
      ),
    );
    console.log(`corpus outcomes over ${files.length} files:`, Object.fromEntries([...outcomes].sort()));
    expect(unexpected).toEqual([]);
    expect(api.exited()).toBe(false);
    const health = await fetch(`${api.baseUrl}/healthz`);
    expect(health.status).toBe(200);
  });
});
