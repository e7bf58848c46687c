/**
 * A concurrency cap that serves its waiters by weighted fair share instead of first in, first
 * out: start-time fair queueing (Goyal, Vin and Cheng, SIGCOMM 1996), the discipline behind
 * Linux's CFQ and most multi-tenant schedulers. Each flow (a tenant) has a virtual finish tag;
 * a task that arrives gets the start tag `max(V, lastFinish[flow])` and moves the flow's finish
 * tag by `cost / weight`; a free slot goes to the waiting task with the smallest start tag, and
 * V becomes that tag. So two backlogged flows of weights 3 and 1 are served 3 to 1, a flow that
 * arrives behind a long backlog is served next (its start tag is V, the backlog's tags are
 * ahead of V), and a flow that was idle gets no credit for its idle time (the `max`).
 *
 * Used for the worker's chunk analyses (tenants share the model quota by weight) and for the PDF
 * worker processes (one tenant's 2,000-page split does not queue a 5-page document behind it).
 */
import { DocorchError } from '../errors.js';

/** Who a task is for and what it costs. */
export interface FairShare {
  /** The flow (a tenant id). */
  flow: string;
  /** The flow's share weight (> 0). @defaultValue 1 */
  weight?: number;
  /** The task's cost in the unit shares are measured in (> 0). @defaultValue 1 */
  cost?: number;
  /** Whether the queue's per-flow cap applies (false: a caller that names no tenant). @defaultValue true */
  capped?: boolean;
}

/** Runs `fn` once the queue grants it a slot; the slot is released when it settles. */
export type FairLimit = <T>(share: FairShare, fn: () => Promise<T>, signal?: AbortSignal) => Promise<T>;

interface Waiter {
  flow: string;
  capped: boolean;
  start: number;
  seq: number;
  grant: () => void;
}

/**
 * Weighted fair queue with `concurrency` slots. Flows' tags are kept while the flow has work
 * queued or a tag ahead of the virtual time, and dropped after that (bounded memory).
 */
export class FairQueue {
  private running = 0;
  private readonly runningByFlow = new Map<string, number>();
  /** Waiters of flows at their cap, set aside until one of the flow's tasks ends. */
  private readonly parked = new Map<string, Waiter[]>();
  private readonly maxPerFlow: number;
  private virtualTime = 0;
  private seq = 0;
  private readonly finish = new Map<string, number>();
  private readonly heap: Waiter[] = [];
  private readonly served = new Map<string, number>();

  /**
   * @param concurrency slots (at least 1)
   * @param options.maxPerFlow most slots one flow may hold at once, so some stay free for the next
   *   flow's first task (long, non-preemptible tasks). @defaultValue concurrency (no cap)
   */
  constructor(
    readonly concurrency: number,
    options: { maxPerFlow?: number } = {},
  ) {
    if (!(concurrency >= 1)) throw new RangeError('FairQueue needs at least one slot');
    this.maxPerFlow = Math.max(1, Math.min(concurrency, options.maxPerFlow ?? concurrency));
  }

  /** Tasks running now. */
  get active(): number {
    return this.running;
  }

  /** Tasks waiting for a slot. */
  get pending(): number {
    let parked = 0;
    for (const list of this.parked.values()) parked += list.length;
    return this.heap.length + parked;
  }

  /** Tasks waiting per flow (health views). */
  pendingByFlow(): Map<string, number> {
    const out = new Map<string, number>();
    for (const w of this.heap) out.set(w.flow, (out.get(w.flow) ?? 0) + 1);
    for (const [flow, list] of this.parked) out.set(flow, (out.get(flow) ?? 0) + list.length);
    return out;
  }

  /** Cost served per flow since creation (tests, metrics). */
  servedByFlow(): ReadonlyMap<string, number> {
    return this.served;
  }

  /** Runs `fn` under the cap, in fair order; a waiter whose signal aborts leaves the queue. */
  readonly run: FairLimit = async <T>(share: FairShare, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> => {
    signal?.throwIfAborted();
    const weight = share.weight !== undefined && share.weight > 0 ? share.weight : 1;
    const cost = share.cost !== undefined && share.cost > 0 ? share.cost : 1;
    const start = Math.max(this.virtualTime, this.finish.get(share.flow) ?? 0);
    this.finish.set(share.flow, start + cost / weight);
    if (this.running < this.concurrency && this.heap.length === 0 && (share.capped === false || (this.runningByFlow.get(share.flow) ?? 0) < this.maxPerFlow)) {
      this.dispatched(start, share.flow, cost);
    } else {
      await new Promise<void>((resolve, reject) => {
        const waiter: Waiter = {
          flow: share.flow,
          capped: share.capped !== false,
          start,
          seq: this.seq++,
          grant: () => {
            signal?.removeEventListener('abort', onAbort);
            this.dispatched(start, share.flow, cost);
            resolve();
          },
        };
        const onAbort = () => {
          this.remove(waiter);
          reject(signal?.reason ?? new DocorchError('INTERNAL', 'aborted while waiting for a slot'));
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        this.push(waiter);
        // A free slot that only a capped flow's waiters stood before (they get parked) goes to this one.
        this.next();
      });
    }
    try {
      return await fn();
    } finally {
      this.running--;
      const left = (this.runningByFlow.get(share.flow) ?? 1) - 1;
      if (left > 0) this.runningByFlow.set(share.flow, left);
      else this.runningByFlow.delete(share.flow);
      // The flow is below its cap again: its set-aside waiters compete again.
      const parked = this.parked.get(share.flow);
      if (parked) {
        this.parked.delete(share.flow);
        for (const w of parked) this.push(w);
      }
      this.next();
    }
  };

  private dispatched(start: number, flow: string, cost: number): void {
    this.running++;
    this.runningByFlow.set(flow, (this.runningByFlow.get(flow) ?? 0) + 1);
    this.virtualTime = Math.max(this.virtualTime, start);
    this.served.set(flow, (this.served.get(flow) ?? 0) + cost);
    // Flows whose finish tag fell behind the virtual time hold no advantage any more: forget them.
    if (this.finish.size > 1_000) {
      for (const [f, tag] of this.finish) if (tag <= this.virtualTime) this.finish.delete(f);
    }
  }

  private next(): void {
    while (this.running < this.concurrency && this.heap.length > 0) {
      const waiter = this.pop() as Waiter;
      if (waiter.capped && (this.runningByFlow.get(waiter.flow) ?? 0) >= this.maxPerFlow) {
        const list = this.parked.get(waiter.flow);
        if (list) list.push(waiter);
        else this.parked.set(waiter.flow, [waiter]);
        continue;
      }
      waiter.grant();
    }
  }

  // A binary min-heap on (start tag, arrival order).
  private less(a: Waiter, b: Waiter): boolean {
    return a.start < b.start || (a.start === b.start && a.seq < b.seq);
  }

  private push(w: Waiter): void {
    const h = this.heap;
    h.push(w);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(h[i] as Waiter, h[parent] as Waiter)) break;
      [h[i], h[parent]] = [h[parent] as Waiter, h[i] as Waiter];
      i = parent;
    }
  }

  private pop(): Waiter | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      this.siftDown(0);
    }
    return top;
  }

  private siftDown(i: number): void {
    const h = this.heap;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && this.less(h[l] as Waiter, h[m] as Waiter)) m = l;
      if (r < h.length && this.less(h[r] as Waiter, h[m] as Waiter)) m = r;
      if (m === i) return;
      [h[i], h[m]] = [h[m] as Waiter, h[i] as Waiter];
      i = m;
    }
  }

  private remove(w: Waiter): void {
    const parked = this.parked.get(w.flow);
    const p = parked?.indexOf(w) ?? -1;
    if (parked && p >= 0) {
      parked.splice(p, 1);
      if (parked.length === 0) this.parked.delete(w.flow);
      return;
    }
    const i = this.heap.indexOf(w);
    if (i < 0) return;
    const last = this.heap.pop() as Waiter;
    if (i < this.heap.length) {
      this.heap[i] = last;
      // Restore the heap both ways from i.
      let j = i;
      while (j > 0) {
        const parent = (j - 1) >> 1;
        if (!this.less(this.heap[j] as Waiter, this.heap[parent] as Waiter)) break;
        [this.heap[j], this.heap[parent]] = [this.heap[parent] as Waiter, this.heap[j] as Waiter];
        j = parent;
      }
      this.siftDown(j);
    }
  }
}
