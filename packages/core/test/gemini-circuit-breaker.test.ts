/**
 * The model circuit breaker: pure, driven by an injected clock.
 */
import { describe, expect, it } from 'vitest';
import { CircuitBreaker, type CircuitStateChange } from '../src/analysis/circuit-breaker.js';
import { loadConfig } from '../src/config.js';

function harness(options: ConstructorParameters<typeof CircuitBreaker>[0] = {}) {
  const clock = { now: 0, nowMs() {
    return this.now;
  } };
  const breaker = new CircuitBreaker({ windowMs: 10_000, minimumCalls: 4, failureRateThreshold: 0.5, openMs: 5_000, probes: 2, clock, ...options });
  const changes: CircuitStateChange[] = [];
  breaker.onStateChange((c) => changes.push(c));
  return { clock, breaker, changes };
}

describe('CircuitBreaker', () => {
  it('stays closed below the minimum number of calls, whatever the failure rate', () => {
    const { breaker } = harness();
    for (let i = 0; i < 3; i++) breaker.onFailure(breaker.tryAcquire());
    expect(breaker.state).toBe('closed');
    expect(breaker.snapshot()).toMatchObject({ calls: 3, failures: 3, failureRate: 1 });
  });

  it('stays closed below the threshold and opens at it', () => {
    const { breaker, changes } = harness();
    breaker.onSuccess(breaker.tryAcquire());
    breaker.onSuccess(breaker.tryAcquire());
    breaker.onFailure(breaker.tryAcquire());
    breaker.onSuccess(breaker.tryAcquire());
    expect(breaker.state).toBe('closed'); // 1 of 4
    breaker.onFailure(breaker.tryAcquire()); // 2 of 5
    expect(breaker.state).toBe('closed');
    breaker.onFailure(breaker.tryAcquire()); // 3 of 6 = 0.5
    expect(breaker.state).toBe('open');
    expect(changes).toEqual([{ from: 'closed', to: 'open', atMs: 0, calls: 6, failures: 3 }]);
    expect(breaker.canRequest()).toBe(false);
    expect(breaker.tryAcquire()).toBeUndefined();
  });

  it('forgets outcomes older than the window', () => {
    const { breaker, clock } = harness();
    for (let i = 0; i < 3; i++) breaker.onFailure();
    clock.now = 11_000;
    breaker.onFailure();
    expect(breaker.state).toBe('closed');
    expect(breaker.snapshot().calls).toBe(1);
  });

  it('open -> half-open after openMs; probes are limited; enough successful probes close it', () => {
    const { breaker, clock, changes } = harness();
    for (let i = 0; i < 4; i++) breaker.onFailure();
    expect(breaker.state).toBe('open');
    clock.now = 4_000;
    expect(breaker.retryAfterMs()).toBe(1_000);
    expect(breaker.canRequest()).toBe(false);
    clock.now = 5_000;
    expect(breaker.state).toBe('half-open');
    const p1 = breaker.tryAcquire();
    const p2 = breaker.tryAcquire();
    expect(p1?.probe).toBe(true);
    expect(p2?.probe).toBe(true);
    expect(breaker.tryAcquire()).toBeUndefined(); // both probe slots taken
    expect(breaker.canRequest()).toBe(false);
    breaker.onSuccess(p1);
    expect(breaker.state).toBe('half-open');
    breaker.onSuccess(p2);
    expect(breaker.state).toBe('closed');
    expect(breaker.snapshot()).toMatchObject({ calls: 0, failures: 0 });
    expect(changes.map((c) => `${c.from}>${c.to}`)).toEqual(['closed>open', 'open>half-open', 'half-open>closed']);
  });

  it('a failed probe opens the circuit again for another openMs', () => {
    const { breaker, clock } = harness();
    for (let i = 0; i < 4; i++) breaker.onFailure();
    clock.now = 5_000;
    const probe = breaker.tryAcquire();
    breaker.onFailure(probe);
    expect(breaker.state).toBe('open');
    clock.now = 9_999;
    expect(breaker.state).toBe('open');
    clock.now = 10_000;
    expect(breaker.state).toBe('half-open');
  });

  it('ignores outcomes of calls permitted before the last transition, and released permits free their probe slot', () => {
    const { breaker, clock } = harness();
    const old = breaker.tryAcquire(); // taken while closed
    for (let i = 0; i < 4; i++) breaker.onFailure();
    clock.now = 5_000;
    const probe = breaker.tryAcquire();
    breaker.onSuccess(old); // stale: must not count as a probe success
    expect(breaker.snapshot().probeSuccesses).toBe(0);
    breaker.onFailure(old); // stale: must not reopen
    expect(breaker.state).toBe('half-open');
    if (probe) breaker.release(probe);
    expect(breaker.snapshot().probesInFlight).toBe(0);
  });

  it('a permit stands until the next transition', () => {
    const { breaker, clock } = harness();
    const early = breaker.tryAcquire();
    if (!early) throw new Error('closed circuit refused a permit');
    expect(breaker.stillValid(early)).toBe(true);
    for (let i = 0; i < 4; i++) breaker.onFailure();
    expect(breaker.stillValid(early)).toBe(false);
    clock.now = 5_000;
    const probe = breaker.tryAcquire();
    if (!probe) throw new Error('half-open circuit refused a probe');
    expect(breaker.stillValid(probe)).toBe(true);
    breaker.onFailure(probe);
    expect(breaker.stillValid(probe)).toBe(false);
  });

  it('outcomes without a permit count while closed and are ignored while open', () => {
    const { breaker } = harness({ minimumCalls: 1, failureRateThreshold: 1 });
    breaker.onFailure();
    expect(breaker.state).toBe('open');
    breaker.onSuccess();
    expect(breaker.state).toBe('open');
  });

  it('is built from the CIRCUIT_* knobs', () => {
    const config = loadConfig({ CIRCUIT_MIN_CALLS: '2', CIRCUIT_FAILURE_RATE: '1', CIRCUIT_OPEN_MS: '100', CIRCUIT_PROBES: '1' });
    let now = 0;
    const breaker = CircuitBreaker.fromConfig(config, { nowMs: () => now });
    breaker.onFailure();
    breaker.onFailure();
    expect(breaker.state).toBe('open');
    now = 100;
    breaker.onSuccess(breaker.tryAcquire());
    expect(breaker.state).toBe('closed');
  });

  it('validates its options', () => {
    expect(() => new CircuitBreaker({ failureRateThreshold: 0 })).toThrow(RangeError);
    expect(() => new CircuitBreaker({ probes: 0 })).toThrow(RangeError);
    expect(() => new CircuitBreaker({ minimumCalls: 1.5 })).toThrow(RangeError);
  });
});
