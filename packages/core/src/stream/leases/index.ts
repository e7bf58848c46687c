/**
 * The Kinesis Client Library's lease protocol in TypeScript: lease table model and transitions,
 * taker, renewer, coordinator, shard checkpointer and the parallel-processing watermark.
 * See docs/lease-lifecycle.md.
 */
export { systemClock, systemScheduler } from './clock.js';
export type { Clock, Scheduler, TimerHandle } from './clock.js';
export { InvalidCheckpointError, LeaseLostError } from './errors.js';
export type { InvalidCheckpointReason, LeaseLostReason } from './errors.js';
export { isShardEnd, LeaseAttribute, leaseCheckpoint, newLease, toLease } from './lease.js';
export type { HeldLease, Lease, NewLease } from './lease.js';
export { LeaseCoordinator } from './lease-coordinator.js';
export type { LeaseCoordinatorEvents, LeaseCoordinatorState } from './lease-coordinator.js';
export { assertCheckpointMayFollow, LeaseRefresher, leaseFromItem } from './lease-refresher.js';
export { LeaseRenewer } from './lease-renewer.js';
export type { LostLease, RenewalResult } from './lease-renewer.js';
export { LeaseTaker } from './lease-taker.js';
export type { TakePlan } from './lease-taker.js';
export { LEASE_DEFAULTS, renewIntervalFor, takeIntervalFor } from './options.js';
export type {
  LeaseCoordinatorOptions,
  LeaseRefresherOptions,
  LeaseRenewerOptions,
  LeaseTakerOptions,
  LeaseTimingOptions,
} from './options.js';
export {
  compareExtendedSequenceNumbers,
  compareSequenceNumbers,
  isSequenceNumber,
  isValidCheckpoint,
  SentinelCheckpoint,
} from './sequence-number.js';
export type { ExtendedSequenceNumber } from './sequence-number.js';
export { SequenceTracker } from './sequence-tracker.js';
export { ShardCheckpointer } from './shard-checkpointer.js';
export type { CheckpointWriter } from './shard-checkpointer.js';
