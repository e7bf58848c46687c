/**
 * Route tests of the Express app in-process (supertest: no port, no emulator): the routes that
 * need no AWS call. Their responses are recorded for the contract test like every other suite's.
 */
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { Validator } from '@seriousme/openapi-schema-validator';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closePipelineContext, createLogger, createPipelineContext, loadConfig, unavailableExtractor, type PipelineContext } from '@docorch/core';
import { recordServer, repoRoot } from '@docorch/testkit';
import { createApp } from '../src/app.js';
import { generatedOpenApiFiles } from '../src/contract/generate.js';
import { openApiDocument } from '../src/contract/openapi.js';
import { ApiLifecycle } from '../src/lifecycle.js';

let ctx: PipelineContext;
let server: http.Server;
const lifecycle = new ApiLifecycle();

beforeAll(() => {
  // Endpoints that nothing listens on: these routes must not need AWS.
  const config = loadConfig({ ...process.env, AWS_ENDPOINT_URL: 'http://127.0.0.1:9', LOG_LEVEL: 'silent' });
  ctx = createPipelineContext(config, createLogger({ level: 'silent', service: 'api-test' }), { extractor: unavailableExtractor('not used here') });
  lifecycle.serving();
  server = recordServer(http.createServer(createApp(ctx, lifecycle)));
});

afterAll(async () => {
  await closePipelineContext(ctx);
});

describe('the API contract routes', () => {
  it('serves /openapi.json: valid OpenAPI 3.1, the document the code generates', async () => {
    const res = await request(server).get('/openapi.json').expect(200).expect('content-type', /application\/json/);
    expect(res.body).toEqual(JSON.parse(JSON.stringify(openApiDocument())));
    const result = await new Validator().validate(res.body as object);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(res.body.openapi).toBe('3.1.0');
  });

  it('keeps docs/openapi.json and the client types generated from it up to date (pnpm openapi)', async () => {
    for (const [file, text] of Object.entries(await generatedOpenApiFiles())) {
      expect(await readFile(path.join(repoRoot, file), 'utf8'), `${file} is stale: run pnpm openapi`).toBe(text);
    }
  });

  it('documents every route, the headers and the problem codes', () => {
    const doc = openApiDocument() as { paths: Record<string, Record<string, { parameters?: { name: string }[]; responses: Record<string, { headers?: object; description: string }> }>> };
    const post = doc.paths['/v1/documents']?.post;
    expect(post?.parameters?.map((p) => p.name)).toContain('Idempotency-Key');
    expect(Object.keys(post?.responses['202']?.headers ?? {})).toEqual(expect.arrayContaining(['Location', 'RateLimit', 'RateLimit-Policy']));
    expect(Object.keys(post?.responses['429']?.headers ?? {})).toContain('Retry-After');
    expect(post?.responses['429']?.description).toMatch(/QUOTA_PAGES_EXCEEDED/);
    expect(doc.paths['/v1/documents/{id}/result']?.get?.responses['409']?.description).toMatch(/RESULT_NOT_READY/);
    for (const route of ['/v1/documents/{id}/events', '/v1/documents/{id}/deliveries', '/v1/usage', '/healthz', '/readyz', '/metrics']) {
      expect(doc.paths[route], route).toBeDefined();
    }
  });

  it('serves the reference page at /docs from the package, under a strict Content-Security-Policy', async () => {
    const page = await request(server).get('/docs').expect(200).expect('content-type', /text\/html/);
    const csp = String(page.headers['content-security-policy']);
    expect(csp).toMatch(/script-src 'self'(;|$)/);
    expect(csp).not.toMatch(/unsafe-eval/);
    expect(page.text).not.toMatch(/<script>[^<]/); // no inline script
    expect(page.text).not.toMatch(/https?:\/\//); // no CDN
    await request(server).get('/docs/assets/swagger-ui-bundle.js').expect(200).expect('content-type', /javascript/);
    await request(server).get('/docs/assets/swagger-ui.css').expect(200).expect('content-type', /css/);
    await request(server).get('/docs/init.js').expect(200).expect('content-type', /javascript/);
  });

  it('answers 401 without a key and 404 for an unknown route, as problem+json', async () => {
    const unauth = await request(server).get('/v1/documents').expect(401).expect('content-type', /application\/problem\+json/);
    expect(unauth.body).toMatchObject({ status: 401, code: 'UNAUTHENTICATED' });
    expect(unauth.headers['www-authenticate']).toMatch(/^Bearer/);
    const missing = await request(server).get('/v2/nothing').expect(404);
    expect(missing.body).toMatchObject({ status: 404, code: 'NOT_FOUND' });
  });

  it('answers /healthz and refuses uploads while draining with 503 and Retry-After', async () => {
    await request(server).get('/healthz').expect(200, { status: 'ok', state: 'serving' });
    lifecycle.draining();
    try {
      const res = await request(server).post('/v1/documents').expect(503);
      expect(res.body).toMatchObject({ code: 'SHUTTING_DOWN', status: 503 });
      expect(res.headers['retry-after']).toBe('1');
      await request(server).get('/readyz').expect(503);
    } finally {
      lifecycle.serving();
    }
  });
});
