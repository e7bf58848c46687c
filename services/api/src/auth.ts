/**
 * Bearer API-key authentication and the per-tenant limits that come with it.
 *
 * Order of the middlewares on /v1 (app.ts):
 *   1. failures per client address (in process, before any lookup): a client that sent
 *      AUTH_FAILURES_PER_MINUTE missing or wrong keys gets 429 without another DynamoDB read;
 *   2. authentication (core's TenantStore, bounded caches);
 *   3. read-only keys: 403 on anything but GET and HEAD;
 *   4. the tenant's plan rate limits (writes, reads), counted in DynamoDB across every replica.
 * authenticate() does 1 to 3; tenantRateLimits() does 4.
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { MemoryStore, rateLimit, type ClientRateLimitInfo, type Options, type Store } from 'express-rate-limit';
import { DocorchError, keyIdOf, RateLimitCounters, resolvePlan, type PipelineContext, type Plan, type Principal } from '@docorch/core';
import { problem, sendProblem } from './problem.js';

/** What each authenticated request carries. */
export interface RequestPrincipal extends Principal {
  /** The plan in force (tenant fields over config defaults). */
  limits: Required<Plan>;
}

/** The principal of each authenticated request (no global type augmentation needed). */
const principals = new WeakMap<Request, RequestPrincipal>();

const REASONS = {
  malformed: 'The API key is not valid',
  unknown: 'The API key is not valid',
  revoked: 'The API key has been revoked',
  expired: 'The API key has expired',
  suspended: 'The tenant is suspended',
} as const;

/** 429 problem+json from express-rate-limit's state (Retry-After from the window's end). */
function limited(code: string) {
  return (req: Request, res: Response, _next: NextFunction, options: Options): void => {
    const resetMs = (req as Request & { rateLimit?: { resetTime?: Date } }).rateLimit?.resetTime?.getTime();
    const retryAfterMs = resetMs ? Math.max(1000, resetMs - Date.now()) : options.windowMs;
    sendProblem(res, new DocorchError('THROTTLED', code, { retryAfterMs }), req.originalUrl);
  };
}

/**
 * Steps 1 to 3: 401 unless the key is valid; 403 for a read-only key on a write. Failed keys are
 * counted per client address in this process (express-rate-limit's MemoryStore; a DynamoDB counter
 * would spend a write on every bad request, which is what this guards against): past
 * AUTH_FAILURES_PER_MINUTE an address gets 429 before any lookup, except for keys this replica has
 * seen valid, so a client sharing an address with a flood of random keys keeps working. Only
 * failures count, so any number of concurrent requests with good keys pass.
 */
export function authenticate(ctx: PipelineContext): RequestHandler {
  const failures = new MemoryStore();
  failures.init({ windowMs: 60_000 } as Options);
  const limit = ctx.config.AUTH_FAILURES_PER_MINUTE;
  /** Key ids being looked up, per address: they count against the limit until they turn out valid. */
  const pending = new Map<string, Set<string>>();
  const fail = async (req: Request, res: Response, next: NextFunction, detail: string) => {
    await failures.increment(req.ip ?? 'unknown');
    res.setHeader('WWW-Authenticate', `Bearer realm="docorch"${req.headers.authorization ? ', error="invalid_token"' : ''}`);
    next(problem('UNAUTHENTICATED', detail));
  };
  return async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    try {
      const key = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '')?.[1];
      const ip = req.ip ?? 'unknown';
      const unknownKey = !key || !ctx.tenants.knows(key);
      if (unknownKey) {
        const seen = await failures.get(ip);
        // Lookups in flight count too (one per distinct key id: requests with one key share a
        // lookup), so a burst of random keys cannot run past the limit before the failures land.
        if ((seen?.totalHits ?? 0) + (pending.get(ip)?.size ?? 0) >= limit) {
          const retryAfterMs = Math.max(1_000, (seen?.resetTime?.getTime() ?? Date.now() + 60_000) - Date.now());
          next(new DocorchError('THROTTLED', 'Too many requests with a missing or invalid API key from this address', { retryAfterMs }));
          return;
        }
      }
      if (!key) {
        await fail(req, res, next, 'Send your API key as "Authorization: Bearer <key>"');
        return;
      }
      const keyId = keyIdOf(key) ?? key.slice(0, 64);
      const mine = pending.get(ip) ?? new Set<string>();
      if (unknownKey) pending.set(ip, mine.add(keyId));
      const outcome = await ctx.tenants.authenticate(key).finally(() => {
        mine.delete(keyId);
        if (mine.size === 0) pending.delete(ip);
      });
      if (!outcome.ok) {
        await fail(req, res, next, REASONS[outcome.reason]);
        return;
      }
      const { principal } = outcome;
      if (principal.key.readOnly && req.method !== 'GET' && req.method !== 'HEAD') {
        next(problem('FORBIDDEN', 'This API key is read-only'));
        return;
      }
      principals.set(req, { ...principal, limits: resolvePlan(principal.tenant.plan, ctx.config) });
      req.log = req.log?.child({ tenantId: principal.tenant.tenantId, keyId: principal.key.keyId });
      next();
    } catch (err) {
      next(err);
    }
  };
}

/** The authenticated principal of a request (routes behind {@link authenticate} only). */
export function principalOf(req: Request): RequestPrincipal {
  const principal = principals.get(req);
  if (!principal) throw new Error('principalOf() used on a route without authenticate()');
  return principal;
}

/** The authenticated tenant id of a request. */
export function tenantIdOf(req: Request): string {
  return principalOf(req).tenant.tenantId;
}

/** express-rate-limit's Store over core's shared DynamoDB window counters. */
export class DynamoDbRateLimitStore implements Store {
  readonly localKeys = false;
  private windowMs = 60_000;

  constructor(
    private readonly counters: RateLimitCounters,
    readonly prefix: string,
  ) {}

  init(options: Options): void {
    this.windowMs = options.windowMs;
  }

  async increment(key: string): Promise<ClientRateLimitInfo> {
    return this.counters.hit(`${this.prefix}${key}`, this.windowMs);
  }

  async decrement(key: string): Promise<void> {
    await this.counters.unhit(`${this.prefix}${key}`, this.windowMs);
  }

  async resetKey(): Promise<void> {
    // Windows expire by themselves; an explicit reset is never used by docorch.
  }
}

/** Step 4: the plan's write (uploads, deletes) and read budgets, per tenant, across replicas. */
export function tenantRateLimits(ctx: PipelineContext): RequestHandler {
  const counters = new RateLimitCounters(ctx.aws.doc, ctx.config.RATE_LIMIT_TABLE);
  const limiter = (budget: 'writes' | 'reads', perMinute: (p: RequestPrincipal) => number) =>
    rateLimit({
      windowMs: 60_000,
      limit: (req: Request) => perMinute(principalOf(req)),
      keyGenerator: (req: Request) => tenantIdOf(req),
      store: new DynamoDbRateLimitStore(counters, `${budget}:`),
      identifier: budget,
      standardHeaders: 'draft-8',
      legacyHeaders: false,
      // The counters are shared: a DynamoDB outage must not open the gates, nor fail the request
      // with a 500; the error handler answers 503 (classified AWS error).
      passOnStoreError: false,
      handler: limited(`Rate limit exceeded for this tenant (${budget})`),
    });
  // Writes and reads have separate budgets, so polling never locks a client out of uploading.
  const writes = limiter('writes', (p) => p.limits.uploadsPerMinute);
  const reads = limiter('reads', (p) => p.limits.readsPerMinute);
  return (req, res, next) => (req.method === 'GET' || req.method === 'HEAD' ? reads : writes)(req, res, next);
}
