/**
 * Webhook targets and server-side request forgery, with no allow-list (production's setting):
 * a webhookUrl of the metadata address, of a name resolving to 10.0.0.1, and of a receiver that
 * redirects to 127.0.0.1 are each refused, and no connection is made to them. The resolver and
 * the connect are injected: nothing here connects off loopback, and the names never reach DNS.
 *
 * At submission (the API in-process, supertest): 400 for the first two. At delivery (the worker's
 * dispatcher, real DynamoDB rows): refused again after resolution (the delivery fails at once, the
 * sender is never called); a 3xx is never followed (the 127.0.0.1 trap gets no connection).
 */
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  closePipelineContext,
  createHttpSender,
  createLogger,
  createPipelineContext,
  loadConfig,
  TenantStore,
  unavailableExtractor,
  WebhookDispatcher,
  WebhookTargetGuard,
  type PipelineContext,
  type Resolver,
  type WebhookSender,
} from '@docorch/core';
import { createIsolatedResources, generatePdf, recordServer, type IsolatedResources } from '@docorch/testkit';
import { createApp } from '../services/api/src/app.js';
import { ApiLifecycle } from '../services/api/src/lifecycle.js';

const FAKE_DNS: Record<string, string> = {
  'internal.example.test': '10.0.0.1',
  'hooks.example.test': '93.184.216.34',
};
const lookups: string[] = [];
const resolver: Resolver = async (hostname) => {
  lookups.push(hostname);
  const address = FAKE_DNS[hostname];
  if (!address) throw Object.assign(new Error(`no such name ${hostname}`), { code: 'ENOTFOUND' });
  return [{ address, family: 4 }];
};

let resources: IsolatedResources;
let ctx: PipelineContext;
let tenantId: string;
let apiKey: string;

beforeAll(async () => {
  resources = await createIsolatedResources({ prefix: 'ssrf', shardCount: 1 });
  const config = loadConfig({ ...process.env, ...resources.names, WEBHOOK_ALLOWED_CIDRS: '', LOG_LEVEL: 'silent' });
  ctx = createPipelineContext(config, createLogger({ service: 'ssrf-test', level: 'silent' }), {
    extractor: unavailableExtractor('not used'),
    webhookGuard: new WebhookTargetGuard({ allowedCidrs: '', resolver }),
  });
  tenantId = `t${Math.random().toString(36).slice(2, 10)}`;
  const tenants = new TenantStore(ctx.aws.doc, config.TENANTS_TABLE);
  await tenants.createTenant({ tenantId, name: tenantId });
  apiKey = (await tenants.createKey(tenantId)).key;
}, 120_000);

afterAll(async () => {
  if (ctx) await closePipelineContext(ctx);
  await resources?.cleanup();
});

async function scheduled(url: string, documentId: string) {
  const at = new Date().toISOString();
  const deliveryId = `dlv_${documentId.padEnd(22, 'x')}`;
  await ctx.webhooks.create({ tenantId, documentId, deliveryId, eventId: `evt_${documentId}`, event: 'document.completed', url, source: 'document', payload: '{"id":"evt"}', createdAt: at, windowStart: at });
  return { tenantId, documentId, deliveryId };
}

describe('webhook targets are checked against request forgery (no allow-list)', () => {
  it('refuses the metadata address and a name resolving to 10.0.0.1 at submission (400)', async () => {
    const lifecycle = new ApiLifecycle();
    lifecycle.serving();
    const server = recordServer(http.createServer(createApp(ctx, lifecycle)));
    const pdf = await generatePdf({ pages: 1, seed: 5 });
    for (const [url, why] of [
      ['http://169.254.169.254/latest/meta-data/iam/', /169\.254\.169\.254, a linkLocal address/],
      ['https://internal.example.test/hook', /resolves to 10\.0\.0\.1, a private address/],
    ] as const) {
      const res = await request(server)
        .post('/v1/documents')
        .set('authorization', `Bearer ${apiKey}`)
        .field('webhookUrl', url)
        .attach('file', Buffer.from(pdf.bytes), { filename: 'doc.pdf', contentType: 'application/pdf' });
      expect(res.status, url).toBe(400);
      expect(res.body).toMatchObject({ code: 'INVALID_REQUEST', status: 400 });
      expect(res.body.detail).toMatch(why);
    }
    expect(lookups).toContain('internal.example.test');
  });

  it('refuses them again at delivery, after resolution, without calling the sender', async () => {
    const calls: string[] = [];
    const sender: WebhookSender = async (target) => {
      calls.push(`${target.address} ${target.url.href}`);
      return { statusCode: 200 };
    };
    const metadata = await scheduled('http://169.254.169.254/latest/meta-data/', 'ssrfmeta01');
    const internal = await scheduled('https://internal.example.test/hook', 'ssrfinternal01');
    const dispatcher = new WebhookDispatcher(ctx, { owner: 'test', sender });
    expect(await dispatcher.tick()).toBe(2);
    expect(calls).toEqual([]);
    for (const [key, why] of [
      [metadata, /linkLocal/],
      [internal, /10\.0\.0\.1, a private address/],
    ] as const) {
      const d = await ctx.webhooks.get(key);
      expect(d?.status).toBe('failed'); // refused targets are not retried
      expect(d?.attempts).toHaveLength(1);
      expect(d?.attempts[0]?.statusCode).toBeNull();
      expect(d?.attempts[0]?.error).toMatch(why);
    }
  });

  it('never follows a redirect to 127.0.0.1: the trap there gets no connection', async () => {
    let trapConnections = 0;
    const trap = net.createServer((socket) => {
      trapConnections++;
      socket.destroy();
    });
    await new Promise<void>((resolve) => trap.listen(0, '127.0.0.1', resolve));
    const trapUrl = `http://127.0.0.1:${(trap.address() as AddressInfo).port}/`;
    // The "public" receiver hooks.example.test, played by a local server that answers 302 to the trap.
    const redirector = http.createServer((_req, res) => res.writeHead(302, { location: trapUrl }).end());
    await new Promise<void>((resolve) => redirector.listen(0, '127.0.0.1', resolve));
    const connects: Array<{ host: string; port: number; address: string }> = [];
    const sender = createHttpSender({
      createConnection: (options, onCreate) => {
        // Where the request would connect: the vetted address, pinned by the sender's lookup.
        const lookup = options.lookup as net.LookupFunction;
        lookup(String(options.host), {}, (_err, address) => connects.push({ host: String(options.host), port: Number(options.port), address: String(address) }));
        const socket = net.connect((redirector.address() as AddressInfo).port, '127.0.0.1');
        onCreate?.(null, socket);
        return socket;
      },
    });
    try {
      const key = await scheduled('https://hooks.example.test/receive', 'ssrfredirect01');
      const dispatcher = new WebhookDispatcher(ctx, { owner: 'test', sender });
      expect(await dispatcher.tick()).toBe(1);
      const d = await ctx.webhooks.get(key);
      expect(d?.attempts).toHaveLength(1);
      expect(d?.attempts[0]?.statusCode).toBe(302);
      expect(d?.attempts[0]?.error).toMatch(/redirect to http:\/\/127\.0\.0\.1:\d+\/ not followed/);
      expect(d?.status).toBe('pending'); // a failed attempt, retried later (to the same vetted target)
      expect(connects).toEqual([{ host: 'hooks.example.test', port: 443, address: '93.184.216.34' }]);
      await new Promise((r) => setTimeout(r, 300));
      expect(trapConnections).toBe(0);
    } finally {
      await new Promise<void>((resolve) => trap.close(() => resolve()));
      await new Promise<void>((resolve) => redirector.close(() => resolve()));
    }
  });
});
