/**
 * The API's local copy of an upload, which the PDF workers read. The whole file goes to the
 * uploads bucket as it arrives (./submission.ts stageSource); a file for the async path is then only
 * inspected here (page count, encryption, title), and for that PDFium reads a few kilobytes: the
 * trailer and cross-reference table at the end, the catalog and page tree, usually near one end.
 * Writing every byte to disk as well cost a fifth of the upload's throughput (bench:upload), so
 * past its first `headBytes` the copy keeps only the last `tailBytes` and leaves a hole between
 * (a {@link FileGap}). The gap is filled from the staged object, by one ranged read, only when the
 * inspection needed its bytes or the file goes to the sync path, which extracts every page.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { sourceKey } from '../aws/object-keys.js';
import { DocorchError } from '../errors.js';
import { FileGapError, type FileGap, type InspectOptions, type PdfInfo } from '../pdf/types.js';
import type { PipelineContext } from './context.js';
import type { Submission } from './submission.js';

/** What {@link PartialCopyWriter} keeps of a large file. */
export interface PartialCopyOptions {
  /** Bytes kept from the start: a file up to this size (plus `tailBytes`) is kept whole. */
  headBytes: number;
  /**
   * Bytes kept from the end (held in memory until the end is known). @defaultValue
   * {@link DEFAULT_TAIL_BYTES}
   */
  tailBytes?: number;
}

/**
 * The end kept of a large upload: the last cross-reference section and trailer of nearly every
 * PDF fit in it (a classic table takes 20 bytes per object: 4 MiB is about 200,000 objects).
 */
export const DEFAULT_TAIL_BYTES = 4 << 20;

/**
 * Writes a stream to a file, keeping its first `headBytes` and its last `tailBytes` and leaving
 * the bytes between as a hole (the file has its full size; {@link PartialCopyWriter.gap} says
 * which bytes are missing). It holds `tailBytes` of memory (one buffer, once past the head).
 */
export class PartialCopyWriter extends Writable {
  private handle: FileHandle | undefined;
  private received = 0;
  /** The last bytes past the head, copied into one buffer used as a ring (no chunk is retained). */
  private ring: Buffer | undefined;
  private readonly headBytes: number;
  private readonly tailBytes: number;
  private missing: FileGap | undefined;

  constructor(
    private readonly filePath: string,
    options: PartialCopyOptions,
  ) {
    super();
    this.headBytes = options.headBytes;
    this.tailBytes = options.tailBytes ?? DEFAULT_TAIL_BYTES;
  }

  /** Bytes written to the stream. */
  get bytes(): number {
    return this.received;
  }

  /** After 'finish': the bytes not on disk, or undefined when the file is whole. */
  get gap(): FileGap | undefined {
    return this.missing;
  }

  override _construct(callback: (error?: Error | null) => void): void {
    open(this.filePath, 'w', 0o600).then(
      (handle) => {
        this.handle = handle;
        callback();
      },
      (err: Error) => callback(err),
    );
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const at = this.received;
    this.received += chunk.length;
    const head = at < this.headBytes ? chunk.subarray(0, this.headBytes - at) : chunk.subarray(0, 0);
    if (head.length < chunk.length) this.keepTail(chunk.subarray(head.length), at + head.length);
    if (head.length === 0) {
      callback();
      return;
    }
    this.writeAt(head, at).then(() => callback(), (err: Error) => callback(err));
  }

  /** Copies `bytes` (at file offset `at`, past the head) into the ring, where offset o sits at o % tailBytes. */
  private keepTail(bytes: Buffer, at: number): void {
    if (this.tailBytes === 0) return;
    this.ring ??= Buffer.allocUnsafeSlow(this.tailBytes);
    // Only the last tailBytes of a chunk larger than the ring can survive.
    const from = Math.max(0, bytes.length - this.tailBytes);
    for (let i = from; i < bytes.length; ) {
      const slot = (at + i) % this.tailBytes;
      const n = Math.min(bytes.length - i, this.tailBytes - slot);
      bytes.copy(this.ring, slot, i, i + n);
      i += n;
    }
  }

  override _final(callback: (error?: Error | null) => void): void {
    const tailStart = Math.max(this.headBytes, this.received - this.tailBytes);
    this.missing = tailStart > this.headBytes ? { start: this.headBytes, end: tailStart } : undefined;
    (async () => {
      const ring = this.ring;
      // In file order: from tailStart to the ring's end slot, then from its start.
      for (let at = tailStart; ring && at < this.received; ) {
        const slot = at % this.tailBytes;
        const n = Math.min(this.received - at, this.tailBytes - slot);
        await this.writeAt(ring.subarray(slot, slot + n), at);
        at += n;
      }
      this.ring = undefined;
      // Sets the size when nothing past the hole was written (an empty tail).
      await this.handle?.truncate(this.received);
      await this.closeHandle();
    })().then(() => callback(), (err: Error) => callback(err));
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.ring = undefined;
    this.closeHandle().then(() => callback(error), () => callback(error));
  }

  private async writeAt(buffer: Buffer, position: number): Promise<void> {
    for (let done = 0; done < buffer.length; ) {
      const { bytesWritten } = await this.handle!.write(buffer, done, buffer.length - done, position + done);
      done += bytesWritten;
    }
  }

  private async closeHandle(): Promise<void> {
    const handle = this.handle;
    this.handle = undefined;
    await handle?.close();
  }
}

type CopyContext = Pick<PipelineContext, 'blobs' | 'config' | 'logger'>;

/**
 * Fills the gap of a submission's local copy from its staged object (one ranged read, written in
 * place) and returns the submission without a gap; returns it as is when it has none.
 */
export async function wholeLocalCopy(ctx: CopyContext, sub: Submission): Promise<Submission> {
  const gap = sub.gap;
  if (!gap) return sub;
  if (!sub.staged) throw new DocorchError('INTERNAL', 'A local copy with a gap has no staged object to fill it from');
  const started = Date.now();
  await sub.staged.done;
  await ctx.blobs.downloadToFile(ctx.config.UPLOADS_BUCKET, sourceKey(sub.tenantId, sub.staged.documentId), sub.filePath, { range: gap });
  ctx.logger.info(
    { tenantId: sub.tenantId, documentId: sub.staged.documentId, gapBytes: gap.end - gap.start, ms: Date.now() - started },
    'filled the local copy of an upload from its staged object',
  );
  const { gap: _filled, ...whole } = sub;
  return whole;
}

/**
 * Inspects a submission's file; when the inspection needed bytes of its gap, fills the gap
 * ({@link wholeLocalCopy}) and inspects again. Returns the info and the submission as it now is.
 */
export async function inspectSubmission(
  ctx: CopyContext & Pick<PipelineContext, 'extractor'>,
  sub: Submission,
  options: Omit<InspectOptions, 'gap'> = {},
): Promise<{ info: PdfInfo; sub: Submission }> {
  if (sub.gap) {
    try {
      return { info: await ctx.extractor.inspect(sub.filePath, { ...options, gap: sub.gap }), sub };
    } catch (err) {
      if (!(err instanceof FileGapError)) throw err;
    }
    sub = await wholeLocalCopy(ctx, sub);
  }
  return { info: await ctx.extractor.inspect(sub.filePath, options), sub };
}
