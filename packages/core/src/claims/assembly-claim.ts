/**
 * The assembly claim: who may assemble a ready job, with the lease discipline of stream/leases
 * (rules in prose: docs/claims.md).
 *
 * - Owner: {@link assemblyOwnerFor} the ready job row, stable across retries of the stream record
 *   (a Lambda retry has a new request id, the same owner name).
 * - Epoch: every take bumps `assemblyEpoch` with a conditional write on the epoch seen, so two
 *   takers never both win, and every later write (heartbeat, release, finish) is conditional on
 *   owner and epoch: a holder whose claim was taken over can never finish the job.
 * - Liveness: the holder heartbeats `assemblyClaimedAt` every `timeoutMs / 3`. A claim is free
 *   when released (a failed assembler gives it back before reporting its failure, so the retry
 *   takes it at once) or when its heartbeat is older than `timeoutMs`. Across hosts this compares
 *   wall clocks (a Lambda retry is a new process and cannot watch a counter on its own clock), so
 *   the timeout must exceed the clock skew by far: 60 s by default against NTP's milliseconds.
 */
import { createHash } from 'node:crypto';
import { DocorchError } from '../errors.js';
import type { AssemblyClaimRef, StatusTable } from '../aws/status-table.js';
import type { Job } from '../jobs/model.js';
import { systemScheduler, type Scheduler } from '../stream/leases/clock.js';

/** The stable owner name of the assembly of a job whose row shows it ready. */
export function assemblyOwnerFor(job: Pick<Job, 'tenantId' | 'documentId' | 'updatedAt'>): string {
  return `asm-${createHash('sha256').update(`${job.tenantId}\n${job.documentId}\n${job.updatedAt}`).digest('hex').slice(0, 24)}`;
}

/** True when an `assembling` job's claim may be taken: released, or not heartbeated for `timeoutMs` (wall clock). */
export function assemblyClaimFree(job: Pick<Job, 'assemblyOwner' | 'assemblyClaimedAt'>, timeoutMs: number, nowMs = Date.now()): boolean {
  if (job.assemblyOwner === undefined) return true;
  const at = Date.parse(job.assemblyClaimedAt ?? '');
  return !Number.isFinite(at) || nowMs - at > timeoutMs;
}

/** A held assembly claim, heartbeated until settled. */
export interface HeldAssembly {
  claim: AssemblyClaimRef;
  /** Aborted when a heartbeat finds the claim taken over. */
  lost: AbortSignal;
  /** Stops heartbeating; waits for a heartbeat in flight. */
  stop(): Promise<void>;
  /** Stops and gives the claim back (after a failure), so the next assembler takes it at once. */
  release(): Promise<void>;
}

/**
 * Takes the claim of an `assembling` job if it is free (see {@link assemblyClaimFree}); throws
 * CONFLICT while another holder's claim is live or when another taker won.
 */
export async function takeAssemblyClaim(status: StatusTable, job: Job, owner: string, timeoutMs: number): Promise<AssemblyClaimRef> {
  if (!assemblyClaimFree(job, timeoutMs)) {
    throw new DocorchError('CONFLICT', `assembly of ${job.documentId} in progress by ${job.assemblyOwner ?? 'unknown'}`, { retryAfterMs: timeoutMs });
  }
  const claim = await status.takeAssembly(job.tenantId, job.documentId, job.assemblyEpoch, owner);
  if (!claim) throw new DocorchError('CONFLICT', `assembly of ${job.documentId} was claimed by someone else`);
  return claim;
}

/** Heartbeats a claim every `timeoutMs / 3` (never two at once) until stopped or lost. */
export function holdAssembly(
  status: StatusTable,
  key: { tenantId: string; documentId: string },
  claim: AssemblyClaimRef,
  timeoutMs: number,
  scheduler: Scheduler = systemScheduler,
): HeldAssembly {
  const lost = new AbortController();
  let stopped = false;
  let beating: Promise<void> = Promise.resolve();
  let timer: ReturnType<Scheduler['setTimeout']> | undefined;
  const schedule = (): void => {
    if (stopped || lost.signal.aborted) return;
    timer = scheduler.setTimeout(() => {
      beating = status
        .touchAssembly(key.tenantId, key.documentId, claim, false)
        .then((ok) => {
          if (!ok) lost.abort(new DocorchError('CONFLICT', 'assembly claim lost'));
        })
        .catch(() => undefined) // transient: the next heartbeat retries
        .finally(schedule);
    }, Math.max(50, Math.floor(timeoutMs / 3)));
  };
  const stop = async (): Promise<void> => {
    stopped = true;
    if (timer !== undefined) scheduler.clearTimeout(timer);
    await beating;
  };
  schedule();
  return {
    claim,
    lost: lost.signal,
    stop,
    async release() {
      await stop();
      if (!lost.signal.aborted) await status.touchAssembly(key.tenantId, key.documentId, claim, true).catch(() => false);
    },
  };
}
