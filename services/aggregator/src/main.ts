/**
 * Local aggregator process (the stack's stand-in for Lambda + its event source mapping):
 * polls the status table's stream and runs the same handler as dist/lambda.js.
 */
import { closePipelineContext, createPipelineContext, startProcess, unavailableExtractor } from '@docorch/core';
import http from 'node:http';
import { createStreamHandler } from './handler.js';
import { StreamPoller } from './local-poller.js';

const { config, logger, metrics, tracing } = startProcess('aggregator');
const ctx = createPipelineContext(config, logger, {
  extractor: unavailableExtractor('the aggregator does not parse PDFs'),
  metrics,
});
// The claim owner derives from the ready job row: a restarted poller resumes its own claim at once.
const handler = createStreamHandler(ctx);
const poller = new StreamPoller(ctx, handler, { batchSize: 1000 });
poller.start();

// Health and metrics endpoints for the supervisor, Prometheus and tests.
const server = http.createServer((req, res) => {
  if (req.url === '/metrics') {
    void metrics.registry.metrics().then((text) => {
      res.writeHead(200, { 'content-type': metrics.registry.contentType });
      res.end(text);
    });
    return;
  }
  res.writeHead(req.url === '/healthz' ? 200 : 404, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ status: req.url === '/healthz' ? 'ok' : 'not found' }));
});
server.listen(config.PORT, config.HOST, () => logger.info({ port: config.PORT }, 'local aggregator running'));

let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, 'stopping aggregator');
  server.close();
  await poller.stop();
  await Promise.allSettled([closePipelineContext(ctx), tracing.shutdown()]);
  process.exit(0);
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
