/**
 * The document-status table: one JOB row per document (and, with the async pipeline, one row per
 * chunk). Every conditional transition of a job row lives here, named after what it does; callers
 * never build UpdateExpressions themselves.
 */
import {
  BatchWriteCommand,
  DeleteCommand,
  GetCommand,
  PutCommand,
  QueryCommand,
  TransactWriteCommand,
  UpdateCommand,
  type DynamoDBDocumentClient,
  type TransactWriteCommandInput,
} from '@aws-sdk/lib-dynamodb';
import { TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import { DocorchError } from '../errors.js';
import type { ChunkPlan, ChunkStatus, Job, JobStatus, RecordedError } from '../jobs/model.js';
import { statusesLeadingTo, TERMINAL_STATUSES } from '../jobs/model.js';
import { isConditionFailure } from './conditions.js';
import { STATUS_TABLE_KEYS } from './resources.js';
import { releaseSlotUpdate, usageKey, usageUpdate } from '../store/usage-meter.js';
import type { Usage } from '../analysis/types.js';
import pLimit from 'p-limit';
import { sleep, withRetry } from '../retry/backoff.js';

const JOB_SK = 'JOB';
/** DynamoDB transactions take at most 100 items; one is the job row. */
const MAX_TRANSACTION_ITEMS = 100;

/** Sort key of a chunk row (zero-padded so rows sort by index). */
export function chunkSk(index: number): string {
  return `CHUNK#${String(index).padStart(6, '0')}`;
}

/** A chunk row. */
export interface ChunkRow {
  index: number;
  firstPage: number;
  lastPage: number;
  status: ChunkStatus;
  /** Delivery attempt that last claimed the chunk (from 1). */
  attempt: number;
  /** Worker holding the claim while `processing`. */
  claimOwner?: string;
  /**
   * Bumped by every claim and heartbeat. A waiter that sees it unchanged for the claim timeout,
   * on its own monotonic clock, may take the claim over (no cross-host clock comparison).
   */
  claimCounter: number;
  error?: RecordedError;
  /** The counted result's object in the results bucket (absent: the chunk's default key). */
  resultKey?: string;
  /**
   * Set once the chunk's input is in S3, on chunks the splitter does not publish itself (beyond
   * the fair-share window): the finished predecessor publishes the chunk only then.
   */
  inputReady?: boolean;
  /** On a finished chunk: its fair-share successor was published (a redelivery need not again). */
  nextReleased?: boolean;
  /**
   * The dead letter (its sort key) holding this pending chunk: its record was dead-lettered and it
   * waits for a replay or the reconciler (pipeline/dead-letter.ts). Held chunks are not re-published.
   */
  heldBy?: string;
  updatedAt: string;
}

/** The page numbers of a chunk row (its pages are consecutive). */
export function chunkRowPages(row: Pick<ChunkRow, 'firstPage' | 'lastPage'>): number[] {
  return Array.from({ length: row.lastPage - row.firstPage + 1 }, (_, i) => row.firstPage + i);
}

/** Outcome of {@link StatusTable.claimChunk}. */
export type ClaimOutcome =
  | { kind: 'claimed'; row: ChunkRow }
  /** Already succeeded or failed: a redelivery; nothing to do. */
  | { kind: 'done'; row: ChunkRow }
  /** Another worker holds a live-looking claim: wait and retry with its counter. */
  | { kind: 'busy'; row: ChunkRow }
  /** The job is not processing (cancelled, failed, gone). */
  | { kind: 'job-inactive'; status: JobStatus | undefined };
/** Name of the GSI listing a tenant's jobs newest first. */
export const BY_TENANT_INDEX = STATUS_TABLE_KEYS.byTenantIndex;

/** Primary key of a document's rows. */
export function documentPk(tenantId: string, documentId: string): string {
  return `${tenantId}#${documentId}`;
}

/** A page of a tenant's jobs. */
export interface JobPage {
  jobs: Job[];
  /** Opaque cursor of the next page; absent on the last page. */
  nextCursor?: string;
}

/** An assembly claim as held: its owner and epoch (claims/assembly-claim.ts). */
export interface AssemblyClaimRef {
  owner: string;
  epoch: number;
}

/** What {@link StatusTable.createJob} writes with the job row, all or nothing. */
export interface CreateJobOptions {
  /** The document's file-metadata row (FilesTable.putItem). @defaultValue none */
  file?: { TableName: string; Item: Record<string, unknown> };
  /**
   * The request's idempotency binding must still name this document (FilesTable.bindingCheck);
   * when a retry took it over, nothing is written and CONFLICT is thrown. @defaultValue none
   */
  binding?: { TableName: string; Key: Record<string, unknown>; ConditionExpression: string; ExpressionAttributeValues: Record<string, unknown> };
}

/** Options of {@link StatusTable.transition}. */
export interface TransitionOptions {
  /** Refused (CONFLICT) once the reconciler fenced the sync job (its own writes after a hand-over). */
  unlessFenced?: boolean;
  /**
   * The job as the caller just read or wrote it (e.g. the previous transition's answer): the
   * terminal transition of an admitted job starts from it instead of reading the row (it is
   * conditional on what it saw, so a stale copy only costs the read it saved, and a retry).
   * @defaultValue the row is read
   */
  seen?: Job;
  /**
   * Usage to meter with the transition, in the same write when the job is admitted (exactly once
   * with it), else right after it. @defaultValue nothing metered
   */
  meter?: { usage: Usage; chunks: number; pages: number };
}

/** Fields a transition may set together with the status. */
export type JobPatch = Partial<Omit<Job, 'tenantId' | 'documentId' | 'status' | 'createdAt'>>;

/**
 * Sparse index of documents the reconciler watches (`byOpenStatus`: `openStatus`, `openAt`):
 * `openStatus` is the status on every non-terminal job row (and on a cancelled one until its
 * tombstone is purged), removed on every other terminal transition; `openAt` is the time of the
 * last transition (or of the reconciler's last look). Chunk counts move `updatedAt` only, so a
 * busy document's hot row never writes the index. The sweep queries it per status for rows not
 * moved since a cutoff and re-reads each (its `updatedAt` says whether it is really stale).
 */
const OPEN_STATUS = STATUS_TABLE_KEYS.openStatus;
const OPEN_AT = STATUS_TABLE_KEYS.openAt;

/** Name of the sparse GSI of open jobs by status and last update. */
export const BY_OPEN_STATUS_INDEX = STATUS_TABLE_KEYS.byOpenStatusIndex;

const KEY_ATTRS = new Set(['pk', 'sk', 'gsi1pk', 'gsi1sk', 'entity', OPEN_STATUS, OPEN_AT]);

function toChunk(item: Record<string, unknown>): ChunkRow {
  const row: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(item)) if (!KEY_ATTRS.has(k)) row[k] = v;
  return row as unknown as ChunkRow;
}

/** The rows of new chunks (pending, or claimed by the sync hand-off's owner). */
function chunkItems(
  pk: string,
  chunks: ReadonlyArray<ChunkPlan & { status?: ChunkStatus; claimOwner?: string }>,
  extra: { inputReady?: boolean } = {},
): Array<Record<string, unknown> & { index: number }> {
  const now = new Date().toISOString();
  return chunks.map((c) => ({
    pk,
    sk: chunkSk(c.index),
    entity: 'CHUNK',
    index: c.index,
    firstPage: c.pages[0] ?? 0,
    lastPage: c.pages[c.pages.length - 1] ?? 0,
    status: c.status ?? 'pending',
    // A chunk committed as claimed (sync hand-off) is on its first attempt with a live claim.
    attempt: c.claimOwner ? 1 : 0,
    claimCounter: c.claimOwner ? 1 : 0,
    ...(c.claimOwner ? { claimOwner: c.claimOwner } : {}),
    ...(extra.inputReady ? { inputReady: true } : {}),
    updatedAt: now,
  }));
}

/**
 * The transaction items that give back an admission: the in-flight slot, and `pages` of the
 * month's page quota when there are any to give back.
 */
function admissionRelease(usageTable: string, tenantId: string, month: string, pages: number): NonNullable<TransactWriteCommandInput['TransactItems']> {
  return [
    { Update: releaseSlotUpdate(usageTable, tenantId) },
    ...(pages > 0
      ? [
          {
            Update: {
              TableName: usageTable,
              Key: usageKey(tenantId, month),
              UpdateExpression: 'ADD pagesCharged :minus',
              ExpressionAttributeValues: { ':minus': -pages },
            },
          },
        ]
      : []),
  ];
}

function toJob(item: Record<string, unknown> | undefined): Job | undefined {
  if (!item) return undefined;
  const job: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(item)) if (!KEY_ATTRS.has(k)) job[k] = v;
  return job as unknown as Job;
}


/** Repository of job rows. */
export class StatusTable {
  /**
   * @param usageTableName - the tenants table, where chunk completions add the tenant's monthly
   *   usage in the same transaction (so usage is counted exactly once per chunk).
   */
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    readonly tableName: string,
    private readonly usageTableName?: string,
    /** Told of every terminal transition this process makes (metrics: documents by status). */
    private readonly onTerminal?: (status: JobStatus) => void,
  ) {}

  /**
   * Creates the job row; CONFLICT if the document id already exists. With `options`, in one
   * transaction with the document's file-metadata row (both or neither) and on condition that the
   * request's idempotency binding still names this document.
   */
  async createJob(job: Job, options: CreateJobOptions = {}): Promise<void> {
    const item = {
      ...job,
      pk: documentPk(job.tenantId, job.documentId),
      sk: JOB_SK,
      entity: 'JOB',
      gsi1pk: job.tenantId,
      gsi1sk: `${job.createdAt}#${job.documentId}`,
      [OPEN_STATUS]: job.status,
      [OPEN_AT]: job.updatedAt,
    };
    const conflict = (err: unknown) => new DocorchError('CONFLICT', `Document ${job.documentId} already exists`, { cause: err });
    try {
      if (!options.file && !options.binding) await this.doc.send(new PutCommand({ TableName: this.tableName, Item: item, ConditionExpression: 'attribute_not_exists(pk)' }));
      else {
        await this.transact([
          { Put: { TableName: this.tableName, Item: item, ConditionExpression: 'attribute_not_exists(pk)' } },
          ...(options.binding ? [{ ConditionCheck: options.binding }] : []),
          ...(options.file ? [{ Put: options.file }] : []),
        ]);
      }
    } catch (err) {
      const codes = cancellationCodes(err);
      if (options.binding && codes[1] === 'ConditionalCheckFailed') {
        throw new DocorchError('CONFLICT', `A retry with this request's Idempotency-Key took it over; document ${job.documentId} was not created`, { cause: err });
      }
      if (isConditionFailure(err) || codes[0] === 'ConditionalCheckFailed') throw conflict(err);
      throw err;
    }
  }

  /** Reads a job (strongly consistent); undefined when absent. */
  async getJob(tenantId: string, documentId: string): Promise<Job | undefined> {
    const out = await this.doc.send(
      new GetCommand({
        TableName: this.tableName,
        Key: { pk: documentPk(tenantId, documentId), sk: JOB_SK },
        ConsistentRead: true,
      }),
    );
    return toJob(out.Item);
  }

  /**
   * Moves a job to `to`, atomically with `patch`, only from a status that may lead there
   * (jobs/model.ts). Throws CONFLICT with the current status when the condition fails, e.g. the
   * job was cancelled meanwhile, or NOT_FOUND.
   */
  async transition(tenantId: string, documentId: string, to: JobStatus, patch: JobPatch = {}, options: TransitionOptions = {}): Promise<Job> {
    if (TERMINAL_STATUSES.has(to) && this.usageTableName) {
      const admitted = await this.finishAdmitted(tenantId, documentId, to, patch, statusesLeadingTo(to), undefined, options);
      if (admitted) return admitted;
    }
    const job = await this.updateStatus(tenantId, documentId, to, patch, statusesLeadingTo(to), options);
    await this.meterApart(tenantId, options.meter);
    return job;
  }

  /** Meters `meter` in a write of its own (a transition that could not carry it in its transaction). */
  private async meterApart(tenantId: string, meter: TransitionOptions['meter']): Promise<void> {
    if (meter && this.usageTableName) await this.doc.send(new UpdateCommand(usageUpdate(this.usageTableName, tenantId, meter.usage, meter.chunks, meter.pages)));
  }

  /** The plain conditional status update (no admission to release): from one of `from` to `to`. */
  private async updateStatus(tenantId: string, documentId: string, to: JobStatus, patch: JobPatch, from: readonly JobStatus[], options: TransitionOptions = {}): Promise<Job> {
    const { names, values, expression } = patchExpression({ ...patch, status: to });
    const fromPlaceholders = from.map((status, i) => {
      values[`:from${i}`] = status;
      return `:from${i}`;
    });
    const fence = options.unlessFenced ? ' AND attribute_not_exists(syncFenced)' : '';
    try {
      const out = await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: documentPk(tenantId, documentId), sk: JOB_SK },
          UpdateExpression: expression,
          ConditionExpression: `attribute_exists(pk) AND #status IN (${fromPlaceholders.join(', ')})${fence}`,
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
          ReturnValues: 'ALL_NEW',
        }),
      );
      if (TERMINAL_STATUSES.has(to)) this.onTerminal?.(to);
      return toJob(out.Attributes) as Job;
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
      const current = await this.getJob(tenantId, documentId);
      if (!current) throw new DocorchError('NOT_FOUND', `Document ${documentId} not found`, { cause: err });
      throw new DocorchError('CONFLICT', `Document ${documentId} is ${current.status}; cannot move to ${to}`, {
        cause: err,
        details: { documentStatus: current.status, to },
      });
    }
  }

  /**
   * The terminal transition of an admitted job (one with `admission`), in one transaction with the
   * release of its in-flight slot and, for `cancelled` and `failed`, of the pages it reserved and
   * never analysed. The job must still be in `from` (and claimed by `owner`, for an assembly) with
   * the `pagesDone` read, so a chunk counted meanwhile makes the transaction retry with the new
   * figure: the slot and the pages are released exactly once, with the exact count.
   * Returns undefined for a job without admission (the caller makes the plain transition).
   */
  private async finishAdmitted(
    tenantId: string,
    documentId: string,
    to: JobStatus,
    patch: JobPatch,
    from: readonly JobStatus[],
    claim?: AssemblyClaimRef,
    options: TransitionOptions = {},
  ): Promise<Job | undefined> {
    const usageTable = this.usageTableName as string;
    for (let attempt = 1; ; attempt++) {
      const job = attempt === 1 && options.seen ? options.seen : await this.getJob(tenantId, documentId);
      if (!job) throw new DocorchError('NOT_FOUND', `Document ${documentId} not found`);
      if (!job.admission) return undefined;
      if (!from.includes(job.status) || (claim !== undefined && (job.assemblyOwner !== claim.owner || job.assemblyEpoch !== claim.epoch)) || (options.unlessFenced && job.syncFenced)) {
        throw new DocorchError('CONFLICT', `Document ${documentId} is ${job.status}; cannot move to ${to}`, { details: { documentStatus: job.status, to } });
      }
      const done = patch.pagesDone ?? job.pagesDone ?? 0;
      const release = to === 'cancelled' || to === 'failed' ? Math.max(0, job.admission.pages - done) : 0;
      const { names, values, expression } = patchExpression({ ...patch, status: to });
      values[':seenStatus'] = job.status;
      if (claim) {
        values[':claimOwner'] = claim.owner;
        values[':claimEpoch'] = claim.epoch;
      }
      values[':seenDone'] = job.pagesDone ?? 0;
      const { meter } = options;
      const meterItem = meter ? usageUpdate(usageTable, tenantId, meter.usage, meter.chunks, meter.pages) : undefined;
      // One write per item in a transaction: pages released from the same month's row go in the metering update.
      const sameRow = meterItem !== undefined && release > 0 && meterItem.Key.pk === usageKey(tenantId, job.admission.month).pk;
      if (meterItem && sameRow) {
        meterItem.UpdateExpression += ', pagesCharged :minus';
        (meterItem.ExpressionAttributeValues as Record<string, unknown>)[':minus'] = -release;
      }
      try {
        await this.transact([
          {
            Update: {
              TableName: this.tableName,
              Key: { pk: documentPk(tenantId, documentId), sk: JOB_SK },
              UpdateExpression: expression,
              ConditionExpression: `#status = :seenStatus AND (attribute_not_exists(pagesDone) OR pagesDone = :seenDone)${options.unlessFenced ? ' AND attribute_not_exists(syncFenced)' : ''}${claim ? ' AND assemblyOwner = :claimOwner AND assemblyEpoch = :claimEpoch' : ''}`,
              ExpressionAttributeNames: names,
              ExpressionAttributeValues: values,
            },
          },
          ...admissionRelease(usageTable, tenantId, job.admission.month, sameRow ? 0 : release),
          ...(meterItem ? [{ Update: meterItem }] : []),
        ]);
        if (TERMINAL_STATUSES.has(to)) this.onTerminal?.(to);
        return { ...job, ...patch, status: to } as Job;
      } catch (err) {
        if (!isTransactionConflict(err)) throw err;
        // Chunks are being counted faster than a read-and-write round trip (a busy document
        // being cancelled or failed): stop the counting first, then release with the frozen count.
        if (attempt >= 3 && (to === 'cancelled' || to === 'failed')) return this.finishInTwoSteps(tenantId, documentId, to, patch, from, options);
        // Our read went stale (a chunk counted, or the job moved): read again and decide again.
        if (attempt < 10) continue;
        throw err;
      }
    }
  }

  /**
   * `cancelled`/`failed` of a job whose chunks keep being counted: first the status moves (a plain
   * conditional update, which stops every further count: counts are conditional on
   * `processing`) with a `releasePending` marker, then {@link StatusTable.releaseAdmission}
   * releases the slot and the pages not analysed, exactly once. If the process dies in between,
   * the marker stays and the next DELETE of the document (or a sweep) finishes the release.
   */
  private async finishInTwoSteps(tenantId: string, documentId: string, to: JobStatus, patch: JobPatch, from: readonly JobStatus[], options: TransitionOptions): Promise<Job> {
    await this.updateStatus(tenantId, documentId, to, { ...patch, releasePending: true }, from, options);
    await this.releaseAdmission(tenantId, documentId);
    await this.meterApart(tenantId, options.meter);
    return (await this.getJob(tenantId, documentId)) as Job;
  }

  /**
   * Finishes a release left pending by {@link StatusTable.finishInTwoSteps} (idempotent: a job
   * without the marker is left alone). Returns whether it released anything.
   */
  async releaseAdmission(tenantId: string, documentId: string): Promise<boolean> {
    const job = await this.getJob(tenantId, documentId);
    if (!job?.admission || !job.releasePending || !this.usageTableName) return false;
    const release = Math.max(0, job.admission.pages - (job.pagesDone ?? 0));
    try {
      await this.transact([
        {
          Update: {
            TableName: this.tableName,
            Key: { pk: documentPk(tenantId, documentId), sk: JOB_SK },
            UpdateExpression: 'REMOVE releasePending',
            ConditionExpression: 'releasePending = :true AND #status = :status',
            ExpressionAttributeNames: { '#status': 'status' },
            ExpressionAttributeValues: { ':true': true, ':status': job.status },
          },
        },
        ...admissionRelease(this.usageTableName, tenantId, job.admission.month, release),
      ]);
      return true;
    } catch (err) {
      if (isTransactionConflict(err)) return false; // released by someone else meanwhile
      throw err;
    }
  }

  // ---- chunk rows -------------------------------------------------------------------------

  /**
   * Commits a split: the job moves from `from` to `processing` with `chunksTotal` (and the patch)
   * in one transaction with the first chunk rows (as many as fit beside the job row: 99); the
   * rows beyond are created right after, only if absent. (The async splitter commits only the
   * first rows this way and creates the others chunk by chunk, see pipeline/split.ts.)
   *
   * A crash between the two steps leaves a `processing` job with rows missing; the split's
   * resumption creates them again (planning is deterministic, see {@link StatusTable.createChunkRows}).
   * A second splitter of the same document (a redelivered record) is refused at the transaction
   * (CONFLICT) and so never resets a row the fleet is working on.
   */
  async commitChunks(
    tenantId: string,
    documentId: string,
    chunks: ReadonlyArray<ChunkPlan & { status?: ChunkStatus; claimOwner?: string }>,
    patch: JobPatch & { chunksTotal: number },
    from: JobStatus = 'splitting',
  ): Promise<Job> {
    const pk = documentPk(tenantId, documentId);
    const items = chunkItems(pk, chunks);
    const inTransaction = items.slice(0, MAX_TRANSACTION_ITEMS - 1);
    const { names, values, expression } = patchExpression({ ...patch, status: 'processing' });
    values[':from'] = from;
    try {
      await this.transact([
        ...inTransaction.map((Item) => ({ Put: { TableName: this.tableName, Item } })),
        {
          Update: {
            TableName: this.tableName,
            Key: { pk, sk: JOB_SK },
            UpdateExpression: expression,
            // The sync hand-off (from processing) loses to a reconciler that fenced the job.
            ConditionExpression: from === 'processing' ? '#status = :from AND attribute_not_exists(syncFenced)' : '#status = :from',
            ExpressionAttributeNames: names,
            ExpressionAttributeValues: values,
          },
        },
      ]);
    } catch (err) {
      if (!isTransactionConflict(err)) throw err;
      const current = await this.getJob(tenantId, documentId);
      throw new DocorchError('CONFLICT', `Document ${documentId} is ${current?.status ?? 'gone'}; cannot commit its chunks`, {
        cause: err,
        details: { documentStatus: current?.status },
      });
    }
    await this.createRowsIfAbsent(items.slice(inTransaction.length));
    return (await this.getJob(tenantId, documentId)) as Job;
  }

  /**
   * Creates the rows of chunks that have none (pending), leaving existing rows untouched: the
   * resumption of a split interrupted between its commit and its last rows.
   */
  async createChunkRows(tenantId: string, documentId: string, chunks: readonly ChunkPlan[], options: { inputReady?: boolean } = {}): Promise<void> {
    await this.createRowsIfAbsent(chunkItems(documentPk(tenantId, documentId), chunks, options));
  }

  /**
   * Records that the chunks' inputs are in S3 (rows that exist; idempotent). Rows created
   * without the flag (the commit's first rows) get it here; see pipeline/fair-share.ts.
   */
  async markInputsReady(tenantId: string, documentId: string, indexes: readonly number[]): Promise<void> {
    const limit = pLimit(8);
    await Promise.all(indexes.map((index) => limit(() => this.setChunkFlag(tenantId, documentId, index, 'inputReady'))));
  }

  /**
   * Creates rows that do not exist yet, leaving existing ones untouched: one conditional put per
   * row (`attribute_not_exists`), a few in flight. Single-item writes rather than transactions of
   * 100: they cost half the write capacity and do not hold up the fleet's claims meanwhile.
   */
  private async createRowsIfAbsent(items: ReadonlyArray<Record<string, unknown>>): Promise<void> {
    const limit = pLimit(8);
    await Promise.all(
      items.map((Item) =>
        limit(async () => {
          try {
            await this.doc.send(new PutCommand({ TableName: this.tableName, Item, ConditionExpression: 'attribute_not_exists(sk)' }));
          } catch (err) {
            if (!isConditionFailure(err)) throw err;
          }
        }),
      ),
    );
  }

  /** Deletes every chunk row of a document. */
  async deleteChunks(tenantId: string, documentId: string): Promise<void> {
    const pk = documentPk(tenantId, documentId);
    const rows = await this.listChunks(tenantId, documentId);
    await this.batchWrite(rows.map((r) => ({ DeleteRequest: { Key: { pk, sk: chunkSk(r.index) } } })));
  }

  /** Deletes a job row. */
  async deleteJob(tenantId: string, documentId: string): Promise<void> {
    await this.batchWrite([{ DeleteRequest: { Key: { pk: documentPk(tenantId, documentId), sk: JOB_SK } } }]);
  }

  /** Deletes a job row only while it is in `status` with no admission release pending (a tombstone's purge). */
  async deleteJobIf(tenantId: string, documentId: string, status: JobStatus): Promise<boolean> {
    try {
      await this.doc.send(
        new DeleteCommand({
          TableName: this.tableName,
          Key: { pk: documentPk(tenantId, documentId), sk: JOB_SK },
          ConditionExpression: '#status = :status AND attribute_not_exists(releasePending)',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: { ':status': status },
        }),
      );
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  /** BatchWriteItem in groups of 25 (four groups at a time), retrying unprocessed items with backoff. */
  /**
   * One TransactWriteItems call, retried (full jitter) while DynamoDB cancels it for a transient
   * reason: a concurrent transaction on one of its items (every claim and completion of a
   * document touches the job row, so these are expected under load) or throttling. A cancelled
   * transaction wrote nothing, and a retry of one that did land is refused by its conditions.
   */
  private async transact(items: NonNullable<TransactWriteCommandInput['TransactItems']>): Promise<void> {
    await withRetry(() => this.doc.send(new TransactWriteCommand({ TransactItems: items })), {
      policy: { maxAttempts: 8, baseMs: 25, capMs: 1_000 },
      shouldRetry: isTransientTransactionError,
    });
  }

  private async batchWrite(requests: Array<{ PutRequest: { Item: Record<string, unknown> } } | { DeleteRequest: { Key: Record<string, unknown> } }>): Promise<void> {
    const limit = pLimit(4);
    const groups: Array<typeof requests> = [];
    for (let i = 0; i < requests.length; i += 25) groups.push(requests.slice(i, i + 25));
    await Promise.all(
      groups.map((group) =>
        limit(async () => {
          let pending = group;
          for (let attempt = 0; pending.length > 0; attempt++) {
            const out = await this.doc.send(new BatchWriteCommand({ RequestItems: { [this.tableName]: pending } }));
            pending = (out.UnprocessedItems?.[this.tableName] ?? []) as typeof pending;
            if (pending.length > 0) await sleep(Math.min(1000, 50 * 2 ** attempt));
          }
        }),
      ),
    );
  }

  /** Reads one chunk row (strongly consistent). */
  async getChunk(tenantId: string, documentId: string, index: number): Promise<ChunkRow | undefined> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: { pk: documentPk(tenantId, documentId), sk: chunkSk(index) }, ConsistentRead: true }),
    );
    return out.Item ? toChunk(out.Item) : undefined;
  }

  /** Every chunk row of a document, by index. */
  async listChunks(tenantId: string, documentId: string): Promise<ChunkRow[]> {
    const rows: ChunkRow[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const out = await this.doc.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: 'pk = :pk AND begins_with(sk, :chunk)',
          ExpressionAttributeValues: { ':pk': documentPk(tenantId, documentId), ':chunk': 'CHUNK#' },
          ConsistentRead: true,
          ExclusiveStartKey: start,
        }),
      );
      rows.push(...(out.Items ?? []).map(toChunk));
      start = out.LastEvaluatedKey;
    } while (start);
    return rows.sort((a, b) => a.index - b.index);
  }

  /**
   * Claims a chunk for analysis, only while its job is `processing`. Succeeds when the chunk is
   * pending, already claimed by `owner`, or claimed by another worker whose claim counter still
   * equals `takeOverCounter` (the caller saw it stand still for the claim timeout).
   */
  async claimChunk(
    tenantId: string,
    documentId: string,
    index: number,
    owner: string,
    attempt: number,
    takeOverCounter?: number,
  ): Promise<ClaimOutcome> {
    const pk = documentPk(tenantId, documentId);
    const values: Record<string, unknown> = {
      ':processing': 'processing',
      ':pending': 'pending',
      ':me': owner,
      ':one': 1,
      ':attempt': attempt,
      ':now': new Date().toISOString(),
    };
    // A stale delivery (attempt below the row's) never claims: the later delivery owns the chunk.
    let condition = '(#status = :pending AND attempt <= :attempt) OR (#status = :processing AND claimOwner = :me)';
    if (takeOverCounter !== undefined) {
      values[':seen'] = takeOverCounter;
      condition += ' OR (#status = :processing AND claimCounter = :seen)';
    }
    try {
      await this.transact([
            {
              ConditionCheck: {
                TableName: this.tableName,
                Key: { pk, sk: JOB_SK },
                ConditionExpression: '#status = :processing',
                ExpressionAttributeNames: { '#status': 'status' },
                ExpressionAttributeValues: { ':processing': 'processing' },
              },
            },
            {
              Update: {
                TableName: this.tableName,
                Key: { pk, sk: chunkSk(index) },
                UpdateExpression:
                  'SET #status = :processing, claimOwner = :me, attempt = :attempt, updatedAt = :now ADD claimCounter :one',
                ConditionExpression: `attribute_exists(pk) AND (${condition})`,
                ExpressionAttributeNames: { '#status': 'status' },
                ExpressionAttributeValues: values,
              },
            },
      ]);
    } catch (err) {
      if (!isTransactionConflict(err)) throw err;
      const [job, row] = await Promise.all([this.getJob(tenantId, documentId), this.getChunk(tenantId, documentId, index)]);
      if (!job || job.status !== 'processing') return { kind: 'job-inactive', status: job?.status };
      if (!row) throw new DocorchError('INTERNAL', `Chunk ${index} of ${documentId} has no row`);
      if (row.status === 'succeeded' || row.status === 'failed') return { kind: 'done', row };
      return { kind: 'busy', row };
    }
    return { kind: 'claimed', row: (await this.getChunk(tenantId, documentId, index)) as ChunkRow };
  }

  /**
   * Proves a claim is alive (bumps its counter). Returns the new counter, or undefined when the
   * claim was lost. On a failed condition the row is re-read: if it shows this owner, still
   * processing, at exactly one more increment, that increment was this very heartbeat, applied
   * and then retried by the SDK after a lost response (as the lease renewer reads a renewal), so
   * the claim is still held. The caller must not run two heartbeats of one claim at once.
   */
  async heartbeatChunk(tenantId: string, documentId: string, index: number, owner: string, counter: number): Promise<number | undefined> {
    try {
      const out = await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: documentPk(tenantId, documentId), sk: chunkSk(index) },
          UpdateExpression: 'ADD claimCounter :one',
          ConditionExpression: '#status = :processing AND claimOwner = :me AND claimCounter = :c',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: { ':processing': 'processing', ':me': owner, ':c': counter, ':one': 1 },
          ReturnValues: 'UPDATED_NEW',
        }),
      );
      return Number(out.Attributes?.claimCounter);
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
      const row = await this.getChunk(tenantId, documentId, index);
      if (row && row.status === 'processing' && row.claimOwner === owner && row.claimCounter === counter + 1) return row.claimCounter;
      return undefined;
    }
  }

  /**
   * Finishes a claimed chunk and counts it on the job, in one transaction. The chunk condition
   * (still processing, still our claim at our counter) makes counting idempotent: a redelivered
   * or zombie completion can never count a chunk twice. Returns false when the claim or the job
   * moved on (nothing was written).
   */
  async completeChunk(
    tenantId: string,
    documentId: string,
    index: number,
    claim: { owner: string; counter: number },
    outcome: ({ status: 'succeeded' } | { status: 'failed'; error: RecordedError }) & { resultKey?: string; nextReleased?: boolean },
    usage?: Usage,
    pages = 0,
  ): Promise<boolean> {
    const pk = documentPk(tenantId, documentId);
    const now = new Date().toISOString();
    const counterField = outcome.status === 'succeeded' ? 'chunksSucceeded' : 'chunksFailed';
    try {
      await this.transact([
            {
              Update: {
                TableName: this.tableName,
                Key: { pk, sk: chunkSk(index) },
                UpdateExpression: `SET #status = :to, updatedAt = :now${outcome.status === 'failed' ? ', #error = :error' : ''}${outcome.resultKey ? ', resultKey = :rk' : ''}${outcome.nextReleased ? ', nextReleased = :true' : ''} REMOVE claimOwner`,
                ConditionExpression: '#status = :processing AND claimOwner = :me AND claimCounter = :c',
                ExpressionAttributeNames: { '#status': 'status', ...(outcome.status === 'failed' ? { '#error': 'error' } : {}) },
                ExpressionAttributeValues: {
                  ':to': outcome.status,
                  ':now': now,
                  ':processing': 'processing',
                  ':me': claim.owner,
                  ':c': claim.counter,
                  ...(outcome.status === 'failed' ? { ':error': outcome.error } : {}),
                  ...(outcome.resultKey ? { ':rk': outcome.resultKey } : {}),
                  ...(outcome.nextReleased ? { ':true': true } : {}),
                },
              },
            },
            {
              Update: {
                TableName: this.tableName,
                Key: { pk, sk: JOB_SK },
                UpdateExpression: `SET updatedAt = :now ADD ${counterField} :one, pagesDone :pages`,
                ConditionExpression: '#status = :processing',
                ExpressionAttributeNames: { '#status': 'status' },
                ExpressionAttributeValues: { ':now': now, ':one': 1, ':processing': 'processing', ':pages': pages },
              },
            },
            ...(usage && this.usageTableName ? [{ Update: usageUpdate(this.usageTableName, tenantId, usage, 1, pages) }] : []),
      ]);
      return true;
    } catch (err) {
      if (isTransactionConflict(err)) return false;
      throw err;
    }
  }

  /** Records on a finished chunk that its fair-share successor was published (pipeline/fair-share.ts). */
  async markNextReleased(tenantId: string, documentId: string, index: number): Promise<void> {
    await this.setChunkFlag(tenantId, documentId, index, 'nextReleased');
  }

  /** Sets a fair-share flag on a chunk row if the row exists (a deleted document's is left alone). */
  private async setChunkFlag(tenantId: string, documentId: string, index: number, flag: 'inputReady' | 'nextReleased'): Promise<void> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: documentPk(tenantId, documentId), sk: chunkSk(index) },
          UpdateExpression: `SET ${flag} = :true`,
          ConditionExpression: 'attribute_exists(sk)',
          ExpressionAttributeValues: { ':true': true },
        }),
      );
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
  }

  /** Hands a claimed chunk back as pending (to be re-published with `nextAttempt`). */
  async releaseChunk(
    tenantId: string,
    documentId: string,
    index: number,
    claim: { owner: string; counter: number },
    nextAttempt: number,
  ): Promise<boolean> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: documentPk(tenantId, documentId), sk: chunkSk(index) },
          UpdateExpression: 'SET #status = :pending, attempt = :next, updatedAt = :now REMOVE claimOwner ADD claimCounter :one',
          ConditionExpression: '#status = :processing AND claimOwner = :me AND claimCounter = :c',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: {
            ':pending': 'pending',
            ':processing': 'processing',
            ':next': nextAttempt,
            ':now': new Date().toISOString(),
            ':me': claim.owner,
            ':c': claim.counter,
            ':one': 1,
          },
        }),
      );
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  /**
   * Takes an assembly claim (claims/assembly-claim.ts): the job is `assembling` and its claim is
   * still at `seenEpoch` (released, or stale as the caller judged), so of two takers only one
   * wins. Returns the new claim, or undefined when someone else moved it first.
   */
  async takeAssembly(tenantId: string, documentId: string, seenEpoch: number | undefined, owner: string): Promise<AssemblyClaimRef | undefined> {
    const epoch = (seenEpoch ?? 0) + 1;
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: documentPk(tenantId, documentId), sk: JOB_SK },
          UpdateExpression: 'SET assemblyOwner = :me, assemblyClaimedAt = :now, assemblyEpoch = :epoch, updatedAt = :now',
          ConditionExpression:
            seenEpoch === undefined
              ? '#status = :assembling AND attribute_not_exists(assemblyEpoch)'
              : '#status = :assembling AND assemblyEpoch = :seen',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: {
            ':me': owner,
            ':now': new Date().toISOString(),
            ':epoch': epoch,
            ':assembling': 'assembling',
            ...(seenEpoch === undefined ? {} : { ':seen': seenEpoch }),
          },
        }),
      );
      return { owner, epoch };
    } catch (err) {
      if (isConditionFailure(err)) return undefined;
      throw err;
    }
  }

  /**
   * Renews (`release: false`) or gives back (`release: true`: the owner removed, so the next
   * assembler takes it at once) an assembly claim, only while it is still exactly ours.
   * Returns false when the claim moved on.
   */
  async touchAssembly(tenantId: string, documentId: string, claim: AssemblyClaimRef, release: boolean): Promise<boolean> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: documentPk(tenantId, documentId), sk: JOB_SK },
          UpdateExpression: release ? 'REMOVE assemblyOwner SET updatedAt = :now' : 'SET assemblyClaimedAt = :now',
          ConditionExpression: '#status = :assembling AND assemblyOwner = :me AND assemblyEpoch = :epoch',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: { ':now': new Date().toISOString(), ':assembling': 'assembling', ':me': claim.owner, ':epoch': claim.epoch },
        }),
      );
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  /**
   * Finishes an assembly: `assembling -> to`, only by the claim's owner, so a duplicate or late
   * assembler can never overwrite a finished job. Returns false when the condition failed.
   */
  async finishAssembly(tenantId: string, documentId: string, claim: AssemblyClaimRef, to: JobStatus, patch: JobPatch): Promise<boolean> {
    if (this.usageTableName) {
      try {
        const admitted = await this.finishAdmitted(tenantId, documentId, to, patch, ['assembling'], claim);
        if (admitted) return true;
      } catch (err) {
        if (err instanceof DocorchError && (err.code === 'CONFLICT' || err.code === 'NOT_FOUND')) return false;
        throw err;
      }
    }
    const { names, values, expression } = patchExpression({ ...patch, status: to });
    values[':assembling'] = 'assembling';
    values[':me'] = claim.owner;
    values[':epoch'] = claim.epoch;
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: documentPk(tenantId, documentId), sk: JOB_SK },
          UpdateExpression: expression,
          ConditionExpression: '#status = :assembling AND assemblyOwner = :me AND assemblyEpoch = :epoch',
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
        }),
      );
      this.onTerminal?.(to);
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  // ---- the reconciler's reads and guarded writes (pipeline/reconcile.ts) ---------------------

  /**
   * Keys of jobs in `status` not moved (transition, or a look by the reconciler) since `beforeIso`,
   * oldest first, from the sparse open-status index (eventually consistent, and blind to chunk
   * counts: callers re-read each job and judge its `updatedAt` before acting).
   */
  async listStale(status: JobStatus, beforeIso: string, limit = 100): Promise<Array<{ tenantId: string; documentId: string }>> {
    const out: Array<{ tenantId: string; documentId: string }> = [];
    let start: Record<string, unknown> | undefined;
    do {
      const page = await this.doc.send(
        new QueryCommand({
          TableName: this.tableName,
          IndexName: BY_OPEN_STATUS_INDEX,
          KeyConditionExpression: '#open = :status AND #openAt < :before',
          ExpressionAttributeNames: { '#open': OPEN_STATUS, '#openAt': OPEN_AT },
          ExpressionAttributeValues: { ':status': status, ':before': beforeIso },
          Limit: limit - out.length,
          ExclusiveStartKey: start,
        }),
      );
      for (const item of page.Items ?? []) {
        const pk = String(item.pk);
        const at = pk.indexOf('#');
        if (at > 0) out.push({ tenantId: pk.slice(0, at), documentId: pk.slice(at + 1) });
      }
      start = page.LastEvaluatedKey;
    } while (start && out.length < limit);
    return out;
  }

  /**
   * Claims the right to drive a stale job on: bumps `recoveries` and `updatedAt` only if the row
   * is still exactly as the caller read it (same status, same updatedAt). Two reconcilers (or a
   * reconciler and a worker that just made progress) can therefore never both act on one
   * staleness: the loser sees false. The new updatedAt also restarts the staleness clock.
   */
  async touchForRecovery(job: Pick<Job, 'tenantId' | 'documentId' | 'status' | 'updatedAt'>): Promise<boolean> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: documentPk(job.tenantId, job.documentId), sk: JOB_SK },
          UpdateExpression: 'SET updatedAt = :now, #openAt = :now ADD recoveries :one',
          ConditionExpression: '#status = :status AND updatedAt = :seen',
          ExpressionAttributeNames: { '#status': 'status', '#openAt': OPEN_AT },
          ExpressionAttributeValues: { ':now': new Date().toISOString(), ':one': 1, ':status': job.status, ':seen': job.updatedAt },
        }),
      );
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  /**
   * Moves a live job's place in the open-status index up to its last progress (`updatedAt`), so
   * the sweep does not read it again until it has stood still for the staleness time. Only while
   * the status is still the one read (a transition sets its own).
   */
  async markSeen(job: Pick<Job, 'tenantId' | 'documentId' | 'status' | 'updatedAt'>): Promise<void> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: documentPk(job.tenantId, job.documentId), sk: JOB_SK },
          UpdateExpression: 'SET #openAt = :at',
          ConditionExpression: '#status = :status AND attribute_exists(#openAt)',
          ExpressionAttributeNames: { '#status': 'status', '#openAt': OPEN_AT },
          ExpressionAttributeValues: { ':at': job.updatedAt, ':status': job.status },
        }),
      );
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
  }

  /**
   * Fences a sync job whose API process stopped before its hand-off: only while it is still
   * `processing` with no chunk row (the hand-off commits rows and the job in one transaction), so
   * exactly one of the two wins. The sync path's later writes are conditional on no fence.
   */
  async fenceSyncJob(tenantId: string, documentId: string): Promise<boolean> {
    const pk = documentPk(tenantId, documentId);
    try {
      await this.transact([
        {
          Update: {
            TableName: this.tableName,
            Key: { pk, sk: JOB_SK },
            UpdateExpression: 'SET syncFenced = :true, updatedAt = :now',
            ConditionExpression: '#status = :processing AND #mode = :sync AND attribute_not_exists(syncFenced)',
            ExpressionAttributeNames: { '#status': 'status', '#mode': 'mode' },
            ExpressionAttributeValues: { ':true': true, ':now': new Date().toISOString(), ':processing': 'processing', ':sync': 'sync' },
          },
        },
        { ConditionCheck: { TableName: this.tableName, Key: { pk, sk: chunkSk(0) }, ConditionExpression: 'attribute_not_exists(sk)' } },
      ]);
      return true;
    } catch (err) {
      if (isTransactionConflict(err)) return false;
      throw err;
    }
  }

  /**
   * Holds a chunk whose record was dead-lettered: back to `pending` (our claim released, if we
   * held one) with `heldBy` naming the dead letter, so nothing re-publishes it until a replay or
   * the reconciler. Returns false when the chunk was finished or is claimed by someone else.
   */
  async holdChunk(tenantId: string, documentId: string, index: number, heldBy: string, owner?: string): Promise<boolean> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: documentPk(tenantId, documentId), sk: chunkSk(index) },
          UpdateExpression: 'SET #status = :pending, heldBy = :held, updatedAt = :now REMOVE claimOwner ADD claimCounter :one',
          ConditionExpression: owner
            ? '#status = :pending OR (#status = :processing AND claimOwner = :me)'
            : '#status = :pending',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: {
            ':pending': 'pending',
            ':held': heldBy,
            ':now': new Date().toISOString(),
            ':one': 1,
            ...(owner ? { ':processing': 'processing', ':me': owner } : {}),
          },
        }),
      );
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  /**
   * Releases a held chunk for a replay: `heldBy` removed and the attempt reset (so the replayed
   * record, attempt 1, may claim it). Only while held by that very dead letter.
   */
  async unholdChunk(tenantId: string, documentId: string, index: number, heldBy: string): Promise<boolean> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: documentPk(tenantId, documentId), sk: chunkSk(index) },
          UpdateExpression: 'SET attempt = :zero, updatedAt = :now REMOVE heldBy',
          ConditionExpression: 'heldBy = :held AND #status = :pending',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: { ':zero': 0, ':now': new Date().toISOString(), ':held': heldBy, ':pending': 'pending' },
        }),
      );
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  /**
   * Claims a held chunk for the reconciler, which finishes it as failed with its dead letter's
   * error (only while still held by that letter and the job is processing).
   */
  async claimHeldChunk(tenantId: string, documentId: string, index: number, heldBy: string, owner: string): Promise<ChunkRow | undefined> {
    const pk = documentPk(tenantId, documentId);
    try {
      await this.transact([
        {
          ConditionCheck: {
            TableName: this.tableName,
            Key: { pk, sk: JOB_SK },
            ConditionExpression: '#status = :processing',
            ExpressionAttributeNames: { '#status': 'status' },
            ExpressionAttributeValues: { ':processing': 'processing' },
          },
        },
        {
          Update: {
            TableName: this.tableName,
            Key: { pk, sk: chunkSk(index) },
            UpdateExpression: 'SET #status = :processing, claimOwner = :me, updatedAt = :now REMOVE heldBy ADD claimCounter :one',
            ConditionExpression: 'heldBy = :held AND #status = :pending',
            ExpressionAttributeNames: { '#status': 'status' },
            ExpressionAttributeValues: { ':processing': 'processing', ':pending': 'pending', ':me': owner, ':now': new Date().toISOString(), ':one': 1, ':held': heldBy },
          },
        },
      ]);
    } catch (err) {
      if (isTransactionConflict(err)) return undefined;
      throw err;
    }
    return this.getChunk(tenantId, documentId, index);
  }

  /** Holds (or, with `heldBy` undefined, releases) a job whose `document.submitted` was dead-lettered. */
  async setJobHold(tenantId: string, documentId: string, heldBy: string | undefined, expected?: string): Promise<boolean> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: documentPk(tenantId, documentId), sk: JOB_SK },
          UpdateExpression: heldBy ? 'SET heldBy = :held' : 'REMOVE heldBy',
          // A job already held keeps its first letter (a later one of the same split is a duplicate).
          ConditionExpression: expected ? 'heldBy = :expected' : heldBy ? 'attribute_exists(pk) AND attribute_not_exists(heldBy)' : 'attribute_exists(pk)',
          ...(heldBy || expected
            ? { ExpressionAttributeValues: { ...(heldBy ? { ':held': heldBy } : {}), ...(expected ? { ':expected': expected } : {}) } }
            : {}),
        }),
      );
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }

  /** Lists a tenant's jobs, newest first. */
  async listJobs(tenantId: string, options: { limit?: number; cursor?: string } = {}): Promise<JobPage> {
    const out = await this.doc.send(
      new QueryCommand({
        TableName: this.tableName,
        IndexName: BY_TENANT_INDEX,
        KeyConditionExpression: 'gsi1pk = :t',
        ExpressionAttributeValues: { ':t': tenantId },
        ScanIndexForward: false,
        Limit: Math.min(Math.max(options.limit ?? 20, 1), 100),
        ExclusiveStartKey: options.cursor ? decodeCursor(options.cursor, tenantId) : undefined,
      }),
    );
    const jobs = (out.Items ?? []).map((i) => toJob(i) as Job);
    return out.LastEvaluatedKey ? { jobs, nextCursor: encodeCursor(out.LastEvaluatedKey) } : { jobs };
  }
}

function encodeCursor(key: Record<string, unknown>): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url');
}

function decodeCursor(cursor: string, tenantId: string): Record<string, unknown> {
  try {
    const key = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as Record<string, unknown>;
    // A cursor is only valid for the tenant that received it.
    if (key.gsi1pk !== tenantId) throw new Error('foreign cursor');
    return key;
  } catch (err) {
    throw new DocorchError('INVALID_REQUEST', 'Invalid cursor', { cause: err });
  }
}

/**
 * The update of a job row for a patch (status included), with updatedAt, keeping the open-status
 * index in step with the status (see {@link BY_OPEN_STATUS_INDEX}).
 */
function patchExpression(patch: Record<string, unknown>): {
  names: Record<string, string>;
  values: Record<string, unknown>;
  expression: string;
} {
  const names: Record<string, string> = { '#status': 'status', '#updatedAt': 'updatedAt' };
  const values: Record<string, unknown> = { ':now': new Date().toISOString() };
  const sets = ['#updatedAt = :now'];
  const removes: string[] = [];
  Object.entries(patch).forEach(([field, value], i) => {
    if (value === undefined || field === 'updatedAt') return;
    if (field === 'status') {
      values[':to'] = value;
      sets.push('#status = :to');
      names['#open'] = OPEN_STATUS;
      names['#openAt'] = OPEN_AT;
      // A cancelled job stays in the index until its tombstone is purged.
      if (TERMINAL_STATUSES.has(value as JobStatus) && value !== 'cancelled') removes.push('#open', '#openAt');
      else sets.push('#open = :to', '#openAt = :now');
      return;
    }
    names[`#f${i}`] = field;
    values[`:f${i}`] = value;
    sets.push(`#f${i} = :f${i}`);
  });
  return { names, values, expression: `SET ${sets.join(', ')}${removes.length > 0 ? ` REMOVE ${removes.join(', ')}` : ''}` };
}

const THROTTLING = new Set(['ThrottlingException', 'ProvisionedThroughputExceededException', 'RequestLimitExceeded']);

/** True for a transaction DynamoDB cancelled for a transient reason (not a failed condition). */
export function isTransientTransactionError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err.name === 'TransactionInProgressException') return true;
  // Throttling or a 500 that the SDK's own retries did not get past (DynamoDB Local answers a 500
  // when a lock waits too long): retried here too, with backoff, rather than failing the step and
  // redoing its work (a chunk analysed again). The transaction's conditions make a retry of an
  // applied one harmless.
  if (err.name === 'InternalServerError' || THROTTLING.has(err.name) || (err as { $retryable?: { throttling?: boolean } }).$retryable?.throttling === true) return true;
  const codes = cancellationCodes(err);
  return !codes.includes('ConditionalCheckFailed') && codes.some((c) => c === 'TransactionConflict' || c === 'ThrottlingError' || c === 'ProvisionedThroughputExceeded');
}

/** The cancellation reason of each item of a cancelled transaction (empty for any other error). */
function cancellationCodes(err: unknown): Array<string | undefined> {
  if (!(err instanceof TransactionCanceledException || (err instanceof Error && err.name === 'TransactionCanceledException'))) return [];
  return ((err as TransactionCanceledException).CancellationReasons ?? []).map((r) => r.Code);
}

function isTransactionConflict(err: unknown): boolean {
  if (isConditionFailure(err)) return true;
  // Only a failed condition is a conflict; a transaction conflict with a concurrent writer or
  // throttling is transient and is thrown for the caller's retry.
  return cancellationCodes(err).includes('ConditionalCheckFailed');
}
