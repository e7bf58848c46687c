/**
 * The Express application: security headers, request logging, auth, per-tenant rate limit,
 * routes, and problem+json errors. Built from a PipelineContext so tests can run it in-process.
 */
import express, { type Express, type Request, type Response } from 'express';
import { rateLimit } from 'express-rate-limit';
import helmet from 'helmet';
import { pinoHttp } from 'pino-http';
import { randomUUID } from 'node:crypto';
import { DocorchError, SpanKind, withSpan, type PipelineContext } from '@docorch/core';
import { authenticate, maybeTenantOf, tenantOf } from './auth.js';
import { checkReadiness } from './health.js';
import { notFoundHandler, problemCodes, problemHandler, sendProblem } from './problem.js';
import { documentsRouter } from './routes/documents.js';

/** Builds the app. */
export function createApp(ctx: PipelineContext): Express {
  const app = express();
  app.disable('x-powered-by');
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
    res.json({ status: 'ok' });
  });
  app.get('/metrics', async (_req: Request, res: Response) => {
    res.type(ctx.metrics.registry.contentType).send(await ctx.metrics.registry.metrics());
  });
  app.get('/readyz', async (_req: Request, res: Response) => {
    const report = await checkReadiness(ctx);
    res.status(report.ready ? 200 : 503).json(report);
  });

  const v1 = express.Router();
  v1.use(authenticate(ctx.tenants));
  // Writes (uploads, deletes) and reads (status polling) have separate per-tenant budgets, so
  // a client polling a job never locks itself out of uploading, nor the other way round.
  const limiter = (name: string, perMinute: (req: Request) => number) =>
    rateLimit({
      windowMs: 60_000,
      limit: perMinute,
      keyGenerator: (req: Request) => `${name}:${maybeTenantOf(req)?.tenantId ?? 'anonymous'}`,
      standardHeaders: 'draft-8',
      identifier: name,
      legacyHeaders: false,
      handler: (req: Request, res: Response, _next, options) => {
        const resetMs = (req as Request & { rateLimit?: { resetTime?: Date } }).rateLimit?.resetTime?.getTime();
        const retryAfterMs = resetMs ? Math.max(1000, resetMs - Date.now()) : options.windowMs;
        sendProblem(res, new DocorchError('THROTTLED', `Rate limit exceeded for this tenant (${name})`, { retryAfterMs }), req.originalUrl);
      },
    });
  const writes = limiter('writes', (req) => maybeTenantOf(req)?.rateLimitPerMinute ?? ctx.config.RATE_LIMIT_PER_MINUTE);
  const reads = limiter('reads', () => ctx.config.READ_RATE_LIMIT_PER_MINUTE);
  v1.use((req: Request, res: Response, next) => (req.method === 'GET' || req.method === 'HEAD' ? reads : writes)(req, res, next));
  v1.use('/documents', documentsRouter(ctx));
  // The tenant's model usage for a month (YYYY-MM, default the current one, UTC).
  v1.get('/usage', async (req: Request, res: Response) => {
    const month = typeof req.query.month === 'string' ? req.query.month : undefined;
    if (month !== undefined && !/^\d{4}-(0[1-9]|1[0-2])$/.test(month)) {
      throw new DocorchError('INVALID_REQUEST', 'month must look like 2026-11');
    }
    res.json(await ctx.tenants.getUsage(tenantOf(req).tenantId, month));
  });
  app.use('/v1', v1);

  app.use(notFoundHandler());
  app.use(problemHandler());
  return app;
}
