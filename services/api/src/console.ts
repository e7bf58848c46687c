/**
 * /console: the web console's static build (packages/console, Vite), served from the package. No
 * server-side session: the page asks for the API key and keeps it in the tab's session storage.
 * Hashed assets are cached for a year; the page itself is revalidated.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import express, { Router, type Request, type Response } from 'express';
import { DocorchError } from '@docorch/core';

/** The console's build folder, or undefined when it was not built. */
function consoleDist(): string | undefined {
  try {
    const dir = path.join(path.dirname(createRequire(import.meta.url).resolve('@docorch/console/package.json')), 'dist');
    return existsSync(path.join(dir, 'index.html')) ? dir : undefined;
  } catch {
    return undefined;
  }
}

/** The router of /console. */
export function consoleRouter(): Router {
  const router = Router();
  const dist = consoleDist();
  if (!dist) {
    router.use('/console', () => {
      throw new DocorchError('UPSTREAM_UNAVAILABLE', 'The console is not built: run "pnpm build" (packages/console)');
    });
    return router;
  }
  const index = path.join(dist, 'index.html');
  router.use('/console/assets', express.static(path.join(dist, 'assets'), { immutable: true, maxAge: '365d', index: false, fallthrough: false }));
  // Express matches /console and /console/ alike: the page's relative URLs want the slash.
  router.get('/console', (req: Request, res: Response) => {
    if (!req.originalUrl.split('?')[0]?.endsWith('/')) {
      res.redirect(301, '/console/');
      return;
    }
    res.setHeader('Cache-Control', 'no-cache');
    res.sendFile(index);
  });
  return router;
}
