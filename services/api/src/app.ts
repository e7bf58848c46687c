/**
 * The Express application: security headers, request logging, auth, per-tenant rate limit,
 * routes, and problem+json errors. Built from a PipelineContext so tests can run it in-process.
 */
import express, { type Express, type Request, type Response } from 'express';
import helmet from 'helmet';
import { pinoHttp } from 'pino-http';
import { randomUUID } from 'node:crypto';
import { DocorchError, SpanKind, withSpan, type PipelineContext } from '@docorch/core';
import { authenticate, principalOf, tenantRateLimits } from './auth.js';
import { checkReadiness } from './health.js';
import { notFoundHandler, problemCodes, problemHandler } from './problem.js';
import { documentsRouter } from './routes/documents.js';
import { ApiLifecycle } from './lifecycle.js';
import { contractRouter } from './contract/routes.js';
import { consoleRouter } from './console.js';

/** Builds the app. @param lifecycle - the process's lifecycle (shutdown); a fresh serving one by default. */
export function createApp(ctx: PipelineContext, lifecycle: ApiLifecycle = new ApiLifecycle()): Express {
  const app = express();
  app.disable('x-powered-by');
  // No ETag/304 on API answers: they are per-tenant and change while a client polls (the contract
  // test caught undocumented 304s from the console's polling); /v1 answers are not stored either.
  app.set('etag', false);
  app.set('trust proxy', ctx.config.TRUST_PROXY);
  app.use(helmet());
  // One server span per request (continuing a caller's traceparent), active for everything the
  // request does, so its log lines and the document it admits carry the trace id.
  app.use((req: Request, res: Response, next) => {
    const traceparent = typeof req.headers.traceparent === 'string' ? req.headers.traceparent : undefined;
    const attributes = { 'http.request.method': req.method, 'url.path': req.path };
    void withSpan(`${req.method} ${req.path.startsWith('/v1/documents/') ? '/v1/documents/{id}' : req.path}`, { parent: { traceparent }, attributes, kind: SpanKind.SERVER }, (span) =>
      new Promise<void>((resolve) => {
        res.on('close', () => {
          span.setAttribute('http.response.status_code', res.statusCode);
          resolve();
        });
        next();
      }),
    );
  });
  app.use((_req: Request, res: Response, next) => {
    res.on('finish', () => {
      ctx.metrics.httpResponses.inc({ status: `${Math.floor(res.statusCode / 100)}xx` });
      if (res.statusCode === 429) ctx.metrics.throttled.inc({ code: problemCodes.get(res) ?? 'THROTTLED' });
    });
    next();
  });
  app.use(
    pinoHttp({
      logger: ctx.logger,
      genReqId: (req, res) => {
        const id = typeof req.headers['x-request-id'] === 'string' ? req.headers['x-request-id'].slice(0, 64) : randomUUID();
        res.setHeader('X-Request-Id', id);
        return id;
      },
      autoLogging: { ignore: (req) => req.url === '/healthz' || req.url === '/readyz' || req.url === '/metrics' },
    }),
  );

  app.get('/healthz', (_req: Request, res: Response) => {
    res.json({ status: 'ok', state: lifecycle.state });
  });
  // Shutting down: no new uploads here (the client retries on another replica); reads still answer.
  app.use((req: Request, res: Response, next) => {
    if (lifecycle.accepting || req.method === 'GET' || req.method === 'HEAD') {
      next();
      return;
    }
    res.setHeader('Connection', 'close');
    next(new DocorchError('SHUTTING_DOWN', 'This server is shutting down; retry the request', { retryAfterMs: 1_000 }));
  });
  app.use(contractRouter());
  app.use(consoleRouter());
  app.get('/metrics', async (_req: Request, res: Response) => {
    res.type(ctx.metrics.registry.contentType).send(await ctx.metrics.registry.metrics());
  });
  app.get('/readyz', async (_req: Request, res: Response) => {
    if (!lifecycle.accepting) {
      res.status(503).json({ ready: false, state: lifecycle.state });
      return;
    }
    const report = await checkReadiness(ctx);
    res.status(report.ready ? 200 : 503).json(report);
  });

  const v1 = express.Router();
  v1.use((_req: Request, res: Response, next) => {
    res.setHeader('Cache-Control', 'no-store');
    next();
  });
  v1.use(authenticate(ctx));
  v1.use(tenantRateLimits(ctx));
  v1.use('/documents', documentsRouter(ctx, { handOff: lifecycle.handOff, drain: lifecycle.drain }));
  // The tenant's usage for a month (YYYY-MM, default the current one, UTC): used, reserved and
  // limit of each quota, and the model usage.
  v1.get('/usage', async (req: Request, res: Response) => {
    const month = typeof req.query.month === 'string' ? req.query.month : undefined;
    if (month !== undefined && !/^\d{4}-(0[1-9]|1[0-2])$/.test(month)) {
      throw new DocorchError('INVALID_REQUEST', 'month must look like 2026-11');
    }
    const { tenant, limits } = principalOf(req);
    res.json(await ctx.usage.report(tenant.tenantId, limits, month));
  });
  app.use('/v1', v1);

  app.use(notFoundHandler());
  app.use(problemHandler());
  return app;
}
