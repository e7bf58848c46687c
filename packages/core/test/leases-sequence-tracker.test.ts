import { describe, expect, it } from 'vitest';
import { SequenceTracker } from '../src/stream/leases/sequence-tracker.js';
import {
  compareExtendedSequenceNumbers,
  compareSequenceNumbers,
  isValidCheckpoint,
  SentinelCheckpoint,
} from '../src/stream/leases/sequence-number.js';
import { seededRandom } from './helpers/manual-time.js';

// Real Kinesis sequence numbers are ~56 digits: far beyond Number precision.
const BASE = 49_590_338_271_490_256_608_559_692_538_361_571_095_921_575_989_136_588_898n;
const seq = (i: number): string => (BASE + BigInt(i) * 1_000_000_000_000n).toString();

/** The model: the last record of the longest fully completed prefix, in begin order. */
function modelSafe(begun: readonly string[], done: ReadonlySet<string>): string | undefined {
  let safe: string | undefined;
  for (const s of begun) {
    if (!done.has(s)) break;
    safe = s;
  }
  return safe;
}

describe('compareSequenceNumbers', () => {
  it('compares as integers, not strings or floats', () => {
    expect(compareSequenceNumbers('9', '10')).toBeLessThan(0);
    const a = '49590338271490256608559692538361571095921575989136588898';
    const b = '49590338271490256608559692538361571095921575989136588899';
    expect(Number(a)).toBe(Number(b)); // a float cannot tell them apart
    expect(compareSequenceNumbers(a, b)).toBeLessThan(0);
    expect(compareSequenceNumbers(b, a)).toBeGreaterThan(0);
    expect(compareSequenceNumbers(a, a)).toBe(0);
  });

  it('orders sentinels like the KCL: AT_TIMESTAMP < TRIM_HORIZON < LATEST < numbers < SHARD_END', () => {
    const ordered = ['AT_TIMESTAMP', 'TRIM_HORIZON', 'LATEST', '0', '7', seq(1), 'SHARD_END'];
    for (let i = 0; i < ordered.length; i++) {
      for (let j = 0; j < ordered.length; j++) {
        expect(Math.sign(compareSequenceNumbers(ordered[i]!, ordered[j]!))).toBe(Math.sign(i - j));
      }
    }
  });

  it('rejects values that are neither', () => {
    expect(() => compareSequenceNumbers('abc', '1')).toThrow(RangeError);
    expect(() => compareSequenceNumbers('SHARD_END', '-1')).toThrow(RangeError);
    expect(isValidCheckpoint('')).toBe(false);
    expect(isValidCheckpoint('12a')).toBe(false);
    expect(isValidCheckpoint(SentinelCheckpoint.SHARD_END)).toBe(true);
  });

  it('breaks ties on the sub-sequence number', () => {
    expect(compareExtendedSequenceNumbers({ sequenceNumber: '5', subSequenceNumber: 1 }, { sequenceNumber: '5', subSequenceNumber: 2 })).toBe(-1);
    expect(compareExtendedSequenceNumbers({ sequenceNumber: '6', subSequenceNumber: 0 }, { sequenceNumber: '5', subSequenceNumber: 9 })).toBe(1);
  });
});

describe('SequenceTracker', () => {
  it('has no safe checkpoint until the first record completes', () => {
    const t = new SequenceTracker();
    expect(t.safeCheckpoint()).toBeUndefined();
    t.begin(seq(1));
    t.begin(seq(2));
    t.complete(seq(2));
    expect(t.safeCheckpoint()).toBeUndefined();
    expect(t.inFlight).toBe(1);
    expect(t.pending).toBe(2);
    t.complete(seq(1));
    expect(t.safeCheckpoint()).toBe(seq(2));
    expect(t.pending).toBe(0);
  });

  it('advances only to the highest record below which every record is done', () => {
    const t = new SequenceTracker();
    for (let i = 1; i <= 5; i++) t.begin(seq(i));
    t.complete(seq(1));
    t.complete(seq(2));
    t.complete(seq(4));
    t.complete(seq(5));
    expect(t.safeCheckpoint()).toBe(seq(2));
    t.complete(seq(3));
    expect(t.safeCheckpoint()).toBe(seq(5));
  });

  it('keeps the watermark while new records are in flight', () => {
    const t = new SequenceTracker();
    t.begin(seq(1));
    t.complete(seq(1));
    t.begin(seq(2));
    expect(t.safeCheckpoint()).toBe(seq(1));
    expect(t.lastBegun).toBe(seq(2));
    expect(t.isInFlight(seq(2))).toBe(true);
  });

  it('refuses out-of-order begins, unknown and double completions', () => {
    const t = new SequenceTracker();
    t.begin(seq(2));
    expect(() => t.begin(seq(2))).toThrow(RangeError);
    expect(() => t.begin(seq(1))).toThrow(RangeError);
    expect(() => t.begin('LATEST')).toThrow(RangeError);
    expect(() => t.complete(seq(3))).toThrow(RangeError);
    t.complete(seq(2));
    expect(() => t.complete(seq(2))).toThrow(RangeError);
  });

  it('matches the model under random interleavings of begins and completions (property)', () => {
    const violations: string[] = [];
    for (let run = 0; run < 300; run++) {
      const random = seededRandom(run + 1);
      const t = new SequenceTracker();
      const cap = 1 + Math.floor(random() * 16);
      const total = 1 + Math.floor(random() * 300);
      const begun: string[] = [];
      const done = new Set<string>();
      const open: string[] = [];
      let next = 0;
      let previousSafe: string | undefined;
      while (done.size < total) {
        const canBegin = next < total && open.length < cap;
        if (canBegin && (open.length === 0 || random() < 0.5)) {
          // Gaps between sequence numbers are arbitrary in Kinesis.
          const s = seq(next * 3 + Math.floor(random() * 3));
          next++;
          t.begin(s);
          begun.push(s);
          open.push(s);
        } else {
          const [s] = open.splice(Math.floor(random() * open.length), 1);
          t.complete(s!);
          done.add(s!);
        }
        // Plain checks in the hot loop (expect() per step is slow); one assertion per run below.
        const safe = t.safeCheckpoint();
        const expected = modelSafe(begun, done);
        if (safe !== expected) violations.push(`run ${run}: safe ${safe} != model ${expected}`);
        if (t.inFlight !== open.length) violations.push(`run ${run}: inFlight ${t.inFlight} != ${open.length}`);
        if (previousSafe !== undefined && (safe === undefined || compareSequenceNumbers(safe, previousSafe) < 0)) {
          violations.push(`run ${run}: watermark moved back from ${previousSafe} to ${safe}`);
        }
        previousSafe = safe;
      }
      expect(t.safeCheckpoint()).toBe(begun[begun.length - 1]);
      expect(t.pending).toBe(0);
    }
    expect(violations).toEqual([]);
  });

  it('stays linear on long shards (compaction)', () => {
    const t = new SequenceTracker();
    const n = 200_000;
    const started = performance.now();
    for (let i = 0; i < n; i++) {
      t.begin(seq(i));
      if (i >= 8) t.complete(seq(i - 8));
    }
    for (let i = n - 8; i < n; i++) t.complete(seq(i));
    expect(t.safeCheckpoint()).toBe(seq(n - 1));
    expect(performance.now() - started).toBeLessThan(5_000);
  });
});
