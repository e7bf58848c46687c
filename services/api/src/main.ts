/**
 * API process entry: config, logger, pipeline context, HTTP server, graceful shutdown.
 */
import { closePipelineContext, createPdfExtractor, createPipelineContext, startProcess, warmUp } from '@docorch/core';
import { createApp } from './app.js';
import { ApiLifecycle } from './lifecycle.js';
import { sendProblem } from './problem.js';
import { maxRequestBytes, tooLarge } from './upload.js';

const { config, logger, metrics, tracing } = startProcess('api');
const ctx = createPipelineContext(config, logger, { extractor: createPdfExtractor(config), metrics });
const lifecycle = new ApiLifecycle();
const app = createApp(ctx, lifecycle);
// Start the PDF and analysis workers before taking traffic, so the first request is not slow.
await warmUp(ctx);
const server = app.listen(config.PORT, config.HOST, () => {
  lifecycle.serving();
  logger.info({ url: `http://${config.HOST}:${config.PORT}`, analyzer: ctx.analyzer.name }, 'api listening');
});
// A sync request may legitimately run for the whole sync budget; large uploads take a while too.
// `Expect: 100-continue` (curl sends it for large bodies): refuse an oversized upload before the
// client sends a byte of it.
server.on('checkContinue', (req, res) => {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > maxRequestBytes(config.MAX_UPLOAD_BYTES)) {
    res.setHeader('Connection', 'close');
    sendProblem(res, tooLarge(config.MAX_UPLOAD_BYTES), req.url);
    return;
  }
  res.writeContinue();
  server.emit('request', req, res);
});
server.requestTimeout = config.SYNC_TIMEOUT_MS + 120_000;
// Idle connections outlive the load balancer's idle timeout, so the balancer closes them first and
// never sends a request on a socket the API is closing (a 502); headers must arrive within it too.
server.keepAliveTimeout = config.KEEP_ALIVE_TIMEOUT_MS;
server.headersTimeout = config.KEEP_ALIVE_TIMEOUT_MS + 5_000;

// PDF parsing and NLP run in worker threads, so nothing here should reject unhandled; if something
// does, log it and keep serving rather than dropping every in-flight request.
process.on('unhandledRejection', (reason) => logger.error({ err: reason }, 'unhandled rejection'));

// Lifecycle (./lifecycle.ts, docs/lifecycle.md): serving -> draining -> handing-off -> stopped.
let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  lifecycle.draining();
  logger.info({ signal, drainMs: config.API_DRAIN_MS }, 'shutting down: no new uploads; sync requests may finish');
  const handOff = setTimeout(() => {
    logger.info('drain time over: running sync requests hand off to the async path');
    lifecycle.handingOff();
  }, config.API_DRAIN_MS);
  // A hand-off writes a few objects and rows; past this bound the reconciler resumes the job.
  const force = setTimeout(() => {
    logger.warn('grace period over; closing remaining connections');
    server.closeAllConnections();
  }, config.API_DRAIN_MS + 15_000);
  handOff.unref();
  force.unref();
  server.close(() => {
    clearTimeout(handOff);
    lifecycle.stopped();
    void Promise.allSettled([closePipelineContext(ctx), tracing.shutdown()]).finally(() => {
      logger.info('stopped');
      process.exit(0);
    });
  });
  server.closeIdleConnections();
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
