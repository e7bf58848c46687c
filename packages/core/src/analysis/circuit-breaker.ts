/**
 * A circuit breaker on the model's error rate (issue 4): when too many model calls fail in a
 * rolling window, stop sending (the workers stop taking new chunks; the stream keeps them), wait,
 * then let a few probe calls through before resuming.
 *
 * States:
 * - `closed`: calls flow; outcomes are counted in a rolling window of `windowMs`. When the window
 *   holds at least `minimumCalls` outcomes and the failure rate is at least `failureRateThreshold`,
 *   the circuit opens.
 * - `open`: no calls for `openMs`; then the next look at the state finds it `half-open`.
 * - `half-open`: up to `probes` probe calls at a time are let through; once `probes` of them
 *   succeed the circuit closes (with an empty window), and one failed probe opens it again.
 *
 * Pure and synchronous: time comes from an injected clock, transitions happen when the breaker is
 * asked or told something (no timers), so tests are deterministic. One instance per process.
 *
 * Outcomes carry the {@link CircuitPermit} of their call: a permit from before the last
 * transition is stale and its outcome ignored (a slow call started while closed cannot close a
 * circuit that opened meanwhile).
 */
import type { Config } from '../config.js';

/** The breaker's state. */
export type CircuitState = 'closed' | 'open' | 'half-open';

/** A monotonic clock in ms (the lease layer's `Clock` fits). */
export interface BreakerClock {
  nowMs(): number;
}

/** Options of {@link CircuitBreaker}; config knobs in brackets. */
export interface CircuitBreakerOptions {
  /** Rolling window of counted outcomes, in ms [CIRCUIT_WINDOW_MS]. @defaultValue 60000 */
  windowMs?: number;
  /** Outcomes in the window before the circuit may open [CIRCUIT_MIN_CALLS]. @defaultValue 20 */
  minimumCalls?: number;
  /** Failure rate in (0, 1] at or above which the circuit opens [CIRCUIT_FAILURE_RATE]. @defaultValue 0.5 */
  failureRateThreshold?: number;
  /** Time the circuit stays open before probing, in ms [CIRCUIT_OPEN_MS]. @defaultValue 30000 */
  openMs?: number;
  /** Concurrent probes in half-open state, and successes needed to close [CIRCUIT_PROBES]. @defaultValue 3 */
  probes?: number;
  /** Monotonic clock. @defaultValue performance.now() */
  clock?: BreakerClock;
}

/** Permission for one call, returned by {@link CircuitBreaker.tryAcquire}. */
export interface CircuitPermit {
  /** The breaker generation (incremented on every transition) the permit belongs to. */
  readonly generation: number;
  /** True for a half-open probe. */
  readonly probe: boolean;
}

/** A state transition, passed to listeners. */
export interface CircuitStateChange {
  from: CircuitState;
  to: CircuitState;
  /** Clock time of the transition, in ms. */
  atMs: number;
  /** Outcomes and failures in the window when the circuit opened from closed. */
  calls?: number;
  failures?: number;
}

/** Counters of the current window. */
export interface CircuitSnapshot {
  state: CircuitState;
  calls: number;
  failures: number;
  /** failures / calls, 0 without calls. */
  failureRate: number;
  /** Probes in flight (half-open). */
  probesInFlight: number;
  /** Successful probes so far (half-open). */
  probeSuccesses: number;
}

/** Counting buckets per window: coarse enough to be O(1), fine enough to roll smoothly. */
const BUCKETS = 20;

interface Bucket {
  start: number;
  calls: number;
  failures: number;
}

const systemClock: BreakerClock = { nowMs: () => performance.now() };

/** The config knobs of the breaker. */
export type CircuitBreakerConfig = Pick<
  Config,
  'CIRCUIT_WINDOW_MS' | 'CIRCUIT_MIN_CALLS' | 'CIRCUIT_FAILURE_RATE' | 'CIRCUIT_OPEN_MS' | 'CIRCUIT_PROBES'
>;

/** The circuit breaker. See the file comment. */
export class CircuitBreaker {
  private readonly windowMs: number;
  private readonly minimumCalls: number;
  private readonly threshold: number;
  private readonly openMs: number;
  private readonly probes: number;
  private readonly clock: BreakerClock;
  private readonly bucketMs: number;

  private current: CircuitState = 'closed';
  private generation = 0;
  private openedAt = 0;
  private buckets: Bucket[] = [];
  private probesInFlight = 0;
  private probeSuccesses = 0;
  private readonly listeners = new Set<(change: CircuitStateChange) => void>();

  constructor(options: CircuitBreakerOptions = {}) {
    this.windowMs = options.windowMs ?? 60_000;
    this.minimumCalls = options.minimumCalls ?? 20;
    this.threshold = options.failureRateThreshold ?? 0.5;
    this.openMs = options.openMs ?? 30_000;
    this.probes = options.probes ?? 3;
    this.clock = options.clock ?? systemClock;
    if (!(this.windowMs > 0)) throw new RangeError('windowMs must be > 0');
    if (!Number.isInteger(this.minimumCalls) || this.minimumCalls < 1) throw new RangeError('minimumCalls must be an integer >= 1');
    if (!(this.threshold > 0 && this.threshold <= 1)) throw new RangeError('failureRateThreshold must be in (0, 1]');
    if (!(this.openMs >= 0)) throw new RangeError('openMs must be >= 0');
    if (!Number.isInteger(this.probes) || this.probes < 1) throw new RangeError('probes must be an integer >= 1');
    this.bucketMs = this.windowMs / BUCKETS;
  }

  /** A breaker configured by the CIRCUIT_* knobs. */
  static fromConfig(config: CircuitBreakerConfig, clock?: BreakerClock): CircuitBreaker {
    return new CircuitBreaker({
      windowMs: config.CIRCUIT_WINDOW_MS,
      minimumCalls: config.CIRCUIT_MIN_CALLS,
      failureRateThreshold: config.CIRCUIT_FAILURE_RATE,
      openMs: config.CIRCUIT_OPEN_MS,
      probes: config.CIRCUIT_PROBES,
      ...(clock ? { clock } : {}),
    });
  }

  /** The state now (an open circuit whose time is up reads as half-open). */
  get state(): CircuitState {
    this.advance();
    return this.current;
  }

  /** Subscribes to transitions; returns the unsubscribe function. Listeners run synchronously. */
  onStateChange(listener: (change: CircuitStateChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Whether a call would be let through now, without taking a permit: the worker asks this
   * before taking a new chunk. True when closed, or half-open with a probe slot free.
   */
  canRequest(): boolean {
    this.advance();
    if (this.current === 'closed') return true;
    if (this.current === 'half-open') return this.probesInFlight + this.probeSuccesses < this.probes;
    return false;
  }

  /**
   * Takes a permit for one call, or returns undefined when the circuit refuses it. In half-open
   * state the permit is a probe slot: report its outcome (or {@link release} it) exactly once.
   */
  tryAcquire(): CircuitPermit | undefined {
    if (!this.canRequest()) return undefined;
    if (this.current === 'half-open') {
      this.probesInFlight++;
      return { generation: this.generation, probe: true };
    }
    return { generation: this.generation, probe: false };
  }

  /**
   * Whether a permit still stands: the circuit has not changed state since it was issued. A call
   * that waited (for the rate limiter) after taking its permit asks this before it leaves, so a
   * circuit that opened meanwhile stops it.
   */
  stillValid(permit: CircuitPermit): boolean {
    this.advance();
    return permit.generation === this.generation;
  }

  /** Gives back a permit whose call was never made (e.g. aborted while waiting for the rate limit). */
  release(permit: CircuitPermit): void {
    if (permit.generation === this.generation && permit.probe) this.probesInFlight = Math.max(0, this.probesInFlight - 1);
  }

  /** Records a successful call (the model answered). */
  onSuccess(permit?: CircuitPermit): void {
    this.advance();
    if (!this.isCurrent(permit)) return;
    if (this.current === 'closed') {
      this.record(false);
    } else if (this.current === 'half-open' && permit?.probe) {
      this.probesInFlight = Math.max(0, this.probesInFlight - 1);
      this.probeSuccesses++;
      if (this.probeSuccesses >= this.probes) this.transition('closed');
    }
  }

  /** Records a failed call (the model was unavailable, throttled us, or timed out). */
  onFailure(permit?: CircuitPermit): void {
    this.advance();
    if (!this.isCurrent(permit)) return;
    if (this.current === 'closed') {
      this.record(true);
      const { calls, failures } = this.totals();
      if (calls >= this.minimumCalls && failures / calls >= this.threshold) this.transition('open', { calls, failures });
    } else if (this.current === 'half-open' && permit?.probe) {
      this.transition('open');
    }
  }

  /** How long until a call may be let through: the rest of the open time, 0 when one may go now. */
  retryAfterMs(): number {
    this.advance();
    if (this.current === 'open') return Math.max(0, Math.ceil(this.openedAt + this.openMs - this.clock.nowMs()));
    if (this.canRequest()) return 0;
    // Half-open with every probe slot taken: the probes will decide soon.
    return Math.min(1_000, Math.max(1, this.openMs));
  }

  /** The current counters. */
  snapshot(): CircuitSnapshot {
    this.advance();
    const { calls, failures } = this.totals();
    return {
      state: this.current,
      calls,
      failures,
      failureRate: calls === 0 ? 0 : failures / calls,
      probesInFlight: this.probesInFlight,
      probeSuccesses: this.probeSuccesses,
    };
  }

  private isCurrent(permit: CircuitPermit | undefined): boolean {
    return permit === undefined || permit.generation === this.generation;
  }

  /** Time-driven transition: open -> half-open once the open time is up. */
  private advance(): void {
    if (this.current === 'open' && this.clock.nowMs() - this.openedAt >= this.openMs) this.transition('half-open');
  }

  private transition(to: CircuitState, counts: { calls?: number; failures?: number } = {}): void {
    const from = this.current;
    const atMs = this.clock.nowMs();
    this.current = to;
    this.generation++;
    this.probesInFlight = 0;
    this.probeSuccesses = 0;
    if (to === 'open') this.openedAt = atMs;
    if (to === 'closed') this.buckets = [];
    const change: CircuitStateChange = { from, to, atMs, ...counts };
    for (const listener of this.listeners) listener(change);
  }

  private record(failed: boolean): void {
    const now = this.clock.nowMs();
    const start = Math.floor(now / this.bucketMs) * this.bucketMs;
    let last = this.buckets[this.buckets.length - 1];
    if (!last || last.start !== start) {
      last = { start, calls: 0, failures: 0 };
      this.buckets.push(last);
    }
    last.calls++;
    if (failed) last.failures++;
  }

  private totals(): { calls: number; failures: number } {
    const since = this.clock.nowMs() - this.windowMs;
    // Buckets wholly before the window are dropped (the window is rounded to whole buckets).
    while (this.buckets.length > 0 && (this.buckets[0] as Bucket).start + this.bucketMs <= since) this.buckets.shift();
    let calls = 0;
    let failures = 0;
    for (const b of this.buckets) {
      calls += b.calls;
      failures += b.failures;
    }
    return { calls, failures };
  }
}
