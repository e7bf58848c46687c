/**
 * The API's local copy of a large upload keeps its ends only (pipeline/local-copy.ts
 * PartialCopyWriter): for any size, head and tail size and chunking, every byte outside the gap it
 * reports is the source's byte at that offset, the file has the source's size, the gap is exactly
 * what is missing (none when head and tail cover the file), and the gap is a hole on disk.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PartialCopyWriter } from '../src/pipeline/local-copy.js';
import { seededRandom } from './helpers/manual-time.js';

describe('PartialCopyWriter', () => {
  let dir: string;
  let n = 0;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'docorch-local-copy-'));
  });

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Streams `source` in the given chunk sizes (cycled) and returns the writer and the file's bytes. */
  async function copy(source: Buffer, headBytes: number, tailBytes: number, chunkSizes: number[]): Promise<{ writer: PartialCopyWriter; file: Buffer; blocks: number }> {
    const target = path.join(dir, `copy-${n++}.pdf`);
    const chunks: Buffer[] = [];
    for (let at = 0, i = 0; at < source.length; i++) {
      const size = Math.max(1, chunkSizes[i % chunkSizes.length]!);
      chunks.push(source.subarray(at, at + size));
      at += size;
    }
    const writer = new PartialCopyWriter(target, { headBytes, tailBytes });
    await pipeline(Readable.from(chunks), writer);
    const file = await readFile(target);
    const { blocks } = await stat(target);
    await rm(target);
    return { writer, file, blocks };
  }

  function expectFaithful(source: Buffer, result: { writer: PartialCopyWriter; file: Buffer }, headBytes: number, tailBytes: number): void {
    const { writer, file } = result;
    expect(file.length).toBe(source.length);
    expect(writer.bytes).toBe(source.length);
    const missing = source.length - headBytes - tailBytes;
    if (missing > 0) expect(writer.gap).toEqual({ start: headBytes, end: headBytes + missing });
    else expect(writer.gap).toBeUndefined();
    const gap = writer.gap ?? { start: source.length, end: source.length };
    expect(file.subarray(0, gap.start).equals(source.subarray(0, gap.start))).toBe(true);
    expect(file.subarray(gap.end).equals(source.subarray(gap.end))).toBe(true);
    // A hole reads as zeros.
    expect(file.subarray(gap.start, gap.end).equals(Buffer.alloc(gap.end - gap.start))).toBe(true);
  }

  it('keeps every byte outside the gap, for sizes around the head and tail bounds and any chunking', async () => {
    const random = seededRandom(42);
    const head = 1000;
    const tail = 700;
    const sizes = [0, 1, 999, 1000, 1001, 1699, 1700, 1701, 2400, 5000, 20_000];
    const chunkings = [[1], [7, 300, 2], [699, 700, 701], [4096], [100_000]];
    for (const size of sizes) {
      const source = Buffer.from(Array.from({ length: size }, () => Math.floor(random() * 255) + 1));
      for (const chunking of chunkings) expectFaithful(source, await copy(source, head, tail, chunking), head, tail);
    }
    // Random chunkings.
    for (let round = 0; round < 20; round++) {
      const size = Math.floor(random() * 10_000);
      const source = Buffer.from(Array.from({ length: size }, () => Math.floor(random() * 255) + 1));
      const chunking = Array.from({ length: 5 }, () => 1 + Math.floor(random() * 2000));
      expectFaithful(source, await copy(source, head, tail, chunking), head, tail);
    }
  });

  it('keeps no tail with tailBytes 0, and everything when the head covers the file', async () => {
    const source = randomBytes(10_000);
    expectFaithful(source, await copy(source, 4096, 0, [1000]), 4096, 0);
    expectFaithful(source, await copy(source, 10_000, 0, [333]), 10_000, 0);
  });

  it('leaves the gap of a large file as a hole: its disk blocks cover the ends, not the file', async () => {
    const source = Buffer.alloc(64 << 20, 7);
    const result = await copy(source, 1 << 20, 1 << 20, [64 * 1024]);
    expectFaithful(source, result, 1 << 20, 1 << 20);
    // stat's blocks are 512-byte units; the ends are 2 MiB (4096 blocks), plus filesystem slack.
    expect(result.blocks * 512).toBeLessThan(8 << 20);
  });
});
