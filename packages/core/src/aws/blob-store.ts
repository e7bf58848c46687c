/**
 * Object storage over S3. Uploads stream through @aws-sdk/lib-storage (multipart above 5 MiB,
 * bounded memory); nothing here buffers a whole upload.
 */
import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  NoSuchKey,
  NotFound,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { createWriteStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/** Options of {@link BlobStore.upload}. */
export interface UploadOptions {
  contentType?: string;
  /** User metadata (x-amz-meta-*); ASCII only. */
  metadata?: Record<string, string>;
  /** Parts uploaded in parallel. @defaultValue 4 */
  queueSize?: number;
  /** Part size in bytes (S3 minimum 5 MiB). @defaultValue 8 MiB */
  partSize?: number;
}

/** S3 adapter. Every method takes the bucket explicitly: uploads and results live apart. */
export class BlobStore {
  constructor(private readonly s3: S3Client) {}

  /** Streams `body` to S3 (multipart when large). Memory stays at about queueSize x partSize. */
  async upload(bucket: string, key: string, body: Readable | Buffer | string, options: UploadOptions = {}): Promise<void> {
    const upload = new Upload({
      client: this.s3,
      params: {
        Bucket: bucket,
        Key: key,
        Body: body,
        ContentType: options.contentType,
        Metadata: options.metadata,
      },
      queueSize: options.queueSize ?? 4,
      partSize: options.partSize ?? 8 * 1024 * 1024,
      leavePartsOnError: false,
    });
    await upload.done();
  }

  /** Writes a JSON document. */
  async putJson(bucket: string, key: string, value: unknown): Promise<void> {
    await this.s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: key,
        Body: JSON.stringify(value),
        ContentType: 'application/json',
      }),
    );
  }

  /** Reads a JSON document, or `undefined` when the key does not exist. */
  async getJson<T>(bucket: string, key: string): Promise<T | undefined> {
    try {
      const out = await this.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      const text = await out.Body?.transformToString('utf8');
      return text === undefined ? undefined : (JSON.parse(text) as T);
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  }

  /** True when the key exists. */
  async exists(bucket: string, key: string): Promise<boolean> {
    try {
      await this.s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      return true;
    } catch (err) {
      if (isMissing(err)) return false;
      throw err;
    }
  }

  /**
   * Streams an object to a local file (used to hand a stored PDF to the extractor). With `range`,
   * only bytes `[start, end)` of the object, written at the same offsets into the existing file.
   * @defaultValue the whole object, replacing the file
   */
  async downloadToFile(bucket: string, key: string, filePath: string, options: { range?: { start: number; end: number } } = {}): Promise<void> {
    const range = options.range;
    if (range && range.end <= range.start) return;
    const out = await this.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, ...(range ? { Range: `bytes=${range.start}-${range.end - 1}` } : {}) }));
    if (!out.Body) throw new Error(`Empty body for s3://${bucket}/${key}`);
    const file = range ? createWriteStream(filePath, { flags: 'r+', start: range.start }) : createWriteStream(filePath, { mode: 0o600 });
    await pipeline(out.Body as Readable, file);
    if (range && file.bytesWritten !== range.end - range.start) {
      throw new Error(`s3://${bucket}/${key}: bytes ${range.start}-${range.end} answered ${file.bytesWritten} bytes`);
    }
  }

  /** Deletes one object (absent is fine). */
  async deleteObject(bucket: string, key: string): Promise<void> {
    await this.s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
  }

  /** Deletes every object under a prefix (paged); returns how many were deleted. */
  async deletePrefix(bucket: string, prefix: string): Promise<number> {
    let deleted = 0;
    let token: string | undefined;
    do {
      const page = await this.s3.send(
        new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
      );
      const keys = (page.Contents ?? []).flatMap((o) => (o.Key ? [{ Key: o.Key }] : []));
      if (keys.length > 0) {
        await this.s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys, Quiet: true } }));
        deleted += keys.length;
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return deleted;
  }
}

function isMissing(err: unknown): boolean {
  return (
    err instanceof NoSuchKey ||
    err instanceof NotFound ||
    (err instanceof Error && (err.name === 'NoSuchKey' || err.name === 'NotFound'))
  );
}
