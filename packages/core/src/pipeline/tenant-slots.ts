/**
 * A per-tenant cap on concurrent PDF work (inspection, extraction, a sync run) in one API process:
 * one tenant's slow or large PDFs hold at most `perTenant` of the process's PDF workers, so other
 * tenants' uploads never wait behind them. A tenant's uploads beyond the cap wait in its own queue
 * (first come, first served); beyond `queuePerTenant` waiting they answer 429 at once.
 */
import { DocorchError } from '../errors.js';

interface TenantState {
  running: number;
  waiting: Array<() => void>;
}

export class TenantSlots {
  private readonly tenants = new Map<string, TenantState>();

  /**
   * @param perTenant - concurrent PDF tasks per tenant [TENANT_PDF_TASKS].
   * @param queuePerTenant - uploads of one tenant that may wait for a slot [TENANT_PDF_QUEUE].
   */
  constructor(
    readonly perTenant: number,
    readonly queuePerTenant: number,
  ) {}

  /** Tasks of a tenant running now (tests). */
  running(tenantId: string): number {
    return this.tenants.get(tenantId)?.running ?? 0;
  }

  /**
   * Runs `work` in one of the tenant's slots, after the tenant's earlier uploads.
   * @throws DocorchError THROTTLED (429, Retry-After 1 s) when the tenant's queue is full.
   */
  async run<T>(tenantId: string, work: () => Promise<T>): Promise<T> {
    let state = this.tenants.get(tenantId);
    if (!state) {
      state = { running: 0, waiting: [] };
      this.tenants.set(tenantId, state);
    }
    if (state.running >= this.perTenant) {
      if (state.waiting.length >= this.queuePerTenant) {
        throw new DocorchError('THROTTLED', `Too many PDFs of this tenant are being processed on this server; retry shortly`, {
          retryAfterMs: 1_000,
          details: { limit: this.perTenant, queue: this.queuePerTenant, scope: 'pdf-tasks' },
        });
      }
      await new Promise<void>((resolve) => (state as TenantState).waiting.push(resolve));
    } else {
      state.running++;
    }
    try {
      return await work();
    } finally {
      // Hand the slot straight to the next waiter of this tenant, or free it.
      const next = state.waiting.shift();
      if (next) next();
      else if (--state.running === 0) this.tenants.delete(tenantId);
    }
  }
}
