/**
 * AWS SDK v3 clients, configured for real AWS by default and for the local emulators when an
 * endpoint override is set (DESIGN.md section 7 lists the emulator fixes applied here).
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { KinesisClient } from '@aws-sdk/client-kinesis';
import { S3Client } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import http from 'node:http';
import https from 'node:https';
import type { Config } from '../config.js';

/** The clients every service shares. */
export interface AwsClients {
  s3: S3Client;
  dynamodb: DynamoDBClient;
  /** Document client over `dynamodb` (native JS values, undefined attributes removed). */
  doc: DynamoDBDocumentClient;
  kinesis: KinesisClient;
  /** Closes sockets of every client. */
  destroy(): void;
}

type ClientConfig = Pick<Config, 'AWS_REGION' | 'S3_ENDPOINT' | 'DYNAMODB_ENDPOINT' | 'KINESIS_ENDPOINT'> & Partial<Pick<Config, 'FAULT_AWS_ERROR_RATE'>>;

/** The smallest slice of a client that fault injection needs. */
interface WithMiddleware {
  middlewareStack: { add: (mw: (next: (args: unknown) => Promise<unknown>) => (args: unknown) => Promise<unknown>, options: { step: 'finalizeRequest'; priority: 'low'; name: string }) => void };
}

/**
 * Chaos testing only (FAULT_AWS_ERROR_RATE > 0): fails that share of request attempts with a
 * throttling error before it is sent, inside the SDK's retry loop, as real throttling would
 * (the SDK backs off and retries; what survives its attempts reaches the application).
 */
export function injectThrottling(client: WithMiddleware, rate: number, random: () => number = Math.random): void {
  if (!(rate > 0)) return;
  client.middlewareStack.add(
    (next) => async (args) => {
      if (random() < rate) {
        const err = Object.assign(new Error('Rate exceeded (injected by FAULT_AWS_ERROR_RATE)'), {
          name: 'ThrottlingException',
          $fault: 'client',
          $metadata: { httpStatusCode: 400, attempts: 1 },
          $retryable: { throttling: true },
        });
        throw err;
      }
      return next(args);
    },
    { step: 'finalizeRequest', priority: 'low', name: 'docorchFaultInjection' },
  );
}

/** Commands that carry bulk object data (a source of up to MAX_UPLOAD_BYTES goes through them). */
const BULK_COMMANDS = new Set(['PutObjectCommand', 'UploadPartCommand']);

/** The slice of the S3 client the payload middleware needs. */
interface WithBuildMiddleware {
  middlewareStack: {
    add: (
      mw: (next: (args: { request?: unknown }) => Promise<unknown>, context: { commandName?: string }) => (args: { request?: unknown }) => Promise<unknown>,
      options: { step: 'build'; name: string },
    ) => void;
  };
}

/**
 * Object bodies sent over TLS, or to an endpoint on this machine (the emulator), are not hashed
 * for their SigV4 signature (`x-amz-content-sha256: UNSIGNED-PAYLOAD`, which S3 accepts): the
 * signature then covers the headers only, as the Java and Go SDKs sign S3 uploads over HTTPS by
 * default. A tampered body needs a path between the two ends, which TLS and loopback rule out; on
 * real S3 the SDK's default CRC32 checksum still checks the bytes end to end. It saves a SHA-256
 * pass over every uploaded byte (a 500 MB source is about half a CPU-second on these machines).
 */
export function unsignedBulkPayloads(client: WithBuildMiddleware): void {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const request = args.request as { protocol?: string; hostname?: string; headers?: Record<string, string> } | undefined;
      if (request?.headers && BULK_COMMANDS.has(context.commandName ?? '') && (request.protocol === 'https:' || isLoopback(request.hostname))) {
        request.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
      }
      return next(args);
    },
    { step: 'build', name: 'docorchUnsignedBulkPayloads' },
  );
}

function isLoopback(hostname: string | undefined): boolean {
  return hostname === 'localhost' || hostname === '::1' || hostname === '[::1]' || (hostname?.startsWith('127.') ?? false);
}

/** Keep-alive sockets; SDK defaults would cap at 50 sockets per client, too few for a busy worker. */
function httpHandler(maxSockets: number): NodeHttpHandler {
  return new NodeHttpHandler({
    httpAgent: new http.Agent({ keepAlive: true, maxSockets }),
    httpsAgent: new https.Agent({ keepAlive: true, maxSockets }),
    connectionTimeout: 5_000,
    requestTimeout: 60_000,
  });
}

/**
 * Creates the S3, DynamoDB and Kinesis clients.
 * Credentials come from the SDK's default provider chain (env, ECS task role, ...).
 */
export function createAwsClients(config: ClientConfig): AwsClients {
  const region = config.AWS_REGION;
  const s3 = new S3Client({
    region,
    requestHandler: httpHandler(200),
    ...(config.S3_ENDPOINT
      ? {
          endpoint: config.S3_ENDPOINT,
          // s3rver only understands path-style addressing.
          forcePathStyle: true,
          // Otherwise the SDK sends streamed bodies with aws-chunked framing and trailing
          // checksums, which s3rver stores verbatim (silently corrupting the object).
          requestChecksumCalculation: 'WHEN_REQUIRED',
          responseChecksumValidation: 'WHEN_REQUIRED',
        }
      : {}),
  });
  const dynamodb = new DynamoDBClient({
    region,
    requestHandler: httpHandler(200),
    ...(config.DYNAMODB_ENDPOINT ? { endpoint: config.DYNAMODB_ENDPOINT } : {}),
  });
  const doc = DynamoDBDocumentClient.from(dynamodb, {
    marshallOptions: { removeUndefinedValues: true, convertClassInstanceToMap: false },
  });
  // The Kinesis client speaks HTTP/2 by default, which kinesalite rejects; an HTTP/1.1
  // handler works for both kinesalite and real Kinesis (GetRecords/PutRecords are HTTP/1.1 APIs).
  const kinesis = new KinesisClient({
    region,
    requestHandler: httpHandler(100),
    ...(config.KINESIS_ENDPOINT ? { endpoint: config.KINESIS_ENDPOINT } : {}),
  });
  unsignedBulkPayloads(s3 as unknown as WithBuildMiddleware);
  for (const client of [s3, dynamodb, kinesis]) injectThrottling(client as unknown as WithMiddleware, config.FAULT_AWS_ERROR_RATE ?? 0);
  return {
    s3,
    dynamodb,
    doc,
    kinesis,
    destroy() {
      s3.destroy();
      doc.destroy();
      dynamodb.destroy();
      kinesis.destroy();
    },
  };
}
