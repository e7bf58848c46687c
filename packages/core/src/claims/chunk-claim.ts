/**
 * The chunk claim: which delivery of a `chunk.ready` record may analyse and count a chunk, with
 * the lease discipline of stream/leases (rules in prose: docs/claims.md; manual-time tests:
 * packages/core/test/claims-chunk-claim.test.ts).
 *
 * The claim is a small lease on the chunk row (BullMQ's job lock, KCL's lease): the holder
 * heartbeats by bumping `claimCounter`; a redelivered record that finds a claim waits, and takes
 * it over only after the counter stood still for `timeoutMs` on its own monotonic clock. A killed
 * worker's chunks are therefore picked up again, and a paused (zombie) worker can never count a
 * chunk twice: every final write (complete, hand back, hold) is conditional on owner and counter.
 *
 * The conditional writes themselves are the status table's (`claimChunk`, `heartbeatChunk`,
 * `completeChunk`, `releaseChunk`, `holdChunk`); this module owns when they are made.
 */
import type { ChunkRow, StatusTable } from '../aws/status-table.js';
import { DocorchError } from '../errors.js';
import { backoffPolicy, sleep as realSleep } from '../retry/backoff.js';
import { systemClock, systemScheduler, type Clock, type Scheduler } from '../stream/leases/clock.js';

/** The writes of the chunk claim (the status table; tests may pass their own). */
export type ChunkClaimStore = Pick<StatusTable, 'claimChunk' | 'heartbeatChunk'>;

/** A chunk's key. */
export interface ChunkKey {
  tenantId: string;
  documentId: string;
  chunkIndex: number;
}

/** A claim as held: owner and the counter after its last heartbeat. */
export interface ChunkClaimRef {
  owner: string;
  counter: number;
}

/** A chunk claim kept alive by heartbeats. */
export interface HeldClaim {
  /** The claim as of the last heartbeat (owner and counter for conditional writes). */
  current(): ChunkClaimRef;
  /** Aborted when a heartbeat finds the claim taken over. */
  lost: AbortSignal;
  /**
   * Stops heartbeating and resolves once no heartbeat is in flight, with the claim to condition
   * the final write (complete, release or hold) on, or undefined when the claim was lost. A final
   * write must use this, never {@link HeldClaim.current} while heartbeats run: a heartbeat that
   * lands first moves the counter, the final write's condition fails, and the chunk is left
   * `processing` under a live-looking claim with no record left to finish it.
   */
  settle(): Promise<ChunkClaimRef | undefined>;
  /** Stops heartbeating (a heartbeat in flight still completes). */
  stop(): void;
  /** Resolves when no heartbeat is in flight (tests move manual time only then). */
  whenIdle(): Promise<void>;
}

/** Options of {@link holdChunkClaim}. */
export interface HoldChunkClaimOptions {
  /** The claim timeout; heartbeats go every third of it (at least 50 ms). */
  timeoutMs: number;
  /** Told of a lost claim or a failed heartbeat. @defaultValue silent */
  log?: { warn: (obj: object, msg?: string) => void };
  /** @defaultValue systemScheduler */
  scheduler?: Scheduler;
}

/**
 * Heartbeats a claim every `timeoutMs / 3` until stopped or lost. Heartbeats never overlap (the
 * next is scheduled when the previous one has answered): two heartbeats sent with the same counter
 * would make the second fail its condition and report a live claim as lost. A heartbeat that
 * fails for a transient reason is retried at the next beat with the same counter.
 */
export function holdChunkClaim(store: Pick<ChunkClaimStore, 'heartbeatChunk'>, key: ChunkKey, claim: ChunkClaimRef, options: HoldChunkClaimOptions): HeldClaim {
  const scheduler = options.scheduler ?? systemScheduler;
  let current = claim;
  let stopped = false;
  let timer: ReturnType<Scheduler['setTimeout']> | undefined;
  let beating: Promise<void> = Promise.resolve();
  const lost = new AbortController();
  const everyMs = Math.max(50, Math.floor(options.timeoutMs / 3));
  const beat = async (): Promise<void> => {
    try {
      const counter = await store.heartbeatChunk(key.tenantId, key.documentId, key.chunkIndex, current.owner, current.counter);
      if (counter !== undefined) {
        current = { ...current, counter };
        return;
      }
      options.log?.warn({}, 'chunk claim lost; abandoning the analysis');
      lost.abort(new DocorchError('CONFLICT', 'chunk claim lost'));
    } catch (err) {
      options.log?.warn({ err }, 'chunk heartbeat failed');
    }
  };
  const schedule = (): void => {
    if (stopped || lost.signal.aborted) return;
    timer = scheduler.setTimeout(() => {
      timer = undefined;
      beating = beat().finally(schedule);
    }, everyMs);
  };
  const stop = (): void => {
    stopped = true;
    if (timer !== undefined) scheduler.clearTimeout(timer);
  };
  schedule();
  return {
    current: () => current,
    lost: lost.signal,
    async settle() {
      stop();
      await beating;
      return lost.signal.aborted ? undefined : current;
    },
    stop,
    whenIdle: () => beating,
  };
}

/** Options of {@link acquireChunkClaim}. */
export interface AcquireChunkClaimOptions {
  /** This worker's id (the claim's owner). */
  owner: string;
  /** The delivery's attempt (from 1): a delivery below the row's never claims. */
  attempt: number;
  /** A claim whose counter stands still this long (on `clock`) is taken over. */
  timeoutMs: number;
  /** Monotonic clock. @defaultValue systemClock */
  clock?: Clock;
  /** Waits between polls of a busy claim. @defaultValue real time */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  signal?: AbortSignal;
}

/**
 * Claims the chunk, waiting out another holder's live claim: polls it, and takes it over once its
 * counter stood still for `timeoutMs` on this process's clock. Returns the claimed row, the row of
 * a chunk already finished (a redelivery), or undefined when there is nothing to do (the job is not
 * processing, or a later delivery owns the chunk).
 */
export async function acquireChunkClaim(
  store: Pick<ChunkClaimStore, 'claimChunk'>,
  key: ChunkKey,
  options: AcquireChunkClaimOptions,
): Promise<{ claimed?: ChunkRow; done?: ChunkRow } | undefined> {
  const clock = options.clock ?? systemClock;
  const wait = options.sleep ?? realSleep;
  let seen: { counter: number; since: number } | undefined;
  const poll = backoffPolicy({ baseMs: Math.max(20, Math.floor(options.timeoutMs / 10)), capMs: Math.max(20, Math.floor(options.timeoutMs / 3)) });
  for (;;) {
    const takeOver = seen && clock.nowMs() - seen.since >= options.timeoutMs ? seen.counter : undefined;
    const outcome = await store.claimChunk(key.tenantId, key.documentId, key.chunkIndex, options.owner, options.attempt, takeOver);
    switch (outcome.kind) {
      case 'claimed':
        return { claimed: outcome.row };
      case 'done':
        return { done: outcome.row };
      case 'job-inactive':
        return undefined;
      case 'busy': {
        if (outcome.row.attempt > options.attempt) return undefined; // a later delivery owns it
        if (outcome.row.status === 'pending') continue; // released meanwhile: claim it now
        if (!seen || seen.counter !== outcome.row.claimCounter) seen = { counter: outcome.row.claimCounter, since: clock.nowMs() };
        await wait(poll.capMs, options.signal);
      }
    }
  }
}
