/**
 * The fleet-wide model rate limit (issue 4): Gemini quotas (requests and input tokens per
 * minute) are per project, so every worker and the sync path draw from one budget, kept as one
 * small row in DynamoDB (RATE_LIMIT_TABLE, key `pk` = the bucket name).
 *
 * Algorithm: ./gcra.ts (a token bucket as a theoretical arrival time per dimension). Each
 * acquire takes the row as this process last saw it (read strongly consistent the first time),
 * reserves the earliest conforming instant, writes the new state with a condition on the row's
 * `version` (optimistic concurrency), then sleeps until its instant. A lost race returns the
 * current row with the failed condition (`ReturnValuesOnConditionCheckFailure`), from which it
 * recomputes: one round trip per grant while this process is the last writer, two otherwise,
 * never a separate read. One successful write per grant; a
 * waiter never polls the table, and waiters are served in the order their writes landed.
 * A grant that can only be used more than `maxLatenessMs` after its instant (a slow conditional
 * write for an immediate slot, a timer fired late on a busy event loop) is dropped and a new one
 * reserved: an unused grant only lowers the rate, a late one could crowd a window.
 *
 * Clocks: refill is wall-clock time, because buckets refill in real time across hosts. The state
 * holds absolute instants and every update takes `max(stored instant, local now)`, so a host
 * whose clock is behind only waits longer, and a host whose clock is ahead by `s` ms can gain at
 * most `s` ms of refill (never more than one bucket's capacity). The window is padded by
 * `marginMs` (default 1/60 of the window, i.e. 1 s per minute), which absorbs that skew
 * (hosts synced by NTP / Amazon Time Sync are within milliseconds) and the lateness between a
 * reserved instant and the request's arrival at the server. Lateness up to the moment `acquire`
 * returns is capped at `maxLatenessMs` (above); what remains is the caller's own time to the
 * server (the Gemini analyzer acquires inside its HTTP client's fetch, so that is the network).
 * The guarantee is therefore: at most the limit in any window as the server sees it, as long as
 * that lateness varies by less than `marginMs`.
 */
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { GetCommand, PutCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { RATE_LIMIT_TABLE_KEYS } from '../aws/resources.js';
import type { Config } from '../config.js';
import { DocorchError } from '../errors.js';
import { sleep as defaultSleep } from '../retry/backoff.js';
import {
  FULL_BUCKET,
  MAX_STALE_GRANTS,
  charge,
  defaultMaxLateness,
  defaultTokenBurst,
  refund,
  reserve,
  validateParams,
  type BucketState,
  type RateLimitParams,
} from './gcra.js';
import type { RateLimiter } from './types.js';

/** Options of {@link DynamoDbRateLimiter}. */
export interface DynamoDbRateLimiterOptions {
  /** Document client of the table. */
  doc: DynamoDBDocumentClient;
  /** The table (config `RATE_LIMIT_TABLE`); key attribute `pk` (S). */
  tableName: string;
  /** Name of the bucket (the row's `pk`); processes sharing a quota use the same name, e.g. `gemini#gemini-2.5-flash`. */
  bucket: string;
  /** Requests allowed in any window (config `GEMINI_RPM`). */
  requestsPerWindow: number;
  /** Input tokens allowed in any window (config `GEMINI_TPM`). */
  tokensPerWindow: number;
  /** The quota's window in ms; tests shorten it. @defaultValue 60000 */
  windowMs?: number;
  /** Padding of the window against clock skew and network jitter, in ms. @defaultValue windowMs / 60 */
  marginMs?: number;
  /**
   * Latest a grant may be used after its instant; a later one is dropped (unused) and a new one
   * reserved, so that a slow write or a late timer cannot push requests together. At most
   * {@link MAX_STALE_GRANTS} are dropped per call (a process that lags every time must not eat
   * the fleet's quota); the last is then used anyway.
   * @defaultValue marginMs / 2 (no limit when marginMs is 0)
   */
  maxLatenessMs?: number;
  /** Requests that may go back to back after an idle period; 1 paces requests evenly. @defaultValue 1 */
  requestBurst?: number;
  /**
   * The token bucket's capacity: tokens that may go back to back after an idle period. Keep it at
   * least the largest request's input tokens: a request above it waits for a full bucket and
   * then still costs its whole size, so it is admitted correctly but slowly. The sustained rate
   * is `(tokensPerWindow - tokenBurst + 1)` per window.
   * @defaultValue ceil(tokensPerWindow / 20), i.e. 5% of the quota (50 000 of 1 000 000)
   */
  tokenBurst?: number;
  /**
   * Longest wait `acquire` accepts; beyond it, it throws THROTTLED with `retryAfterMs` without
   * reserving anything. @defaultValue 2 * windowMs
   */
  maxWaitMs?: number;
  /** Gives up with UPSTREAM_UNAVAILABLE after this many lost races in one call. @defaultValue 100 */
  maxConflicts?: number;
  /** Wall clock in epoch ms. @defaultValue Date.now */
  now?: () => number;
  /** Sleeps, rejecting with the signal's reason on abort. @defaultValue retry/backoff sleep */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Random source of the backoff after lost races. @defaultValue Math.random */
  random?: () => number;
}

/** Counters for tests and metrics. */
export interface RateLimiterStats {
  /** Grants made by this instance (one write each), including those dropped as stale. */
  grants: number;
  /** Conditional writes that lost a race (and were retried). */
  conflicts: number;
  /** Total ms callers of this instance were told to wait. */
  waitedMs: number;
  /** Grants dropped because they could only be used later than `maxLatenessMs` after their instant. */
  staleGrants: number;
}

interface Row extends BucketState {
  version: number;
}

/** The shared, DynamoDB-backed rate limiter. See the file comment for the algorithm. */
export class DynamoDbRateLimiter implements RateLimiter {
  readonly params: RateLimitParams;
  private readonly now: () => number;
  private readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  private readonly random: () => number;
  private readonly maxWaitMs: number;
  private readonly maxConflicts: number;
  private readonly maxLatenessMs: number;
  private readonly counters: RateLimiterStats = { grants: 0, conflicts: 0, waitedMs: 0, staleGrants: 0 };
  /** The row as last written or returned by DynamoDB (null: known absent; undefined: not known). */
  private lastSeen: Row | null | undefined;

  constructor(private readonly options: DynamoDbRateLimiterOptions) {
    const windowMs = options.windowMs ?? 60_000;
    this.params = validateParams({
      windowMs,
      marginMs: options.marginMs ?? windowMs / 60,
      requests: { limit: options.requestsPerWindow, burst: options.requestBurst ?? 1 },
      tokens: { limit: options.tokensPerWindow, burst: options.tokenBurst ?? defaultTokenBurst(options.tokensPerWindow) },
    });
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? defaultSleep;
    this.random = options.random ?? Math.random;
    this.maxWaitMs = options.maxWaitMs ?? 2 * windowMs;
    this.maxConflicts = options.maxConflicts ?? 100;
    this.maxLatenessMs = options.maxLatenessMs ?? defaultMaxLateness(this.params.marginMs);
  }

  /**
   * The limiter of the Gemini quota from the config: bucket `gemini#${GEMINI_MODEL}` in
   * RATE_LIMIT_TABLE, GEMINI_RPM requests and GEMINI_TPM input tokens per minute.
   */
  static fromConfig(
    doc: DynamoDBDocumentClient,
    config: Pick<Config, 'RATE_LIMIT_TABLE' | 'GEMINI_MODEL' | 'GEMINI_RPM' | 'GEMINI_TPM'>,
    overrides: Partial<Omit<DynamoDbRateLimiterOptions, 'doc' | 'tableName'>> = {},
  ): DynamoDbRateLimiter {
    return new DynamoDbRateLimiter({
      doc,
      tableName: config.RATE_LIMIT_TABLE,
      bucket: `gemini#${config.GEMINI_MODEL}`,
      requestsPerWindow: config.GEMINI_RPM,
      tokensPerWindow: config.GEMINI_TPM,
      ...overrides,
    });
  }

  /** A snapshot of this instance's counters. */
  stats(): RateLimiterStats {
    return { ...this.counters };
  }

  async acquire(estimatedTokens: number, signal?: AbortSignal): Promise<void> {
    for (let stale = 0; ; stale++) {
      signal?.throwIfAborted();
      const startAt = await this.update((state, now) => {
        const r = reserve(state, now, estimatedTokens, this.params);
        if (r.startAt - now > this.maxWaitMs) {
          const retryAfterMs = Math.ceil(r.startAt - now);
          throw new DocorchError('THROTTLED', `The model rate limit is exhausted for the next ${retryAfterMs} ms`, {
            retryAfterMs,
            details: { bucket: this.options.bucket },
          });
        }
        return { next: r.next, result: r.startAt };
      }, signal);
      this.counters.grants++;
      const wait = startAt - this.now();
      if (wait > 0) {
        this.counters.waitedMs += wait;
        await this.sleep(wait, signal);
      }
      if (this.now() - startAt <= this.maxLatenessMs || stale >= MAX_STALE_GRANTS) return;
      // Too late to use without crowding the window: leave it unused and take the next one.
      this.counters.staleGrants++;
    }
  }

  /**
   * Corrects the token dimension by the call's billed input tokens: charges what was used beyond
   * the estimate, refunds the unused part of the reservation (see `refund` in ./gcra.ts) when it
   * is worth a write (at least 10% of the estimate and 100 tokens).
   */
  async settle(estimatedTokens: number, actualTokens: number): Promise<void> {
    const extra = actualTokens - estimatedTokens;
    if (extra > 0) {
      await this.update((state, now) => ({ next: charge(state, now, extra, this.params), result: undefined }));
    } else if (-extra >= Math.max(100, estimatedTokens / 10)) {
      await this.update((state, now) => ({ next: refund(state, now, -extra, this.params), result: undefined }));
    }
  }

  /**
   * Applies `mutate` to the row as last seen and writes it back if nobody wrote in between; else
   * again from the row the failed write returned (a row not seen yet is read first).
   */
  private async update<T>(
    mutate: (state: BucketState, now: number) => { next: BucketState; result: T },
    signal?: AbortSignal,
  ): Promise<T> {
    for (let conflicts = 0; ; ) {
      signal?.throwIfAborted();
      const row = this.lastSeen === undefined ? ((await this.read()) ?? null) : this.lastSeen;
      const { next, result } = mutate(row ?? FULL_BUCKET, this.now());
      const version = (row?.version ?? 0) + 1;
      try {
        await this.options.doc.send(
          new PutCommand({
            TableName: this.options.tableName,
            Item: {
              [RATE_LIMIT_TABLE_KEYS.pk]: this.options.bucket,
              requestTat: next.requestTat,
              tokenTat: next.tokenTat,
              version,
              updatedAt: new Date(this.now()).toISOString(),
            },
            ConditionExpression: row ? '#version = :version' : 'attribute_not_exists(#pk)',
            ExpressionAttributeNames: row ? { '#version': 'version' } : { '#pk': RATE_LIMIT_TABLE_KEYS.pk },
            ...(row ? { ExpressionAttributeValues: { ':version': row.version } } : {}),
            ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
          }),
        );
        this.lastSeen = { ...next, version };
        return result;
      } catch (err) {
        if (!(err instanceof Error) || err.name !== 'ConditionalCheckFailedException') {
          this.lastSeen = undefined; // the write may or may not have landed: read before the next one
          throw err;
        }
        // Another process wrote since: recompute from the row it left (returned with the failure,
        // in DynamoDB's wire form: the document client does not convert errors).
        const item = (err as { Item?: Record<string, AttributeValue> }).Item;
        this.lastSeen = item ? toRow(unmarshall(item)) : undefined;
        this.counters.conflicts++;
        if (++conflicts >= this.maxConflicts) {
          throw new DocorchError('UPSTREAM_UNAVAILABLE', `Rate limiter: ${conflicts} lost races in a row on ${this.options.bucket}`, {
            cause: err,
          });
        }
        // Spread the losers of a race so they do not collide again at once.
        if (conflicts > 1) await this.sleep(Math.floor(this.random() * Math.min(100, 2 ** conflicts)), signal);
      }
    }
  }

  private async read(): Promise<Row | undefined> {
    const out = await this.options.doc.send(
      new GetCommand({
        TableName: this.options.tableName,
        Key: { [RATE_LIMIT_TABLE_KEYS.pk]: this.options.bucket },
        ConsistentRead: true,
      }),
    );
    return out.Item ? toRow(out.Item) : undefined;
  }
}

function toRow(item: Record<string, unknown>): Row {
  return {
    requestTat: Number(item.requestTat ?? 0),
    tokenTat: Number(item.tokenTat ?? 0),
    version: Number(item.version ?? 0),
  };
}
