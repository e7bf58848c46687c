/**
 * Ordering of Kinesis checkpoints: sequence numbers (decimal strings of up to 128 bits, compared
 * as BigInt, never as strings or floats) and the KCL sentinel checkpoints.
 *
 * Order, as in the KCL's ExtendedSequenceNumber:
 * AT_TIMESTAMP < TRIM_HORIZON < LATEST < every sequence number < SHARD_END.
 */

/** The KCL's sentinel checkpoint values. */
export const SentinelCheckpoint = {
  /** Start at the oldest record still in the shard. */
  TRIM_HORIZON: 'TRIM_HORIZON',
  /** Start after the newest record (only records put from now on). */
  LATEST: 'LATEST',
  /** Start at a timestamp kept elsewhere. */
  AT_TIMESTAMP: 'AT_TIMESTAMP',
  /** Every record of a closed shard was processed: terminal, children may start. */
  SHARD_END: 'SHARD_END',
} as const;

/** One of the sentinel checkpoint values. */
export type SentinelCheckpoint = (typeof SentinelCheckpoint)[keyof typeof SentinelCheckpoint];

/** A checkpoint position: a sequence number or sentinel, plus the KPL sub-sequence number. */
export interface ExtendedSequenceNumber {
  /** Decimal sequence number, or a {@link SentinelCheckpoint}. */
  readonly sequenceNumber: string;
  /** Position inside an aggregated (KPL) record; 0 for plain records. */
  readonly subSequenceNumber: number;
}

// Sentinels sort below every real sequence number (which are >= 0), as in the KCL.
const SENTINEL_RANK: Readonly<Record<string, bigint>> = {
  AT_TIMESTAMP: -3n,
  TRIM_HORIZON: -2n,
  LATEST: -1n,
};

const DIGITS = /^\d+$/;

/** True for a Kinesis sequence number (a non-empty string of decimal digits). */
export function isSequenceNumber(value: string): boolean {
  return DIGITS.test(value);
}

/** True for a sequence number or a sentinel checkpoint. */
export function isValidCheckpoint(value: string): boolean {
  return isSequenceNumber(value) || value === SentinelCheckpoint.SHARD_END || value in SENTINEL_RANK;
}

function rank(value: string): bigint {
  if (isSequenceNumber(value)) return BigInt(value);
  const sentinel = SENTINEL_RANK[value];
  if (sentinel === undefined) {
    throw new RangeError(`Not a sequence number or sentinel checkpoint: ${JSON.stringify(value)}`);
  }
  return sentinel;
}

/**
 * Compares two sequence numbers or sentinels.
 * @returns a negative number when `a` comes first, 0 when equal, a positive number when `b` comes first.
 * @throws RangeError for a value that is neither.
 */
export function compareSequenceNumbers(a: string, b: string): number {
  const aEnd = a === SentinelCheckpoint.SHARD_END;
  const bEnd = b === SentinelCheckpoint.SHARD_END;
  if (aEnd || bEnd) {
    if (!aEnd) rank(a);
    if (!bEnd) rank(b);
    return aEnd === bEnd ? 0 : aEnd ? 1 : -1;
  }
  const ra = rank(a);
  const rb = rank(b);
  return ra < rb ? -1 : ra > rb ? 1 : 0;
}

/** Compares two checkpoint positions: sequence number first, then sub-sequence number. */
export function compareExtendedSequenceNumbers(a: ExtendedSequenceNumber, b: ExtendedSequenceNumber): number {
  const bySequence = compareSequenceNumbers(a.sequenceNumber, b.sequenceNumber);
  if (bySequence !== 0) return bySequence;
  return Math.sign(a.subSequenceNumber - b.subSequenceNumber);
}
