/**
 * Bearer API-key authentication. The key identifies the tenant; only its hash is stored.
 */
import type { NextFunction, Request, Response } from 'express';
import type { Tenant, TenantsTable } from '@docorch/core';
import { problem } from './problem.js';

/** The tenant of each authenticated request (no global type augmentation needed). */
const requestTenants = new WeakMap<Request, Tenant>();

/** Middleware: 401 problem+json unless `Authorization: Bearer <key>` names a known key. */
export function authenticate(tenants: TenantsTable) {
  return async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    const header = req.headers.authorization ?? '';
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match?.[1]) {
      res.setHeader('WWW-Authenticate', 'Bearer realm="docorch"');
      next(problem('UNAUTHENTICATED', 'Send your API key as "Authorization: Bearer <key>"'));
      return;
    }
    try {
      const tenant = await tenants.authenticate(match[1]);
      if (!tenant) {
        res.setHeader('WWW-Authenticate', 'Bearer realm="docorch", error="invalid_token"');
        next(problem('UNAUTHENTICATED', 'The API key is not valid'));
        return;
      }
      requestTenants.set(req, tenant);
      req.log = req.log?.child({ tenantId: tenant.tenantId });
      next();
    } catch (err) {
      next(err);
    }
  };
}

/** The authenticated tenant of a request (routes behind {@link authenticate} only). */
export function tenantOf(req: Request): Tenant {
  const tenant = requestTenants.get(req);
  if (!tenant) throw new Error('tenantOf() used on a route without authenticate()');
  return tenant;
}

/** The authenticated tenant, or undefined before authentication. */
export function maybeTenantOf(req: Request): Tenant | undefined {
  return requestTenants.get(req);
}
