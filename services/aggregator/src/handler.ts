/**
 * The aggregator: a Lambda handler for the status table's DynamoDB Stream (or the local poller,
 * which builds the same event shape). A JOB row whose chunks are all counted triggers the final
 * assembly; a JOB row entering a terminal status schedules its webhooks (pipeline/webhooks.ts); records that fail are returned in `batchItemFailures` (ReportBatchItemFailures) so
 * the event source retries just those, and one poison record never blocks the rest.
 */
import { unmarshall } from '@aws-sdk/util-dynamodb';
import type { AttributeValue as LambdaAttributeValue, DynamoDBBatchResponse, DynamoDBRecord, DynamoDBStreamEvent } from 'aws-lambda';
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import {
  assembleJob,
  assemblyOwnerFor,
  assembleOptionsFrom,
  isReadyToAssemble,
  isTerminalTransition,
  scheduleWebhooks,
  SpanKind,
  toDocorchError,
  withSpan,
  type Job,
  type PipelineContext,
} from '@docorch/core';

/** Options of {@link createStreamHandler}. */
export interface StreamHandlerOptions {
  /**
   * Claim owner of a ready job. @defaultValue {@link assemblyOwnerFor} the job row (stable across
   * retries of the record, whatever the invocation)
   */
  owner?: (job: Job) => string;
  /** Assembly claims older than this may be taken over. @defaultValue 900000 */
  staleAfterMs?: number;
}

/** The handler's signature (Lambda's, with an optional context). */
export type StreamHandler = (event: DynamoDBStreamEvent, context?: { awsRequestId?: string }) => Promise<DynamoDBBatchResponse>;

/** The job row of a stream record's image, if the record is of a JOB row. */
function jobIn(image: { [key: string]: LambdaAttributeValue } | undefined): Job | undefined {
  if (!image) return undefined;
  const item = unmarshall(image as unknown as Record<string, AttributeValue>) as Record<string, unknown>;
  if (item.sk !== 'JOB') return undefined;
  const job = item as unknown as Job;
  if (typeof job.tenantId !== 'string' || typeof job.documentId !== 'string') {
    throw new Error('JOB row without tenantId/documentId');
  }
  return job;
}

/** The job a stream record shows ready for assembly, if any. */
export function jobReadyIn(record: DynamoDBRecord): Job | undefined {
  const job = jobIn(record.dynamodb?.NewImage);
  return job && isReadyToAssemble(job) ? job : undefined;
}

/** The job a stream record shows entering a terminal status (its webhooks are due), if any. */
export function jobFinishedIn(record: DynamoDBRecord): Job | undefined {
  const job = jobIn(record.dynamodb?.NewImage);
  if (!job) return undefined;
  return isTerminalTransition(jobIn(record.dynamodb?.OldImage), job) ? job : undefined;
}

/** Builds the handler over a pipeline context. */
export function createStreamHandler(ctx: PipelineContext, options: StreamHandlerOptions = {}): StreamHandler {
  const ownerOf = options.owner ?? assemblyOwnerFor;
  return async (event) => {
    const failures: DynamoDBBatchResponse['batchItemFailures'] = [];
    const done = new Set<string>();
    for (const record of event.Records) {
      const id = record.dynamodb?.SequenceNumber ?? record.eventID ?? '';
      try {
        // A terminal transition schedules the document's webhooks (idempotent on a retried record).
        const finished = jobFinishedIn(record);
        if (finished) await scheduleWebhooks(ctx, finished);
        const job = jobReadyIn(record);
        if (!job) continue;
        const key = `${job.tenantId}#${job.documentId}`;
        if (done.has(key)) continue; // several records of one job in a batch: assemble once
        done.add(key);
        // The assembly continues the document's trace (the job row carries the admitting request's traceparent).
        const attributes = { 'docorch.tenant_id': job.tenantId, 'docorch.document_id': job.documentId };
        const stop = ctx.metrics.assemblySeconds.startTimer();
        const outcome = await withSpan('document.assemble', { parent: job, attributes, kind: SpanKind.CONSUMER }, () =>
          assembleJob(ctx, job.tenantId, job.documentId, {
            owner: ownerOf(job),
            ...assembleOptionsFrom(ctx.config),
            ...(options.staleAfterMs !== undefined ? { staleAfterMs: options.staleAfterMs } : {}),
          }),
        ).catch((err: unknown) => {
          ctx.metrics.assemblies.inc({ outcome: 'error' });
          throw err;
        });
        if (outcome.kind === 'assembled') {
          stop();
          ctx.metrics.assemblies.inc({ outcome: outcome.result.status });
        }
      } catch (err) {
        const e = toDocorchError(err);
        (e.code === 'CONFLICT' ? ctx.logger.info.bind(ctx.logger) : ctx.logger.error.bind(ctx.logger))(
          { err: e, code: e.code, sequenceNumber: id },
          'stream record not handled; reporting it for retry',
        );
        failures.push({ itemIdentifier: id });
      }
    }
    return { batchItemFailures: failures };
  };
}

export type { LambdaAttributeValue };
