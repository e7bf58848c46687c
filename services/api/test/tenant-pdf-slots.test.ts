/**
 * One tenant's slow PDFs never make another tenant's upload wait for a PDF worker (issue 9,
 * point 5): the API app in process on the real emulators, with the real extractor behind a gate
 * that holds tenant A's inspections until released. With TENANT_PDF_TASKS=1 and
 * TENANT_PDF_QUEUE=1, A's first upload holds its slot, the second waits in A's queue, the third
 * answers 429 THROTTLED with Retry-After; tenant B's upload is answered meanwhile; once A's PDF
 * work is released, A's two admitted uploads are answered.
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  closePipelineContext,
  createLogger,
  createPdfExtractor,
  createPipelineContext,
  loadConfig,
  type PdfExtractor,
  type PipelineContext,
} from '@docorch/core';
import { generatePdf } from '@docorch/testkit';
import { createApp } from '../src/app.js';
import { problemBody, seedTenant, upload } from './helpers.js';

describe('per-tenant PDF slots in the API', () => {
  let ctx: PipelineContext;
  let server: Server;
  let baseUrl: string;
  let a: { tenantId: string; apiKey: string };
  let b: { tenantId: string; apiKey: string };
  let release: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let heldInspections = 0;

  beforeAll(async () => {
    a = await seedTenant('slots-a');
    b = await seedTenant('slots-b');
    const config = loadConfig({ ...process.env, LOG_LEVEL: 'silent', TENANT_PDF_TASKS: '1', TENANT_PDF_QUEUE: '1' });
    const logger = createLogger({ service: 'api-test', level: 'silent' });
    const real = createPdfExtractor(config, { logger });
    // Tenant A's PDFs are slow: their inspection waits for the gate.
    const extractor: PdfExtractor = {
      async inspect(file, options = {}) {
        if (options.share?.flow === a.tenantId) {
          heldInspections++;
          await gate;
        }
        return real.inspect(file, options);
      },
      extract: (file, options) => real.extract(file, options),
      close: () => real.close(),
    };
    ctx = createPipelineContext(config, logger, { extractor });
    const app = createApp(ctx);
    await new Promise<void>((resolve) => {
      server = app.listen(0, '127.0.0.1', () => resolve());
    });
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    release();
    await new Promise<void>((resolve) => server?.close(() => resolve()));
    if (ctx) await closePipelineContext(ctx);
  });

  it("caps one tenant's PDF work, queues and then refuses its excess, and never holds up another tenant", { timeout: 60_000 }, async () => {
    const pdf = (await generatePdf({ pages: 3, seed: 9 })).bytes;
    const first = upload(baseUrl, a.apiKey, pdf, { mode: 'async' });
    await expect.poll(() => heldInspections, { timeout: 10_000 }).toBe(1);
    const second = upload(baseUrl, a.apiKey, pdf, { mode: 'async' });
    // The second waits in A's queue (its inspection has not started); the third is refused.
    await new Promise((r) => setTimeout(r, 500));
    expect(heldInspections).toBe(1);
    const third = await upload(baseUrl, a.apiKey, pdf, { mode: 'async' });
    expect(third.status).toBe(429);
    expect(Number(third.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect((await problemBody(third)).code).toBe('THROTTLED');

    // Tenant B is answered while A's PDFs hold A's slot.
    const started = Date.now();
    const other = await upload(baseUrl, b.apiKey, pdf, { mode: 'async' });
    expect(other.status, await other.clone().text()).toBe(202);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(heldInspections).toBe(1);

    release();
    const [r1, r2] = await Promise.all([first, second]);
    expect(r1.status).toBe(202);
    expect(r2.status).toBe(202);
    expect(heldInspections).toBe(2);
  });
});
