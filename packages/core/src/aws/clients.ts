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

type ClientConfig = Pick<Config, 'AWS_REGION' | 'S3_ENDPOINT' | 'DYNAMODB_ENDPOINT' | 'KINESIS_ENDPOINT'>;

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
