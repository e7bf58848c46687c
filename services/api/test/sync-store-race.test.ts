/**
 * The sync path stores its document while its analyses start (pipeline/sync.ts): the admission
 * (slot, quotas checked against the month's row as read) comes first, then the page reservation
 * and the job and file rows are written beside the first model calls. Here another upload
 * reserves the month's last pages between the two, so the reservation is refused: the request
 * answers 429 QUOTA_PAGES_EXCEEDED, the model call it started is aborted, and nothing of the
 * document is left (no job row, no source object, its slot given back).
 *
 * The API app in process on the real emulators; the analyzer is a stub that holds each call until
 * it is aborted (no model is needed to see that the call stops).
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  closePipelineContext,
  createLogger,
  createPdfExtractor,
  createPipelineContext,
  loadConfig,
  UsageMeter,
  type Analyzer,
  type PipelineContext,
} from '@docorch/core';
import { generatePdf } from '@docorch/testkit';
import { createApp } from '../src/app.js';
import { problemBody, seedTenant, upload } from './helpers.js';

describe('a sync run whose page reservation loses a race', () => {
  let ctx: PipelineContext;
  let server: Server;
  let baseUrl: string;
  const calls: Array<{ aborted: boolean }> = [];
  const limits = { pagesPerMonth: 10, tokensPerMonth: 1_000_000, concurrentDocuments: 100 };

  beforeAll(async () => {
    const config = loadConfig({ ...process.env, LOG_LEVEL: 'silent' });
    const logger = createLogger({ service: 'api-test', level: 'silent' });
    const analyzer: Analyzer = {
      name: 'stub/held',
      analyzeChunk: (_input, options = {}) => {
        const call = { aborted: false };
        calls.push(call);
        return new Promise((_resolve, reject) => {
          const timer = setTimeout(() => reject(new Error('the stub was never aborted')), 15_000);
          options.signal?.addEventListener('abort', () => {
            clearTimeout(timer);
            call.aborted = true;
            reject(options.signal?.reason ?? new Error('aborted'));
          });
        });
      },
      reduceSummaries: () => Promise.reject(new Error('not reached')),
      close: async () => undefined,
    };
    ctx = createPipelineContext(config, logger, { extractor: createPdfExtractor(config, { logger }), analyzer });
    const app = createApp(ctx);
    await new Promise<void>((resolve) => {
      server = app.listen(0, '127.0.0.1', () => resolve());
    });
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => server?.close(() => resolve()));
    if (ctx) await closePipelineContext(ctx);
  });

  it('answers 429, aborts the model call it started, and leaves nothing of the document', { timeout: 60_000 }, async () => {
    const t = await seedTenant('store-race', limits);
    const rival = new UsageMeter(ctx.aws.doc, ctx.config.TENANTS_TABLE);
    // Another upload reserves 8 of the month's 10 pages right after this request's admission read
    // the row (when 3 pages still fitted), before its own reservation is written.
    const takeSlot = ctx.usage.takeSlot.bind(ctx.usage);
    let raced = false;
    ctx.usage.takeSlot = async (...args: Parameters<typeof takeSlot>) => {
      const pending = await takeSlot(...args);
      if (args[0] === t.tenantId && !raced) {
        raced = true;
        await rival.admit(t.tenantId, 8, limits);
      }
      return pending;
    };
    const pdf = await generatePdf({ pages: 3, seed: 31 });
    const res = await upload(baseUrl, t.apiKey, pdf.bytes, { mode: 'sync' });
    expect(res.status).toBe(429);
    const body = await problemBody(res);
    expect(body.code).toBe('QUOTA_PAGES_EXCEEDED');
    expect(raced).toBe(true);

    // The model call started beside the refused transaction was stopped.
    await expect.poll(() => calls.length > 0 && calls.every((c) => c.aborted), { timeout: 10_000 }).toBe(true);
    // Nothing of the document: no job row, no source object; only the rival's slot and pages are held.
    const { jobs } = await ctx.status.listJobs(t.tenantId, { limit: 10 });
    expect(jobs).toEqual([]);
    await expect
      .poll(async () => (await ctx.aws.s3.send(new ListObjectsV2Command({ Bucket: ctx.config.UPLOADS_BUCKET, Prefix: `tenants/${t.tenantId}/` }))).KeyCount ?? 0, { timeout: 10_000 })
      .toBe(0);
    const report = await ctx.usage.report(t.tenantId, limits);
    expect(report.quotas.concurrentDocuments.used).toBe(1);
    expect(report.quotas.pagesPerMonth).toEqual({ used: 0, reserved: 8, limit: 10 });
  });
});
