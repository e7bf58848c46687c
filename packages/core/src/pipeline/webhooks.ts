/**
 * Webhooks (docs/webhooks.md): a document's terminal transition schedules one delivery per target
 * (the upload's `webhookUrl`, the tenant's URL); workers send what is due, signed, with retries and
 * backoff for WEBHOOK_RETRY_WINDOW_MS.
 *
 * - Scheduling runs where the terminal transition is observed: the aggregator, on the status
 *   table's stream (a Lambda on AWS, the local poller in the stack). The stream record is retried
 *   until the rows exist, and their ids derive from the event, so a retry creates nothing twice.
 * - Sending runs in every worker ({@link WebhookDispatcher}): each polls the `byDue` index and
 *   claims a due delivery with a conditional write before it sends, so two workers never send the
 *   same attempt, and a worker that dies mid-attempt leaves a claim that falls due again.
 */
import { createHash } from 'node:crypto';
import pLimit from 'p-limit';
import { TERMINAL_STATUSES, progressOf, type Job } from '../jobs/model.js';
import { toDocorchError } from '../errors.js';
import type { WebhookDelivery } from '../store/webhook-deliveries.js';
import { webhookEventOf, type WebhookEvent } from '../webhooks/events.js';
import { signWebhook, SIGNATURE_HEADER } from '../webhooks/signature.js';
import { httpSender, type WebhookSender } from '../webhooks/transport.js';
import type { PipelineContext } from './context.js';

const short = (s: string) => createHash('sha256').update(s).digest('base64url').slice(0, 22);

/** The event id of a document's terminal event: the same for every target and attempt. */
export function webhookEventId(tenantId: string, documentId: string, event: WebhookEvent): string {
  return `evt_${short(`${tenantId}|${documentId}|${event}`)}`;
}

/** The body sent for a document's event. */
export function webhookPayload(job: Job, event: WebhookEvent, eventId: string, createdAt: string): string {
  const base = `/v1/documents/${job.documentId}`;
  return JSON.stringify({
    id: eventId,
    type: event,
    createdAt,
    data: {
      document: {
        id: job.documentId,
        status: job.status,
        filename: job.filename,
        pages: { total: job.pageCount ?? null, selected: job.pagesSelected ?? null },
        progress: progressOf(job),
        error: job.error ?? null,
        completedAt: job.completedAt ?? null,
        links: { self: base, result: job.resultKey ? `${base}/result` : null, deliveries: `${base}/deliveries` },
      },
    },
  });
}

/**
 * Schedules the deliveries of a job that just reached a terminal status (one per distinct URL:
 * the upload's, then the tenant's). Idempotent. Returns how many rows it created.
 */
export async function scheduleWebhooks(ctx: PipelineContext, job: Job): Promise<number> {
  const event = webhookEventOf(job.status);
  if (!event) return 0;
  const tenant = await ctx.tenants.getTenant(job.tenantId);
  const targets: Array<{ url: string; source: 'document' | 'tenant' }> = [];
  if (job.webhookUrl) targets.push({ url: job.webhookUrl, source: 'document' });
  if (tenant?.webhookUrl && tenant.webhookUrl !== job.webhookUrl) targets.push({ url: tenant.webhookUrl, source: 'tenant' });
  if (targets.length === 0) return 0;
  const eventId = webhookEventId(job.tenantId, job.documentId, event);
  const createdAt = job.completedAt ?? job.updatedAt;
  const payload = webhookPayload(job, event, eventId, createdAt);
  let created = 0;
  for (const t of targets) {
    const deliveryId = `dlv_${short(`${eventId}|${t.source}|${t.url}`)}`;
    const made = await ctx.webhooks.create({
      tenantId: job.tenantId,
      documentId: job.documentId,
      deliveryId,
      eventId,
      event,
      url: t.url,
      source: t.source,
      payload,
      createdAt: new Date().toISOString(),
      windowStart: createdAt,
    });
    if (made) {
      created++;
      ctx.logger.info({ tenantId: job.tenantId, documentId: job.documentId, deliveryId, event, source: t.source }, 'webhook scheduled');
    }
  }
  return created;
}

/** True when a status stream record shows a job's transition into a terminal status. */
export function isTerminalTransition(oldJob: Pick<Job, 'status'> | undefined, newJob: Pick<Job, 'status'>): boolean {
  return TERMINAL_STATUSES.has(newJob.status) && (!oldJob || !TERMINAL_STATUSES.has(oldJob.status));
}

/** The delay before attempt `n + 1` after `n` failed ones: base doubling to max, with ±20% jitter. */
export function webhookBackoffMs(failedAttempts: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const plain = Math.min(maxMs, baseMs * 2 ** Math.max(0, failedAttempts - 1));
  return Math.round(plain * (0.8 + 0.4 * random()));
}

/** Options of {@link WebhookDispatcher}. */
export interface WebhookDispatcherOptions {
  /** This process's id (the claim owner). */
  owner: string;
  /** Sends one request (tests inject one that records). @defaultValue the real HTTP sender */
  sender?: WebhookSender;
}

/** Sends due deliveries; one per worker process. */
export class WebhookDispatcher {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();
  private stopped = false;
  private readonly limit: ReturnType<typeof pLimit>;
  private readonly sender: WebhookSender;

  constructor(
    private readonly ctx: PipelineContext,
    private readonly options: WebhookDispatcherOptions,
  ) {
    this.limit = pLimit(ctx.config.WEBHOOK_CONCURRENCY);
    this.sender = options.sender ?? httpSender;
  }

  start(): void {
    if (this.timer || this.stopped) return;
    this.schedule(0);
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.tick().then(
        () => undefined,
        () => undefined,
      ).finally(() => this.schedule(this.ctx.config.WEBHOOK_POLL_MS));
    }, delayMs);
    this.timer.unref();
  }

  /** One pass: claims and sends what is due now. Exposed for tests. */
  async tick(): Promise<number> {
    try {
      const due = await this.ctx.webhooks.due(new Date(), this.ctx.config.WEBHOOK_CONCURRENCY * 4);
      const sent = await Promise.all(due.map((row) => this.limit(() => this.attempt(row))));
      return sent.filter(Boolean).length;
    } catch (err) {
      this.ctx.logger.warn({ err }, 'webhook dispatch pass failed; the next one retries');
      return 0;
    }
  }

  private async attempt(row: { pk: string; sk: string; dueAt: string }): Promise<boolean> {
    const { config } = this.ctx;
    // The claim outlives the attempt's deadline; if this process dies, the delivery falls due again then.
    const until = new Date(Date.now() + config.WEBHOOK_TIMEOUT_MS * 3 + 5_000);
    const d = await this.ctx.webhooks.claim(row, this.options.owner, until);
    if (!d) return false;
    const log = this.ctx.logger.child({ tenantId: d.tenantId, documentId: d.documentId, deliveryId: d.deliveryId, attempt: d.attempts.length + 1 });
    const started = Date.now();
    let statusCode: number | null = null;
    let error: string | undefined;
    let refused = false;
    try {
      const target = await this.ctx.webhookGuard.vet(d.url);
      const secret = await this.ctx.tenants.webhookSecret(d.tenantId);
      const sentAt = Math.floor(Date.now() / 1000);
      const headers = {
        'Content-Type': 'application/json',
        'User-Agent': 'docorch-webhooks/1.0',
        'Docorch-Event': d.event,
        'Docorch-Event-Id': d.eventId,
        'Docorch-Delivery': d.deliveryId,
        'Docorch-Attempt': String(d.attempts.length + 1),
        [SIGNATURE_HEADER]: signWebhook(secret, sentAt, d.payload),
      };
      const res = await this.sender(target, d.payload, headers, { timeoutMs: config.WEBHOOK_TIMEOUT_MS, maxResponseBytes: config.WEBHOOK_MAX_RESPONSE_BYTES });
      statusCode = res.statusCode;
      error = res.error;
    } catch (err) {
      const e = toDocorchError(err);
      // A target refused now (its name resolves to a private address) is not retried: it is an
      // attempt at the network behind docorch, or a misconfiguration to fix and redeliver.
      refused = e.code === 'INVALID_REQUEST';
      error = e.message;
    }
    const attempt = { at: new Date(started).toISOString(), statusCode, error: error ?? null, durationMs: Date.now() - started };
    const failedAttempts = d.attempts.length + 1;
    let next: { status: 'delivered' | 'failed' } | { status: 'pending'; retryAt: Date };
    if (!error) next = { status: 'delivered' };
    else if (refused) next = { status: 'failed' };
    else {
      const retryAt = new Date(Date.now() + webhookBackoffMs(failedAttempts, config.WEBHOOK_RETRY_BASE_MS, config.WEBHOOK_RETRY_MAX_MS));
      next = retryAt.getTime() - Date.parse(d.windowStart) > config.WEBHOOK_RETRY_WINDOW_MS ? { status: 'failed' } : { status: 'pending', retryAt };
    }
    const recorded = await this.ctx.webhooks.recordAttempt(d, this.options.owner, attempt, next);
    const outcome = next.status === 'delivered' ? 'delivered' : refused ? 'refused' : next.status === 'failed' ? 'failed' : 'retry';
    this.ctx.metrics.webhookAttempts.inc({ outcome });
    log.info(
      { statusCode, error, outcome, durationMs: attempt.durationMs, ...(next.status === 'pending' ? { retryAt: next.retryAt.toISOString() } : {}), recorded },
      'webhook attempt',
    );
    return true;
  }

  /** Stops polling and waits for the pass in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }
}

/** The public view of a delivery (GET .../deliveries). */
export function deliveryView(d: WebhookDelivery) {
  return {
    id: d.deliveryId,
    eventId: d.eventId,
    event: d.event,
    url: d.url,
    status: d.status,
    attempts: d.attempts,
    nextAttemptAt: d.status === 'pending' ? (d.nextAttemptAt ?? null) : null,
    createdAt: d.createdAt,
  };
}
