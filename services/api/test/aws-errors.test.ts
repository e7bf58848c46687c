/**
 * AWS throttling and unavailability answer 503 with Retry-After, never a bare 500 (issue 10,
 * point 5): the API app in process on the real emulators, with SDK middleware on the real
 * DynamoDB connection that fails the status table's reads with the error DynamoDB sends when it
 * throttles (ProvisionedThroughputExceededException) or a 500 (InternalServerError).
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { InternalServerError, ProvisionedThroughputExceededException } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closePipelineContext, createLogger, createPipelineContext, loadConfig, toDocorchError, unavailableExtractor, type PipelineContext } from '@docorch/core';
import { createApp } from '../src/app.js';
import { problemBody, seedTenant } from './helpers.js';

describe('AWS errors in the API', () => {
  let ctx: PipelineContext;
  let server: Server;
  let baseUrl: string;
  let tenant: { tenantId: string; apiKey: string };
  let fault: 'throttle' | 'unavailable' | undefined;

  beforeAll(async () => {
    tenant = await seedTenant('awserr');
    const config = loadConfig({ ...process.env, LOG_LEVEL: 'silent' });
    ctx = createPipelineContext(config, createLogger({ service: 'api-test', level: 'silent' }), { extractor: unavailableExtractor('not needed') });
    // Fails GetItem on the status table while a fault is set; every other call goes through.
    ctx.aws.dynamodb.middlewareStack.add(
      (next, context) => async (args) => {
        const input = args.input as { TableName?: string };
        if (fault && context.commandName === 'GetItemCommand' && input.TableName === config.STATUS_TABLE) {
          const meta = { $metadata: { httpStatusCode: fault === 'throttle' ? 400 : 500 } };
          throw fault === 'throttle'
            ? new ProvisionedThroughputExceededException({ message: 'The level of configured provisioned throughput for the table was exceeded.', ...meta })
            : new InternalServerError({ message: 'Internal server error', ...meta });
        }
        return next(args);
      },
      { step: 'initialize', name: 'injectFault' },
    );
    const app = createApp(ctx);
    await new Promise<void>((resolve) => {
      server = app.listen(0, '127.0.0.1', () => resolve());
    });
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => server?.close(() => resolve()));
    if (ctx) await closePipelineContext(ctx);
  });

  const get = (id: string) => fetch(`${baseUrl}/v1/documents/${id}`, { headers: { authorization: `Bearer ${tenant.apiKey}` } });

  it('answers 503 UPSTREAM_UNAVAILABLE with Retry-After when DynamoDB throttles or fails, 404 once it recovers', async () => {
    fault = 'throttle';
    const throttled = await get('0mdoesnotexist0000000000000000000000');
    expect(throttled.status).toBe(503);
    expect(Number(throttled.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    const body = await problemBody(throttled);
    expect(body.code).toBe('UPSTREAM_UNAVAILABLE');
    expect(body.detail).not.toMatch(/provisioned throughput/i); // the dependency's own message stays in the logs

    fault = 'unavailable';
    const failing = await get('0mdoesnotexist0000000000000000000000');
    expect(failing.status).toBe(503);
    expect(failing.headers.get('retry-after')).not.toBeNull();

    fault = undefined;
    expect((await get('0mdoesnotexist0000000000000000000000')).status).toBe(404);
  });

  it('classifies SDK errors by kind: throttling and 5xx and network are UPSTREAM_UNAVAILABLE, the rest unchanged', () => {
    const throttle = new ProvisionedThroughputExceededException({ message: 'x', $metadata: { httpStatusCode: 400 } });
    expect(toDocorchError(throttle)).toMatchObject({ code: 'UPSTREAM_UNAVAILABLE', retryAfterMs: 1_000 });
    expect(toDocorchError(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' })).code).toBe('UPSTREAM_UNAVAILABLE');
    expect(toDocorchError(Object.assign(new Error('SlowDown'), { name: 'SlowDown', $metadata: { httpStatusCode: 503 } })).code).toBe('UPSTREAM_UNAVAILABLE');
    const validation = Object.assign(new Error('One or more parameter values were invalid'), { name: 'ValidationException', $metadata: { httpStatusCode: 400 }, $fault: 'client' });
    expect(toDocorchError(validation).code).toBe('INTERNAL');
    expect(toDocorchError(new Error('a bug')).code).toBe('INTERNAL');
  });
});
