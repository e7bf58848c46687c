/**
 * Webhooks delivered for real (docs/webhooks.md), on the whole pipeline: a receiver on 127.0.0.1
 * (allowed by WEBHOOK_ALLOWED_CIDRS here, as in the local stack) that fails the first three
 * deliveries gets the fourth; every process of the stack is killed -9 and restarted between
 * attempts and no delivery is lost; the receiver verifies the signature with the snippet printed
 * in docs/webhooks.md, which refuses a tampered body and an old timestamp; the delivery log shows
 * every attempt; a tenant webhook set with the admin command line gets document.cancelled.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAwsClients, loadConfig, signWebhook, TenantStore } from '@docorch/core';
import { generatePdf, repoRoot, startPipeline, startService, type Pipeline, type ServiceProcess } from '@docorch/testkit';
import { docorch, submitPdf, waitFor, waitForTerminal } from './helpers.js';

interface Received {
  headers: http.IncomingHttpHeaders;
  body: string;
  answered: number;
}

/** A receiver on 127.0.0.1 answering `statusFor(n)` to its n-th request (from 1). */
async function startReceiver(statusFor: (n: number) => number): Promise<{ url: string; received: Received[]; close: () => Promise<void> }> {
  const received: Received[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    req.on('end', () => {
      const answered = statusFor(received.length + 1);
      received.push({ headers: req.headers, body, answered });
      res.writeHead(answered, { 'content-type': 'text/plain' }).end(answered < 300 ? 'ok' : 'not now');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/hooks/docorch`, received, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

/** The verification snippet of docs/webhooks.md, loaded as written there. */
async function documentedVerifier(dir: string): Promise<(secret: string, header: string | undefined, body: string, tolerance?: number) => boolean> {
  const doc = await readFile(path.join(repoRoot, 'docs/webhooks.md'), 'utf8');
  const m = /<!-- verify-snippet:start -->\s*```js\n([\s\S]*?)```\s*<!-- verify-snippet:end -->/.exec(doc);
  if (!m?.[1]) throw new Error('docs/webhooks.md lost its verify snippet');
  const file = path.join(dir, 'verify.mjs');
  await writeFile(file, m[1]);
  const mod = (await import(pathToFileURL(file).href)) as { verifyDocorchWebhook: (s: string, h: string | undefined, b: string, t?: number) => boolean };
  return mod.verifyDocorchWebhook;
}

async function deliveries(api: ServiceProcess, apiKey: string, id: string): Promise<Array<{ id: string; eventId: string; event: string; status: string; attempts: Array<{ statusCode: number | null; error: string | null }> }>> {
  const res = await fetch(`${api.baseUrl}/v1/documents/${id}/deliveries`, { headers: { authorization: `Bearer ${apiKey}` } });
  expect(res.status).toBe(200);
  return ((await res.json()) as { deliveries: never[] }).deliveries;
}

describe('webhooks', () => {
  let pipeline: Pipeline;
  let dir: string;
  const restarted: ServiceProcess[] = [];

  beforeAll(async () => {
    pipeline = await startPipeline({
      workers: 1,
      shards: 1,
      prefix: 'hook',
      env: { WEBHOOK_ALLOWED_CIDRS: '127.0.0.1/32', WEBHOOK_RETRY_BASE_MS: '1500', WEBHOOK_POLL_MS: '200', WEBHOOK_TIMEOUT_MS: '2000' },
    });
    dir = await mkdtemp(path.join(tmpdir(), 'docorch-hooks-'));
  }, 120_000);

  afterAll(async () => {
    await Promise.all(restarted.map((p) => p.stop(10_000)));
    await pipeline?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('retries a failing receiver until the 4th attempt, across a kill -9 of every process, signed verifiably', async () => {
    const receiver = await startReceiver((n) => (n <= 3 ? 500 : 200));
    const verify = await documentedVerifier(dir);
    try {
      const pdf = await generatePdf({ pages: 4, seed: 41 });
      const id = await submitPdf(pipeline, pdf.bytes, { webhookUrl: receiver.url, pagesPerChunk: '2' });
      await waitForTerminal(pipeline, id, 60_000);
      // Two failed attempts are recorded: now kill every process of the stack.
      await waitFor('two attempts recorded', async () => (((await deliveries(pipeline.api, pipeline.apiKey, id))[0]?.attempts.length === 2) ? true : undefined), 30_000);
      const victims = [pipeline.api, pipeline.aggregator, ...pipeline.workers];
      for (const p of victims) p.signal('SIGKILL');
      await Promise.all(victims.map((p) => p.exitedPromise));
      const before = receiver.received.length;
      const [api, aggregator, worker] = await Promise.all([
        startService({ service: 'api', env: pipeline.env }),
        startService({ service: 'aggregator', env: pipeline.env }),
        startService({ service: 'worker', env: { ...pipeline.env, WORKER_ID: 'w-restarted' }, portEnv: 'WORKER_PORT' }),
      ]);
      restarted.push(api as ServiceProcess, aggregator as ServiceProcess, worker as ServiceProcess);
      await waitFor('the 4th delivery', async () => ((receiver.received.length >= 4) ? true : undefined), 60_000);
      expect(before).toBeLessThanOrEqual(3);

      // The log: one delivery, delivered, with all four attempts (three 500s, then 200).
      const log = await deliveries(api as ServiceProcess, pipeline.apiKey, id);
      expect(log).toHaveLength(1);
      expect(log[0]?.status).toBe('delivered');
      expect(log[0]?.attempts.map((a) => a.statusCode)).toEqual([500, 500, 500, 200]);
      expect(log[0]?.attempts[0]?.error).toMatch(/500/);
      await new Promise((r) => setTimeout(r, 1_000));
      expect(receiver.received).toHaveLength(4); // nothing more after the 2xx

      // Every attempt: the same event id and body; attempts numbered; the event of the status.
      const eventIds = new Set(receiver.received.map((r) => r.headers['docorch-event-id']));
      expect(eventIds.size).toBe(1);
      expect(receiver.received.map((r) => r.headers['docorch-attempt'])).toEqual(['1', '2', '3', '4']);
      expect(new Set(receiver.received.map((r) => r.body)).size).toBe(1);
      const last = receiver.received[3] as Received;
      expect(last.headers['docorch-event']).toBe('document.completed');
      const payload = JSON.parse(last.body) as { id: string; type: string; data: { document: { id: string; status: string; links: { result: string } } } };
      expect(payload).toMatchObject({ id: [...eventIds][0], type: 'document.completed', data: { document: { id, status: 'completed', links: { result: `/v1/documents/${id}/result` } } } });

      // The documented snippet: valid as sent; a tampered body and an old timestamp fail.
      const aws = createAwsClients(loadConfig({ ...process.env, ...pipeline.env }));
      const secret = await new TenantStore(aws.doc, pipeline.env.TENANTS_TABLE as string).webhookSecret(pipeline.tenantId);
      aws.destroy();
      const header = last.headers['docorch-signature'] as string;
      expect(header).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
      expect(verify(secret, header, last.body)).toBe(true);
      expect(verify(secret, header, last.body.replace('"completed"', '"failed"'))).toBe(false);
      expect(verify('whsec_wrong', header, last.body)).toBe(false);
      const old = signWebhook(secret, Math.floor(Date.now() / 1000) - 600, last.body);
      expect(verify(secret, old, last.body)).toBe(false);
      expect(verify(secret, old, last.body, 3_600)).toBe(true); // only the replay window refused it
    } finally {
      await receiver.close();
    }
  }, 180_000);

  it('sends document.cancelled to the tenant webhook set with the admin command line, and redelivers on request', async () => {
    const receiver = await startReceiver(() => 204);
    const stackFile = path.join(dir, 'stack.json');
    await writeFile(stackFile, JSON.stringify({ env: pipeline.env }));
    try {
      const set = await docorch(['webhooks', 'set', pipeline.tenantId, receiver.url], stackFile);
      expect(set.code, set.err).toBe(0);
      expect((await docorch(['webhooks', 'show', pipeline.tenantId], stackFile)).out).toContain(receiver.url);
      expect((await docorch(['webhooks', 'secret', pipeline.tenantId], stackFile)).out).toMatch(/^whsec_/);
      // Refused without the allow-list: the admin command line vets the URL like the API.
      const refused = await docorch(['webhooks', 'set', pipeline.tenantId, 'https://169.254.169.254/latest/meta-data'], stackFile);
      expect(refused.code).toBe(1);
      expect(refused.err).toMatch(/linkLocal/);

      const api = restarted[0] ?? pipeline.api;
      const pdf = await generatePdf({ pages: 120, seed: 43 });
      const id = await submitPdf({ api, apiKey: pipeline.apiKey }, pdf.bytes, { pagesPerChunk: '2' });
      const del = await fetch(`${api.baseUrl}/v1/documents/${id}`, { method: 'DELETE', headers: { authorization: `Bearer ${pipeline.apiKey}` } });
      expect(del.status).toBe(200);
      await waitFor('the cancelled event', async () => ((receiver.received.length >= 1) ? true : undefined), 30_000);
      expect(receiver.received[0]?.headers['docorch-event']).toBe('document.cancelled');
      const log = await deliveries(api, pipeline.apiKey, id);
      expect(log).toMatchObject([{ event: 'document.cancelled', status: 'delivered' }]);

      const again = await fetch(`${api.baseUrl}/v1/documents/${id}/deliveries/${log[0]?.id}/redeliver`, { method: 'POST', headers: { authorization: `Bearer ${pipeline.apiKey}` } });
      expect(again.status).toBe(202);
      await waitFor('the redelivery', async () => ((receiver.received.length >= 2) ? true : undefined), 30_000);
      expect(receiver.received[1]?.headers['docorch-event-id']).toBe(receiver.received[0]?.headers['docorch-event-id']);
      const missing = await fetch(`${api.baseUrl}/v1/documents/${id}/deliveries/dlv_nosuchdelivery00/redeliver`, { method: 'POST', headers: { authorization: `Bearer ${pipeline.apiKey}` } });
      expect(missing.status).toBe(404);
      expect((await docorch(['webhooks', 'clear', pipeline.tenantId], stackFile)).code).toBe(0);
    } finally {
      await receiver.close();
    }
  }, 120_000);

  it('refuses a webhookUrl of a metadata or private address at submission (400, no allow-list for those)', async () => {
    const api = restarted[0] ?? pipeline.api;
    const pdf = await generatePdf({ pages: 1, seed: 44 });
    for (const url of ['http://169.254.169.254/latest/meta-data/', 'https://10.0.0.1/hook', 'http://[::ffff:169.254.169.254]/']) {
      const form = new FormData();
      form.set('webhookUrl', url);
      form.set('file', new Blob([pdf.bytes], { type: 'application/pdf' }), 'doc.pdf');
      const res = await fetch(`${api.baseUrl}/v1/documents`, { method: 'POST', body: form, headers: { authorization: `Bearer ${pipeline.apiKey}` } });
      expect(res.status, url).toBe(400);
      const body = (await res.json()) as { code: string; detail: string };
      expect(body.code).toBe('INVALID_REQUEST');
      expect(body.detail).toMatch(/webhookUrl refused/);
    }
  });
});
