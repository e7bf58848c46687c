/** Readiness: every dependency the API needs answers within a short timeout. */
import { HeadBucketCommand } from '@aws-sdk/client-s3';
import { DescribeTableCommand } from '@aws-sdk/client-dynamodb';
import type { PipelineContext } from '@docorch/core';

/** Readiness report; `ready` only when every check passed. */
export interface ReadinessReport {
  ready: boolean;
  checks: Record<string, 'ok' | string>;
}

const TIMEOUT_MS = 2_000;

async function check(fn: (signal: AbortSignal) => Promise<unknown>): Promise<'ok' | string> {
  try {
    await fn(AbortSignal.timeout(TIMEOUT_MS));
    return 'ok';
  } catch (err) {
    return err instanceof Error ? `${err.name}: ${err.message}`.slice(0, 200) : 'failed';
  }
}

export async function checkReadiness(ctx: PipelineContext): Promise<ReadinessReport> {
  const { s3, dynamodb } = ctx.aws;
  const entries = await Promise.all([
    ['uploadsBucket', check((abortSignal) => s3.send(new HeadBucketCommand({ Bucket: ctx.config.UPLOADS_BUCKET }), { abortSignal }))],
    ['resultsBucket', check((abortSignal) => s3.send(new HeadBucketCommand({ Bucket: ctx.config.RESULTS_BUCKET }), { abortSignal }))],
    ['statusTable', check((abortSignal) => dynamodb.send(new DescribeTableCommand({ TableName: ctx.config.STATUS_TABLE }), { abortSignal }))],
    ['tenantsTable', check((abortSignal) => dynamodb.send(new DescribeTableCommand({ TableName: ctx.config.TENANTS_TABLE }), { abortSignal }))],
  ] as const);
  const checks = Object.fromEntries(await Promise.all(entries.map(async ([k, p]) => [k, await p] as const)));
  return { ready: Object.values(checks).every((v) => v === 'ok'), checks };
}
