/**
 * The weighted fair queue (start-time fair queueing): backlogged flows are served by weight, a
 * flow arriving behind a long backlog is served next, idle time earns no credit, the cap holds,
 * and an aborted waiter leaves the queue without losing a slot.
 */
import { describe, expect, it } from 'vitest';
import { FairQueue } from '../src/resilience/fair-queue.js';

/** A task that finishes when released, and the order tasks started in. */
function harness(concurrency: number) {
  const queue = new FairQueue(concurrency);
  const started: string[] = [];
  const releases: Array<() => void> = [];
  let peak = 0;
  const submit = (flow: string, weight = 1, cost = 1, signal?: AbortSignal) =>
    queue.run(
      { flow, weight, cost },
      () =>
        new Promise<void>((resolve) => {
          started.push(flow);
          peak = Math.max(peak, queue.active);
          releases.push(resolve);
        }),
      signal,
    );
  /** Finishes the oldest running task and lets the queue hand its slot on. */
  const finishOne = async () => {
    releases.shift()?.();
    await new Promise((r) => setImmediate(r));
  };
  return { queue, started, submit, finishOne, peak: () => peak };
}

describe('FairQueue', () => {
  it('serves two backlogged flows 3 to 1 by weight', async () => {
    const h = harness(1);
    const all = [...Array.from({ length: 60 }, () => h.submit('a', 3)), ...Array.from({ length: 60 }, () => h.submit('b', 1))];
    for (let i = 0; i < 80; i++) await h.finishOne();
    const first = h.started.slice(0, 80);
    const a = first.filter((f) => f === 'a').length;
    expect(a / first.length).toBeGreaterThan(0.72);
    expect(a / first.length).toBeLessThan(0.78);
    while (h.queue.active + h.queue.pending > 0) await h.finishOne();
    await Promise.all(all);
  });

  it('serves a flow that arrives behind a long backlog next, not after it', async () => {
    const h = harness(2);
    const backlog = Array.from({ length: 500 }, () => h.submit('big'));
    await h.finishOne();
    const small = Array.from({ length: 5 }, () => h.submit('small'));
    // Each free slot alternates between the two flows: the 5 small tasks start within 10 slots.
    for (let i = 0; i < 10; i++) await h.finishOne();
    expect(h.started.filter((f) => f === 'small')).toHaveLength(5);
    expect(h.started.slice(0, 12).filter((f) => f === 'big').length).toBeLessThanOrEqual(7);
    while (h.queue.active + h.queue.pending > 0) await h.finishOne();
    await Promise.all([...backlog, ...small]);
  });

  it('gives no credit for idle time, weighs costs, and never exceeds the cap', async () => {
    const h = harness(3);
    const first = Array.from({ length: 30 }, () => h.submit('a'));
    for (let i = 0; i < 20; i++) await h.finishOne();
    // b was idle while a ran 20 tasks; now both are backlogged: b does not get 20 in a row.
    const later = [...Array.from({ length: 30 }, () => h.submit('b')), ...Array.from({ length: 30 }, () => h.submit('c', 1, 3))];
    const mark = h.started.length;
    for (let i = 0; i < 24; i++) await h.finishOne();
    const window = h.started.slice(mark, mark + 24);
    const runOfB = Math.max(...window.join('').split(/[^b]+/).map((s) => s.length));
    expect(runOfB).toBeLessThan(10);
    // c's tasks cost 3: b is served about 3 times as often while both wait.
    const b = window.filter((f) => f === 'b').length;
    const c = window.filter((f) => f === 'c').length;
    expect(b / Math.max(1, c)).toBeGreaterThan(2);
    expect(h.peak()).toBeLessThanOrEqual(3);
    while (h.queue.active + h.queue.pending > 0) await h.finishOne();
    await Promise.all([...first, ...later]);
  });

  it('drops an aborted waiter and hands the slot to the next one', async () => {
    const h = harness(1);
    const running = h.submit('a');
    const controller = new AbortController();
    const aborted = h.submit('b', 1, 1, controller.signal);
    const next = h.submit('c');
    controller.abort(new Error('gone'));
    await expect(aborted).rejects.toThrow('gone');
    expect(h.queue.pending).toBe(1);
    await h.finishOne();
    expect(h.started).toEqual(['a', 'c']);
    await h.finishOne();
    await Promise.all([running, next]);
    expect(h.queue.active).toBe(0);
  });
});

describe('FairQueue with a per-flow cap', () => {
  it('keeps a slot free for another flow and is work-conserving within the cap', async () => {
    const queue = new FairQueue(2, { maxPerFlow: 1 });
    const started: string[] = [];
    const releases = new Map<string, Array<() => void>>();
    const submit = (flow: string) =>
      queue.run({ flow }, () =>
        new Promise<void>((resolve) => {
          started.push(flow);
          releases.set(flow, [...(releases.get(flow) ?? []), resolve]);
        }),
      );
    const big = Array.from({ length: 4 }, () => submit('big'));
    await new Promise((r) => setImmediate(r));
    expect(started).toEqual(['big']); // the second slot stays free
    expect(queue.pending).toBe(3);
    const small = submit('small');
    await new Promise((r) => setImmediate(r));
    expect(started).toEqual(['big', 'small']); // starts at once
    releases.get('small')?.shift()?.();
    await small;
    for (let i = 0; i < 4; i++) {
      releases.get('big')?.shift()?.();
      await new Promise((r) => setImmediate(r));
    }
    await Promise.all(big);
    expect(started.filter((f) => f === 'big')).toHaveLength(4);
    expect(queue.active).toBe(0);
    expect(queue.pending).toBe(0);
  });
});

describe('FairQueue: an uncapped flow', () => {
  it('may use every slot (a caller that names no tenant)', async () => {
    const queue = new FairQueue(3, { maxPerFlow: 1 });
    let running = 0;
    let peak = 0;
    const releases: Array<() => void> = [];
    const tasks = Array.from({ length: 3 }, () =>
      queue.run({ flow: '', capped: false }, () => {
        running++;
        peak = Math.max(peak, running);
        return new Promise<void>((resolve) => releases.push(() => { running--; resolve(); }));
      }),
    );
    await new Promise((r) => setImmediate(r));
    expect(peak).toBe(3);
    for (const release of releases) release();
    await Promise.all(tasks);
  });
});
