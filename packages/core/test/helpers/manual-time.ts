/**
 * Deterministic time for lease tests: a clock moved only by `passTime`, and a scheduler whose
 * timers fire only when the clock reaches them (the KCL TestHarnessBuilder's passTime()).
 */
import type { Clock, Scheduler, TimerHandle } from '../../src/stream/leases/clock.js';

/** A monotonic clock moved by hand. */
export class ManualClock implements Clock {
  constructor(private now = 1_000_000) {}

  nowMs(): number {
    return this.now;
  }

  /** Moves the clock forward. */
  passTime(ms: number): void {
    if (ms < 0) throw new RangeError('time never goes backwards');
    this.now += ms;
  }
}

interface Timer {
  readonly id: number;
  readonly due: number;
  readonly callback: () => void;
}

/** Timers that fire when {@link ManualScheduler.advance} moves the clock past them. */
export class ManualScheduler implements Scheduler {
  private timers: Timer[] = [];
  private nextId = 0;

  constructor(readonly clock: ManualClock) {}

  setTimeout(callback: () => void, delayMs: number): TimerHandle {
    const timer: Timer = { id: this.nextId++, due: this.clock.nowMs() + Math.max(0, delayMs), callback };
    this.timers.push(timer);
    return timer;
  }

  clearTimeout(handle: TimerHandle): void {
    this.timers = this.timers.filter((t) => t !== handle);
  }

  /** Timers still pending. */
  get pending(): number {
    return this.timers.length;
  }

  /**
   * Moves time forward in steps, firing each due timer in order and letting the async work it
   * starts settle (`settle`, e.g. waiting for DynamoDB calls) before moving on.
   */
  async advance(ms: number, settle: () => Promise<void> = flush): Promise<void> {
    const end = this.clock.nowMs() + ms;
    for (;;) {
      await settle();
      const next = this.timers.filter((t) => t.due <= end).sort((a, b) => a.due - b.due || a.id - b.id)[0];
      if (!next) break;
      this.timers = this.timers.filter((t) => t !== next);
      if (next.due > this.clock.nowMs()) this.clock.passTime(next.due - this.clock.nowMs());
      next.callback();
    }
    if (end > this.clock.nowMs()) this.clock.passTime(end - this.clock.nowMs());
    await settle();
  }
}

/** Lets pending promise callbacks and I/O run. */
export async function flush(): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve));
}

/** A seeded PRNG (mulberry32), for reproducible shuffles and property tests. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
