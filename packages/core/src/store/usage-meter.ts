/**
 * Usage and quotas of a tenant, in the tenants table:
 *
 *   USAGE#<tenantId>#<YYYY-MM>  inputTokens, outputTokens, modelCalls, chunks (metered as work is
 *                               done), pagesUsed (pages analysed), pagesCharged (pages admitted this
 *                               month and not released: used + reserved)
 *   TENANT#<tenantId>           inFlight: documents admitted and not yet finished
 *
 * Admission is atomic, so parallel uploads can never overshoot a quota: a document's pages are
 * reserved with one conditional update (`pagesCharged <= limit - pages`; DynamoDB conditions cannot
 * add attributes, so the caller computes the bound), and its in-flight slot with another
 * (`inFlight <= limit - 1`). Pages not analysed (a cancelled document, a failed split) are released;
 * the slot is released in the same transaction as the job's terminal transition (StatusTable), so it
 * is released exactly once.
 */
import { GetCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Usage } from '../analysis/types.js';
import { isConditionFailure } from '../aws/conditions.js';
import { DocorchError } from '../errors.js';

/** `YYYY-MM` of a date, in UTC. */
export function usageMonth(at: Date = new Date()): string {
  return at.toISOString().slice(0, 7);
}

/** Milliseconds until the first instant of next month (UTC): when a monthly quota resets. */
export function msUntilNextMonth(at: Date = new Date()): number {
  return Date.UTC(at.getUTCFullYear(), at.getUTCMonth() + 1, 1) - at.getTime();
}

/** Key of a tenant's usage row for a month. */
export function usageKey(tenantId: string, month: string): { pk: string } {
  return { pk: `USAGE#${tenantId}#${month}` };
}

/**
 * The UpdateItem that adds metered work to a month's row (also used inside the chunk-completion
 * transaction, so a chunk's usage is counted exactly once with the chunk).
 */
export function usageUpdate(tableName: string, tenantId: string, usage: Usage, chunks: number, pages = 0, at: Date = new Date()) {
  return {
    TableName: tableName,
    Key: usageKey(tenantId, usageMonth(at)),
    UpdateExpression: 'SET tenantId = :t, #month = :m ADD inputTokens :i, outputTokens :o, modelCalls :c, chunks :n, pagesUsed :p',
    ExpressionAttributeNames: { '#month': 'month' },
    ExpressionAttributeValues: {
      ':t': tenantId,
      ':m': usageMonth(at),
      ':i': usage.inputTokens,
      ':o': usage.outputTokens,
      ':c': usage.modelCalls,
      ':n': chunks,
      ':p': pages,
    },
  };
}

/** The update that releases a document's in-flight slot (inside the terminal transition's transaction). */
export function releaseSlotUpdate(tableName: string, tenantId: string) {
  return {
    TableName: tableName,
    Key: { pk: `TENANT#${tenantId}` },
    UpdateExpression: 'ADD inFlight :minus',
    ConditionExpression: 'attribute_exists(pk)',
    ExpressionAttributeValues: { ':minus': -1 },
  };
}

/** A tenant's usage in one month, with each quota's used, reserved and limit. */
export interface UsageReport {
  tenantId: string;
  month: string;
  inputTokens: number;
  outputTokens: number;
  modelCalls: number;
  chunks: number;
  quotas: {
    pagesPerMonth: { used: number; reserved: number; limit: number };
    tokensPerMonth: { used: number; limit: number };
    concurrentDocuments: { used: number; limit: number };
  };
}

/** The limits {@link UsageMeter} enforces (a resolved plan). */
export interface QuotaLimits {
  pagesPerMonth: number;
  tokensPerMonth: number;
  concurrentDocuments: number;
}

/** A granted admission, to give back if the request fails before its document exists. */
export interface Admission {
  tenantId: string;
  month: string;
  pages: number;
}

/** An admission whose slot is taken and whose pages are still to be reserved ({@link UsageMeter.takeSlot}). */
export interface PendingAdmission extends Admission {
  /** The month's page quota the reservation must stay within. */
  pagesPerMonth: number;
  /** Milliseconds until the quota resets (Retry-After of a refusal). */
  untilNextMonth: number;
}

/**
 * The conditional update that reserves a pending admission's pages on its month's row: refused
 * (a failed condition) when they would take the month past its quota ({@link UsageMeter.reservePages}).
 */
function reservePagesUpdate(tableName: string, pending: PendingAdmission) {
  return {
    TableName: tableName,
    Key: usageKey(pending.tenantId, pending.month),
    UpdateExpression: 'SET tenantId = :t, #month = :m ADD pagesCharged :n',
    ConditionExpression: 'attribute_not_exists(pagesCharged) OR pagesCharged <= :max',
    ExpressionAttributeNames: { '#month': 'month' },
    ExpressionAttributeValues: { ':t': pending.tenantId, ':m': pending.month, ':n': pending.pages, ':max': pending.pagesPerMonth - pending.pages },
  };
}

/** Usage metering and quota admission. */
export class UsageMeter {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    readonly tableName: string,
  ) {}

  /**
   * Admits a document of `pages` pages: the token quota must not be used up, then an in-flight slot
   * and the pages are reserved atomically (each a conditional update; the slot is given back when
   * the pages do not fit). Throws CONCURRENCY_LIMIT, QUOTA_PAGES_EXCEEDED or QUOTA_TOKENS_EXCEEDED
   * (429, with Retry-After where waiting helps).
   */
  async admit(tenantId: string, pages: number, limits: QuotaLimits, at: Date = new Date()): Promise<Admission> {
    return this.reservePages(await this.takeSlot(tenantId, pages, limits, at));
  }

  /**
   * The second half of {@link UsageMeter.admit}: reserves a pending admission's pages with one
   * conditional update. When they no longer fit (another upload took them since the row was
   * read), or the write fails, the slot is given back and the error thrown (QUOTA_PAGES_EXCEEDED).
   * Its own write, not part of the transaction that creates the document: the month's row is
   * where every chunk completion counts its usage, and a transaction on a hot item is cancelled
   * by each concurrent one.
   */
  async reservePages(pending: PendingAdmission): Promise<Admission> {
    try {
      await this.doc.send(new UpdateCommand(reservePagesUpdate(this.tableName, pending)));
    } catch (err) {
      if (!isConditionFailure(err)) {
        await this.releaseSlot(pending.tenantId);
        throw err;
      }
      throw await this.pagesRefused(pending);
    }
    return { tenantId: pending.tenantId, month: pending.month, pages: pending.pages };
  }

  /**
   * The first half of {@link UsageMeter.admit}: checks the token quota and the page count against
   * the month's quota, and takes the in-flight slot; {@link UsageMeter.reservePages} then reserves
   * the pages (pipeline/submission.ts does so while the sync path's analyses start).
   */
  async takeSlot(tenantId: string, pages: number, limits: QuotaLimits, at: Date = new Date()): Promise<PendingAdmission> {
    const month = usageMonth(at);
    const untilNextMonth = msUntilNextMonth(at);
    // The month's row and the in-flight slot at once (one round trip less on every upload); a
    // slot taken for a request refused on its quota is given back, and the quota's answer wins.
    const [read, slot] = await Promise.allSettled([this.row(tenantId, month), this.acquireSlot(tenantId, limits.concurrentDocuments)]);
    const refuse = async (err: unknown): Promise<never> => {
      if (slot.status === 'fulfilled') await this.releaseSlot(tenantId);
      throw err;
    };
    if (read.status === 'rejected') return refuse(read.reason);
    const row = read.value;
    const tokens = Number(row?.inputTokens ?? 0) + Number(row?.outputTokens ?? 0);
    if (tokens >= limits.tokensPerMonth) {
      return refuse(
        new DocorchError('QUOTA_TOKENS_EXCEEDED', `The monthly model token quota (${limits.tokensPerMonth}) is used up until the start of next month (UTC)`, {
          retryAfterMs: untilNextMonth,
          details: { quota: 'tokensPerMonth', used: tokens, limit: limits.tokensPerMonth },
        }),
      );
    }
    // As the month's row was read: a reservation then refused would only be a race with another upload.
    const charged = Number(row?.pagesCharged ?? 0);
    if (charged + pages > limits.pagesPerMonth) return refuse(pagesExceeded(pages, charged, limits.pagesPerMonth, untilNextMonth));
    if (slot.status === 'rejected') throw slot.reason;
    return { tenantId, month, pages, pagesPerMonth: limits.pagesPerMonth, untilNextMonth };
  }

  /** The answer when a pending admission's pages did not fit: its slot is given back, and the 429 says how much is used. */
  private async pagesRefused(pending: PendingAdmission): Promise<DocorchError> {
    await this.releaseSlot(pending.tenantId);
    const now = await this.row(pending.tenantId, pending.month);
    return pagesExceeded(pending.pages, Number(now?.pagesCharged ?? 0), pending.pagesPerMonth, pending.untilNextMonth);
  }

  /** Gives back an admission whose document was never created (the request failed on the way). */
  async cancelAdmission(admission: Admission): Promise<void> {
    await Promise.all([this.releasePages(admission.tenantId, admission.month, admission.pages), this.releaseSlot(admission.tenantId)]);
  }

  /** Releases pages reserved and never analysed (a cancelled document, a failed split). */
  async releasePages(tenantId: string, month: string, pages: number): Promise<void> {
    if (pages <= 0) return;
    await this.doc.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: usageKey(tenantId, month),
        UpdateExpression: 'ADD pagesCharged :minus',
        ExpressionAttributeValues: { ':minus': -pages },
      }),
    );
  }

  /** Releases an in-flight slot outside a terminal transition (an admission given back). */
  async releaseSlot(tenantId: string): Promise<void> {
    await this.doc.send(new UpdateCommand(releaseSlotUpdate(this.tableName, tenantId))).catch((err: unknown) => {
      if (!isConditionFailure(err)) throw err;
    });
  }

  /** Adds metered work not counted with a chunk (the reduce, a sync run). */
  async addUsage(tenantId: string, usage: Usage, chunks = 0, pages = 0): Promise<void> {
    if (usage.modelCalls === 0 && usage.inputTokens === 0 && usage.outputTokens === 0 && chunks === 0 && pages === 0) return;
    await this.doc.send(new UpdateCommand(usageUpdate(this.tableName, tenantId, usage, chunks, pages)));
  }

  /** The tenant's usage in a month with each quota (zeros when nothing was used). */
  async report(tenantId: string, limits: QuotaLimits, month: string = usageMonth()): Promise<UsageReport> {
    const [row, tenant] = await Promise.all([
      this.row(tenantId, month),
      this.doc.send(new GetCommand({ TableName: this.tableName, Key: { pk: `TENANT#${tenantId}` }, ConsistentRead: true })),
    ]);
    const n = (k: string) => Number(row?.[k] ?? 0);
    const inFlight = month === usageMonth() ? Math.max(0, Number(tenant.Item?.inFlight ?? 0)) : 0;
    return {
      tenantId,
      month,
      inputTokens: n('inputTokens'),
      outputTokens: n('outputTokens'),
      modelCalls: n('modelCalls'),
      chunks: n('chunks'),
      quotas: {
        pagesPerMonth: { used: n('pagesUsed'), reserved: Math.max(0, n('pagesCharged') - n('pagesUsed')), limit: limits.pagesPerMonth },
        tokensPerMonth: { used: n('inputTokens') + n('outputTokens'), limit: limits.tokensPerMonth },
        concurrentDocuments: { used: inFlight, limit: limits.concurrentDocuments },
      },
    };
  }

  private async acquireSlot(tenantId: string, limit: number): Promise<void> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: `TENANT#${tenantId}` },
          UpdateExpression: 'ADD inFlight :one',
          ConditionExpression: 'attribute_exists(pk) AND (attribute_not_exists(inFlight) OR inFlight <= :max)',
          ExpressionAttributeValues: { ':one': 1, ':max': limit - 1 },
        }),
      );
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
      throw new DocorchError('CONCURRENCY_LIMIT', `${limit} documents of this tenant are in flight; retry when one finishes`, {
        retryAfterMs: 5_000,
        details: { quota: 'concurrentDocuments', limit },
      });
    }
  }

  private async row(tenantId: string, month: string): Promise<Record<string, unknown> | undefined> {
    const out = await this.doc.send(new GetCommand({ TableName: this.tableName, Key: usageKey(tenantId, month), ConsistentRead: true }));
    return out.Item;
  }
}

function pagesExceeded(pages: number, charged: number, limit: number, retryAfterMs: number): DocorchError {
  return new DocorchError('QUOTA_PAGES_EXCEEDED', `This document's ${pages} pages do not fit the monthly page quota (${charged} of ${limit} used or reserved)`, {
    retryAfterMs,
    details: { quota: 'pagesPerMonth', pages, used: charged, limit },
  });
}
