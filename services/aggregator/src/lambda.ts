/**
 * AWS Lambda entry (`dist/lambda.handler`): builds the pipeline context once per container.
 */
import type { DynamoDBBatchResponse, DynamoDBStreamEvent } from 'aws-lambda';
import { createLogger, createPipelineContext, loadConfig, unavailableExtractor } from '@docorch/core';
import { createStreamHandler, type StreamHandler } from './handler.js';

let handle: StreamHandler | undefined;

function init(): StreamHandler {
  const config = loadConfig();
  const logger = createLogger({ service: 'aggregator', level: config.LOG_LEVEL });
  const ctx = createPipelineContext(config, logger, {
    extractor: unavailableExtractor('the aggregator does not parse PDFs'),
  });
  return createStreamHandler(ctx, { owner: (context) => context?.awsRequestId ?? `lambda-${process.pid}` });
}

export async function handler(event: DynamoDBStreamEvent, context?: { awsRequestId?: string }): Promise<DynamoDBBatchResponse> {
  handle ??= init();
  return handle(event, context);
}
