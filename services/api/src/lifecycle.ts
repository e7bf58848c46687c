/**
 * The API process's lifecycle (docs/lifecycle.md):
 *
 *   starting --listen--> serving --SIGTERM--> draining --API_DRAIN_MS--> handing-off --requests done--> stopped
 *
 * - serving: every request is taken.
 * - draining also ends the event streams (GET .../events): their clients reconnect with
 *   Last-Event-ID to another replica and lose nothing.
 * - draining: no new uploads (POST answers 503 SHUTTING_DOWN with Retry-After and closes the
 *   connection; the load balancer has stopped routing here); reads still answer; sync requests in
 *   flight may finish within API_DRAIN_MS.
 * - handing-off: every sync request still running hands its document to the async path at once
 *   (chunks done are kept, running ones finish in the background, the rest are published) and
 *   answers 202 with its id; then the server closes.
 * - stopped: the pipeline context is closed and the process exits. A hand-off that cannot finish
 *   before the force-close bound is caught by the reconciler (the job is fenced and resumed).
 */
export type ApiState = 'starting' | 'serving' | 'draining' | 'handing-off' | 'stopped';

/** The API's lifecycle state and the signal that makes sync requests hand off. */
export class ApiLifecycle {
  private current: ApiState = 'starting';
  private readonly handOffNow = new AbortController();
  private readonly drainNow = new AbortController();

  get state(): ApiState {
    return this.current;
  }

  /** Aborted when draining starts: long-lived event streams end, and the client reconnects elsewhere. */
  get drain(): AbortSignal {
    return this.drainNow.signal;
  }

  /** Aborted when sync requests must hand their documents to the async path. */
  get handOff(): AbortSignal {
    return this.handOffNow.signal;
  }

  /** True while new uploads are taken. */
  get accepting(): boolean {
    return this.current === 'serving' || this.current === 'starting';
  }

  serving(): void {
    if (this.current === 'starting') this.current = 'serving';
  }

  draining(): void {
    if (this.current === 'serving' || this.current === 'starting') this.current = 'draining';
    this.drainNow.abort(new Error('shutting down'));
  }

  handingOff(): void {
    if (this.current === 'stopped') return;
    this.current = 'handing-off';
    this.handOffNow.abort(new Error('shutting down: sync requests hand off'));
  }

  stopped(): void {
    this.current = 'stopped';
  }
}
