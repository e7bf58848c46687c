/**
 * Worker process entry: consumes the stream until SIGTERM, then drains and hands its leases back.
 */
import { closePipelineContext, createPdfExtractor, createPipelineContext, startProcess, warmUp } from '@docorch/core';
import { createWorkerService } from './service.js';

const { config, logger, metrics, tracing } = startProcess('worker');
const ctx = createPipelineContext(config, logger, { extractor: createPdfExtractor(config), metrics });
const service = createWorkerService(ctx, config.WORKER_ID ? { workerId: config.WORKER_ID } : {});
process.on('unhandledRejection', (reason) => logger.error({ err: reason }, 'unhandled rejection'));

await warmUp(ctx);
const port = await service.listen();
await service.worker.run();
service.reconciler.start();
service.webhooks.start();
logger.info({ port, workerId: service.worker.workerId }, 'worker running');

let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, 'draining');
  await service.close();
  await Promise.allSettled([closePipelineContext(ctx), tracing.shutdown()]);
  logger.info('stopped');
  process.exit(0);
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
