/**
 * Time and timers of the lease layer, injected so that tests are deterministic.
 *
 * Lease expiry is always judged on the local monotonic clock of the process that judges it
 * (KCL's `System.nanoTime()`); wall-clock time is never compared across hosts.
 */
import { performance } from 'node:perf_hooks';

/** A monotonic clock. */
export interface Clock {
  /** Milliseconds since an arbitrary origin; never goes backwards. May be fractional. */
  nowMs(): number;
}

/** Opaque handle of a scheduled callback. */
export type TimerHandle = object;

/** Schedules callbacks; the default uses Node's timers, tests use a manual one. */
export interface Scheduler {
  /** Runs `callback` once after `delayMs`. */
  setTimeout(callback: () => void, delayMs: number): TimerHandle;
  /** Cancels a callback scheduled with {@link Scheduler.setTimeout}; a no-op if it already ran. */
  clearTimeout(handle: TimerHandle): void;
}

/** The process's monotonic clock (`performance.now()`). */
export const systemClock: Clock = {
  nowMs: () => performance.now(),
};

/** Node timers. Timers are unref'd: lease loops alone never keep a process alive. */
export const systemScheduler: Scheduler = {
  setTimeout(callback, delayMs) {
    const timer = setTimeout(callback, Math.max(0, delayMs));
    timer.unref();
    return timer;
  },
  clearTimeout(handle) {
    clearTimeout(handle as NodeJS.Timeout);
  },
};
