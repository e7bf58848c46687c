/**
 * Upload intake: multer with a storage engine that streams the file part to a private temp file
 * (for the PDF workers) and, at the same time, to the uploads bucket (core's stageSource), while
 * hashing it and checking the PDF signature in its first bytes. The slower of the two sets the pace;
 * nothing is held in memory beyond a stream buffer, the multipart upload's parts and the kept end of
 * a large file; every multer limit is set. With staging, the temp file of a large upload keeps only
 * its ends (core's PartialCopyWriter): the bucket has the whole file.
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import multer, { type StorageEngine } from 'multer';
import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DocorchError, PartialCopyWriter, type FileGap, type StagedSource } from '@docorch/core';

/** The stored upload (multer's file object plus what we computed while streaming). */
export interface StoredUpload {
  path: string;
  size: number;
  sha256: string;
  originalname: string;
  mimetype: string;
  /** The copy streamed to the uploads bucket while it was received (when staging is on). */
  staged?: StagedSource;
  /** Bytes of `path` not on disk (a large staged upload keeps only its ends locally). */
  gap?: FileGap;
}

/** Where the intake streams a file besides its temp file (the uploads bucket, in the API). */
export interface SourceStaging {
  /** Starts storing `body`, the file's bytes as they pass the signature check. */
  start(req: Request, body: PassThrough): StagedSource;
  /** Deletes what `start` stored unless a document was created from it. */
  discard(req: Request, staged: StagedSource): Promise<void>;
}

type FileInfo = Partial<Express.Multer.File> & { sha256?: string; staged?: StagedSource; gap?: FileGap };

/** PDF readers accept the header anywhere in the first 1024 bytes (ISO 32000 7.5.2 implementation note). */
const SIGNATURE_WINDOW = 1024;
const PDF_SIGNATURE = Buffer.from('%PDF-');

/** Passes bytes through, failing fast with 415 when the first 1 KiB holds no `%PDF-` header. */
class PdfSignatureCheck extends Transform {
  private head = Buffer.alloc(0);
  private checked = false;

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (!this.checked) {
      this.head = Buffer.concat([this.head, chunk]).subarray(0, SIGNATURE_WINDOW);
      if (this.head.indexOf(PDF_SIGNATURE) >= 0) this.checked = true;
      else if (this.head.length >= SIGNATURE_WINDOW) return cb(notPdf());
    }
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    cb(this.checked || this.head.indexOf(PDF_SIGNATURE) >= 0 ? null : notPdf());
  }
}

function notPdf(): DocorchError {
  return new DocorchError('UNSUPPORTED_MEDIA_TYPE', 'The file is not a PDF (no %PDF- header in its first 1024 bytes)');
}

/** multer storage engine: temp file + staged upload + SHA-256 + signature check, in one pass. */
class PdfTempStorage implements StorageEngine {
  constructor(
    private readonly dir: string,
    private readonly staging?: SourceStaging,
    private readonly wholeBytes = 0,
  ) {}

  _handleFile(req: Request, file: Express.Multer.File, cb: (error?: unknown, info?: FileInfo) => void): void {
    const target = path.join(this.dir, `docorch-upload-${randomUUID()}.pdf`);
    const hash = createHash('sha256');
    let size = 0;
    const body = this.staging ? new PassThrough({ highWaterMark: 256 * 1024 }) : undefined;
    const staged = body && this.staging?.start(req, body);
    const meter = new Transform({
      transform(chunk: Buffer, _enc, done) {
        size += chunk.length;
        hash.update(chunk);
        // Back-pressure from the bucket too: the slower of disk and S3 sets the pace.
        if (body && !body.write(chunk)) body.once('drain', () => done(null, chunk));
        else done(null, chunk);
      },
      flush(done) {
        body?.end();
        done();
      },
    });
    // A failed S3 upload stops reading its body: fail the request instead of waiting on it.
    staged?.done.catch((err: unknown) => meter.destroy(err instanceof Error ? err : new Error(String(err))));
    // Only a staged file may have a gap: the bucket holds what the temp file does not.
    const copy = staged ? new PartialCopyWriter(target, { headBytes: this.wholeBytes }) : createWriteStream(target, { mode: 0o600 });
    pipeline(file.stream, new PdfSignatureCheck(), meter, copy)
      .then(() => {
        const gap = copy instanceof PartialCopyWriter ? copy.gap : undefined;
        cb(null, { path: target, size, sha256: hash.digest('hex'), ...(staged ? { staged } : {}), ...(gap ? { gap } : {}) });
      })
      .catch(async (err: unknown) => {
        body?.destroy(err instanceof Error ? err : new Error(String(err)));
        await rm(target, { force: true });
        if (staged) await this.staging?.discard(req, staged).catch(() => undefined);
        cb(err);
      });
  }

  _removeFile(req: Request, file: Express.Multer.File & { staged?: StagedSource }, cb: (error: Error | null) => void): void {
    const staged = file.staged;
    Promise.all([rm(file.path, { force: true }), staged ? this.staging?.discard(req, staged) : undefined]).then(
      () => cb(null),
      (err: unknown) => cb(err as Error),
    );
  }
}

/** Limits of {@link pdfUpload}. */
export interface UploadLimits {
  /** Largest file in bytes. */
  maxBytes: number;
  /** Temp directory. */
  dir: string;
  /** Also stream each file to storage while it is received. @defaultValue temp file only */
  staging?: SourceStaging;
  /**
   * With `staging`: a file larger than this keeps only its first this-many bytes and its last
   * 4 MiB in the temp file (see core's PartialCopyWriter). @defaultValue 0 (ends only)
   */
  wholeBytes?: number;
}

/**
 * Middleware accepting one `file` part. A declared Content-Length over the limit answers 413
 * before any of the body is stored; Node then discards the unread body (never buffering it) so
 * that clients which only read the answer after sending still get the 413. Clients sending
 * `Expect: 100-continue` are refused before they send the body at all (see main.ts).
 */
export function pdfUpload(limits: UploadLimits): RequestHandler {
  const upload = multer({
    storage: new PdfTempStorage(limits.dir, limits.staging, limits.wholeBytes),
    limits: { fileSize: limits.maxBytes, files: 1, fields: 10, parts: 11, fieldSize: 4096, fieldNameSize: 64, headerPairs: 50 },
  }).single('file');
  const maxBody = maxRequestBytes(limits.maxBytes);
  return (req: Request, res: Response, next: NextFunction) => {
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (Number.isFinite(declared) && declared > maxBody) {
      next(tooLarge(limits.maxBytes));
      return;
    }
    if (!req.is('multipart/form-data')) {
      next(new DocorchError('INVALID_REQUEST', 'Send the PDF as multipart/form-data in a part named "file"'));
      return;
    }
    upload(req, res, (err?: unknown) => {
      if (err instanceof multer.MulterError) {
        if (err.code === 'LIMIT_FILE_SIZE') {
          next(tooLarge(limits.maxBytes));
          return;
        }
        next(new DocorchError('INVALID_REQUEST', `Invalid upload: ${err.message}${err.field ? ` (${err.field})` : ''}`, { cause: err }));
        return;
      }
      next(err);
    });
  };
}

/** Largest request body accepted for a file limit: multipart framing adds a little. */
export function maxRequestBytes(maxFileBytes: number): number {
  return maxFileBytes + 64 * 1024;
}

/** The TOO_LARGE error of an upload over the limit. */
export function tooLarge(maxBytes: number): DocorchError {
  return new DocorchError('TOO_LARGE', `The file is larger than the limit of ${maxBytes} bytes`, {
    details: { maxBytes },
  });
}

/** The stored upload of a request after {@link pdfUpload}, or undefined when no file part was sent. */
export function storedUpload(req: Request): StoredUpload | undefined {
  const f = req.file as (Express.Multer.File & FileInfo) | undefined;
  if (!f?.path || !f.sha256) return undefined;
  return { path: f.path, size: f.size, sha256: f.sha256, originalname: f.originalname, mimetype: f.mimetype, ...(f.staged ? { staged: f.staged } : {}), ...(f.gap ? { gap: f.gap } : {}) };
}
