/**
 * AWS Lambda entry (`dist/lambda.handler`, bundled by esbuild into the zip Terraform deploys):
 * builds the pipeline context once per container. After each invocation it writes the metrics
 * as CloudWatch Embedded Metric Format lines (nothing scrapes a Lambda) and flushes its spans.
 */
import type { DynamoDBBatchResponse, DynamoDBStreamEvent } from 'aws-lambda';
import { createPipelineContext, EmfPublisher, startProcess, unavailableExtractor, type Tracing } from '@docorch/core';
import { createStreamHandler, type StreamHandler } from './handler.js';

let state: { handle: StreamHandler; emf: EmfPublisher; tracing: Tracing } | undefined;

function init(): NonNullable<typeof state> {
  const { config, logger, metrics, tracing } = startProcess('aggregator');
  const ctx = createPipelineContext(config, logger, {
    extractor: unavailableExtractor('the aggregator does not parse PDFs'),
    metrics,
  });
  const handle = createStreamHandler(ctx, { owner: (context) => context?.awsRequestId ?? `lambda-${process.pid}` });
  return { handle, emf: new EmfPublisher(metrics.registry, { namespace: config.METRICS_NAMESPACE }), tracing };
}

export async function handler(event: DynamoDBStreamEvent, context?: { awsRequestId?: string }): Promise<DynamoDBBatchResponse> {
  state ??= init();
  try {
    return await state.handle(event, context);
  } finally {
    await Promise.allSettled([state.emf.flush(), state.tracing.flush()]);
  }
}
