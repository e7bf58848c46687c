/**
 * GET /openapi.json (the generated document) and /docs (Swagger UI from the swagger-ui-dist
 * package, served from here: no CDN, and nothing inline, so helmet's strict Content-Security-Policy
 * holds).
 */
import express, { Router, type Request, type Response } from 'express';
import { createRequire } from 'node:module';
import path from 'node:path';
import { openApiDocument } from './openapi.js';

const require = createRequire(import.meta.url);
const swaggerDir = path.dirname(require.resolve('swagger-ui-dist/package.json'));

const DOCS_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>docorch API reference</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>`;

// No inline script (CSP script-src 'self'): the initializer is its own file.
const INIT_JS = `window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#swagger-ui', deepLinking: true, tryItOutEnabled: false });`;

/** The router of /openapi.json and /docs. The document is built once. */
export function contractRouter(): Router {
  const router = Router();
  const document = JSON.stringify(openApiDocument());
  router.get('/openapi.json', (_req: Request, res: Response) => {
    res.type('application/json').send(document);
  });
  router.get(['/docs', '/docs/'], (_req: Request, res: Response) => {
    res.type('html').send(DOCS_HTML);
  });
  router.get('/docs/init.js', (_req: Request, res: Response) => {
    res.type('application/javascript').send(INIT_JS);
  });
  router.use('/docs/assets', express.static(swaggerDir, { index: false, maxAge: '1h' }));
  return router;
}
