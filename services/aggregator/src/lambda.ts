/**
 * AWS Lambda entry (`dist/lambda.handler`, bundled by esbuild into the zip Terraform deploys):
 * builds the pipeline context once per container. After each invocation it writes the metrics
 * as CloudWatch Embedded Metric Format lines (nothing scrapes a Lambda) and flushes its spans.
 */
import type { DynamoDBBatchResponse, DynamoDBStreamEvent } from 'aws-lambda';
import { createPipelineContext, EmfPublisher, resolveSecrets, startProcess, unavailableExtractor, type Tracing } from '@docorch/core';
import { createStreamHandler, type StreamHandler } from './handler.js';

type State = { handle: StreamHandler; emf: EmfPublisher; tracing: Tracing };
let state: Promise<State> | undefined;

async function init(): Promise<State> {
  const basics = startProcess('aggregator');
  const { logger, metrics, tracing } = basics;
  // With Gemini, the key comes from Secrets Manager (GEMINI_API_KEY_SECRET_ARN), read once per container.
  const config = await resolveSecrets(basics.config);
  const ctx = createPipelineContext(config, logger, {
    extractor: unavailableExtractor('the aggregator does not parse PDFs'),
    metrics,
  });
  // The claim owner derives from the job, not the request id: a retried batch resumes its claim at once.
  const handle = createStreamHandler(ctx);
  return { handle, emf: new EmfPublisher(metrics.registry, { namespace: config.METRICS_NAMESPACE }), tracing };
}

export async function handler(event: DynamoDBStreamEvent, _context?: { awsRequestId?: string }): Promise<DynamoDBBatchResponse> {
  // A failed start (e.g. the secret unreadable) is retried by the next invocation, not cached.
  state ??= init().catch((err: unknown) => {
    state = undefined;
    throw err;
  });
  const { handle, emf, tracing } = await state;
  try {
    return await handle(event);
  } finally {
    await Promise.allSettled([emf.flush(), tracing.flush()]);
  }
}
