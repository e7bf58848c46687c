/**
 * The S3 client sends object bodies unsigned (`x-amz-content-sha256: UNSIGNED-PAYLOAD`) over TLS
 * and to an endpoint on this machine, and signs them everywhere else (aws/clients.ts
 * unsignedBulkPayloads): checked on the signed request as it leaves the SDK, with the bytes
 * read back from the S3 emulator; a plain-HTTP endpoint off this machine is only looked at, the
 * request stopped before it is sent.
 */
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlobStore, createAwsClients, loadConfig, unsignedBulkPayloads, type AwsClients, type Config } from '@docorch/core';
import { createIsolatedResources, type IsolatedResources } from '@docorch/testkit';

type Capture = Record<string, string | undefined>;

/** Records the payload hash header of each command as signed, just before it is sent. */
function capture(client: S3Client, into: Capture, stop = false): void {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const request = args.request as { headers: Record<string, string> };
      into[context.commandName ?? '?'] = request.headers['x-amz-content-sha256'];
      if (stop) throw new Error('stopped before sending');
      return next(args);
    },
    { step: 'deserialize', name: 'capturePayloadHash' },
  );
}

describe('S3 object bodies and their SigV4 payload hash', () => {
  let resources: IsolatedResources;
  let config: Config;
  let aws: AwsClients;

  beforeAll(async () => {
    resources = await createIsolatedResources({ prefix: 'unsigned', shardCount: 1 });
    config = loadConfig({ ...process.env, ...resources.names });
    aws = createAwsClients(config);
  });

  afterAll(async () => {
    aws?.destroy();
    await resources?.cleanup();
  });

  it('sends bodies unsigned to the emulator on loopback, in one request and in parts, and stores them intact', { timeout: 60_000 }, async () => {
    const seen: Capture = {};
    capture(aws.s3, seen);
    const small = Buffer.from('%PDF-1.7 small body');
    await aws.s3.send(new PutObjectCommand({ Bucket: config.UPLOADS_BUCKET, Key: 'small.pdf', Body: small }));
    const large = Buffer.alloc(11 * 1024 * 1024);
    for (let i = 0; i < large.length; i += 4096) large.writeUInt32BE(i, i);
    await new BlobStore(aws.s3).upload(config.UPLOADS_BUCKET, 'large.pdf', Readable.from([large]), { partSize: 5 * 1024 * 1024 });
    expect(seen['PutObjectCommand']).toBe('UNSIGNED-PAYLOAD');
    expect(seen['UploadPartCommand']).toBe('UNSIGNED-PAYLOAD');
    // Everything else keeps its signed payload hash.
    expect(seen['CreateMultipartUploadCommand']).toMatch(/^[0-9a-f]{64}$/);
    expect(seen['CompleteMultipartUploadCommand']).toMatch(/^[0-9a-f]{64}$/);
    const read = async (key: string) => Buffer.from(await (await aws.s3.send(new GetObjectCommand({ Bucket: config.UPLOADS_BUCKET, Key: key }))).Body!.transformToByteArray());
    expect((await read('small.pdf')).equals(small)).toBe(true);
    expect((await read('large.pdf')).equals(large)).toBe(true);
  });

  it('signs bodies sent over plain HTTP to another machine, and leaves them unsigned over TLS', async () => {
    for (const [endpoint, expected] of [
      ['http://198.51.100.7:9000', /^[0-9a-f]{64}$/],
      ['https://198.51.100.7', /^UNSIGNED-PAYLOAD$/],
    ] as const) {
      const client = new S3Client({ region: 'us-east-1', endpoint, forcePathStyle: true, credentials: { accessKeyId: 'x', secretAccessKey: 'y' }, requestChecksumCalculation: 'WHEN_REQUIRED', maxAttempts: 1 });
      unsignedBulkPayloads(client);
      const seen: Capture = {};
      capture(client, seen, true); // looked at, never sent: no connection leaves this machine
      await expect(client.send(new PutObjectCommand({ Bucket: 'b', Key: 'k', Body: Buffer.from('body') }))).rejects.toThrow('stopped before sending');
      expect(seen['PutObjectCommand']).toMatch(expected);
      client.destroy();
    }
  });
});
