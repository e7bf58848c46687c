/**
 * Options of the lease layer's runtime objects. Defaults follow the KCL's
 * (`failoverTimeMillis` 10 s, `epsilonMillis` 25 ms, renew every failover/3 - epsilon,
 * take every (failover + epsilon) x 2, steal one lease at a time).
 */
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Logger } from '../../telemetry/logger.js';
import type { Clock, Scheduler } from './clock.js';
import type { LeaseLostReason } from './errors.js';
import type { HeldLease } from './lease.js';

/** The KCL's defaults. */
export const LEASE_DEFAULTS = {
  failoverTimeMs: 10_000,
  epsilonMs: 25,
  maxLeasesForWorker: Number.MAX_SAFE_INTEGER,
  maxLeasesToStealAtOneTime: 1,
} as const;

/** Renewal interval for a failover time: failover / 3 - epsilon (three chances before expiry). */
export function renewIntervalFor(failoverTimeMs: number, epsilonMs: number = LEASE_DEFAULTS.epsilonMs): number {
  return Math.max(1, Math.floor(failoverTimeMs / 3 - epsilonMs));
}

/** Taker interval for a failover time: (failover + epsilon) x 2. */
export function takeIntervalFor(failoverTimeMs: number, epsilonMs: number = LEASE_DEFAULTS.epsilonMs): number {
  return (failoverTimeMs + epsilonMs) * 2;
}

/** Options of {@link LeaseRefresher}. */
export interface LeaseRefresherOptions {
  /** Document client of the table's DynamoDB. */
  client: DynamoDBDocumentClient;
  /** Lease table name (config `LEASES_TABLE`); HASH key `leaseKey` (S). */
  tableName: string;
}

/** Options shared by the taker, the renewer and the coordinator. */
export interface LeaseTimingOptions {
  /** This worker's id, written as `leaseOwner`. Must be unique in the fleet (e.g. host + pid + random). */
  workerId: string;
  /**
   * A lease whose counter has not moved for this long, on the observer's own clock, is expired
   * and may be taken by another worker.
   * @defaultValue 10000
   */
  failoverTimeMs?: number;
  /** Monotonic clock. @defaultValue {@link systemClock} (performance.now) */
  clock?: Clock;
}

/** Options of {@link LeaseTaker}. */
export interface LeaseTakerOptions extends LeaseTimingOptions {
  /**
   * Most leases this worker holds. Leases over the fleet's capacity stay unprocessed, so set it
   * only when a worker truly cannot take more.
   * @defaultValue Number.MAX_SAFE_INTEGER (no cap)
   */
  maxLeasesForWorker?: number;
  /** Most leases stolen from the most loaded worker in one pass (balancing speed vs churn). @defaultValue 1 */
  maxLeasesToStealAtOneTime?: number;
  /**
   * Source of randomness for shuffling candidates, so that workers do not all contend for the
   * same lease. Tests inject a seeded one.
   * @defaultValue Math.random
   */
  random?: () => number;
  /**
   * When a lease table scan takes longer than this, steal candidates are re-read before the
   * steal (their state may have moved during the slow scan; KCL: half the renew interval).
   * @defaultValue renewIntervalFor(failoverTimeMs) / 2
   */
  slowScanThresholdMs?: number;
  /**
   * Take leases for balance by graceful hand-off (KCL 3.x) instead of outright: the taker names
   * itself the next owner, and the holder drains, checkpoints and passes the lease on; see
   * {@link LeaseCoordinatorOptions.handoffTimeoutMs}. Expired and unowned leases are always taken
   * outright. @defaultValue false (KCL 2.x steals)
   */
  gracefulHandoff?: boolean;
  /** Logger for take decisions. @defaultValue none */
  logger?: Logger;
}

/** Options of {@link LeaseRenewer}. */
export interface LeaseRenewerOptions extends LeaseTimingOptions {
  /**
   * Called once for every lease this worker stops holding without releasing it: taken by another
   * worker (found on renewal or checkpoint), or expired on this worker's clock.
   * @defaultValue none
   */
  onLeaseLost?: (lease: HeldLease, reason: LeaseLostReason) => void;
  /**
   * Called once when a renewal shows that another worker asked for a graceful hand-off of a held
   * lease (KCL 3.x): stop reading its shard, drain, checkpoint, then
   * {@link LeaseRenewer.completeHandoff}. The lease stays held (and renewed) until then.
   * @defaultValue none
   */
  onHandoffRequested?: (lease: HeldLease, newOwner: string) => void;
  /** Logger for renewals and losses. @defaultValue none */
  logger?: Logger;
}

/** Options of {@link LeaseCoordinator}. */
export interface LeaseCoordinatorOptions extends LeaseTakerOptions {
  /** Safety margin subtracted from the renew interval. @defaultValue 25 */
  epsilonMs?: number;
  /** How often held leases are renewed (fixed rate). @defaultValue failoverTimeMs / 3 - epsilonMs */
  renewIntervalMs?: number;
  /** How often the taker scans the table (fixed delay). @defaultValue (failoverTimeMs + epsilonMs) x 2 */
  takeIntervalMs?: number;
  /** Timers of the renew and take loops. @defaultValue {@link systemScheduler} */
  scheduler?: Scheduler;
  /**
   * On {@link LeaseCoordinator.stop}, hand held leases back (owner removed) so that other workers
   * take them at once instead of after the failover time.
   * @defaultValue true
   */
  releaseOnStop?: boolean;
  /**
   * Longest {@link LeaseCoordinator.stop} waits for passes in flight and releases (wall time);
   * after it, stop returns and unreleased leases expire on their own.
   * @defaultValue failoverTimeMs
   */
  stopTimeoutMs?: number;
  /**
   * With {@link LeaseTakerOptions.gracefulHandoff}: a hand-off this worker asked for and that the
   * holder has not completed after this long (on this worker's clock) is ended by taking the lease
   * outright. @defaultValue 2 x failoverTimeMs
   */
  handoffTimeoutMs?: number;
  /** How often this worker looks at the leases it asked to be handed. @defaultValue min(500, renew interval) */
  handoffPollMs?: number;
}
