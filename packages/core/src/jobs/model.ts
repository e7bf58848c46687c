/**
 * The job and chunk model and the job status state machine (DESIGN.md sections 2 and 4).
 * Pure code: the DynamoDB side of every transition lives in aws/status-table.ts.
 */
import type { AnalysisKind } from '../analysis/types.js';
import { DocorchError } from '../errors.js';

export const JOB_STATUSES = [
  'queued',
  'splitting',
  'processing',
  'assembling',
  'completed',
  'completed_with_errors',
  'failed',
  'cancelled',
] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

/** Statuses a job never leaves. */
export const TERMINAL_STATUSES: ReadonlySet<JobStatus> = new Set(['completed', 'completed_with_errors', 'failed', 'cancelled']);

/**
 * Allowed transitions. The sync path enters `processing` straight from `queued`, and leaves it
 * straight for its terminal status: its reduce ran in the request and its result is stored at the
 * document's result key before that write (the reconciler finishes from it, docs/reconciler.md).
 * The async path always goes through `assembling` (the assembly claim).
 */
const TRANSITIONS: Readonly<Record<JobStatus, readonly JobStatus[]>> = {
  queued: ['splitting', 'processing', 'failed', 'cancelled'],
  splitting: ['processing', 'failed', 'cancelled'],
  processing: ['assembling', 'completed', 'completed_with_errors', 'failed', 'cancelled'],
  assembling: ['completed', 'completed_with_errors', 'failed'],
  completed: [],
  completed_with_errors: [],
  failed: [],
  cancelled: [],
};

/** True when `from -> to` is a legal transition. */
export function canTransition(from: JobStatus, to: JobStatus): boolean {
  return TRANSITIONS[from].includes(to);
}

/** The statuses from which `to` may be entered (used as the condition of the conditional write). */
export function statusesLeadingTo(to: JobStatus): JobStatus[] {
  return JOB_STATUSES.filter((from) => TRANSITIONS[from].includes(to));
}

/** Throws CONFLICT when `from -> to` is not a legal transition. */
export function assertTransition(from: JobStatus, to: JobStatus): void {
  if (!canTransition(from, to)) {
    throw new DocorchError('CONFLICT', `Job cannot move from ${from} to ${to}`, { details: { from, to } });
  }
}

/** How a job was submitted. */
export type JobMode = 'sync' | 'async';

/** An error recorded on a job or chunk (code from errors.ts). */
export interface RecordedError {
  code: string;
  message: string;
}

/** The job row: one per document. */
export interface Job {
  tenantId: string;
  documentId: string;
  status: JobStatus;
  mode: JobMode;
  /** Client's file name: metadata only, never part of a storage key. */
  filename: string;
  contentType: string;
  sizeBytes: number;
  sha256: string;
  /** Pages in the document (known after inspection). */
  pageCount?: number;
  /** The client's page selection, e.g. `1-3,7`; absent for all pages. */
  pageSelection?: string;
  /** Pages selected for analysis (known after inspection). */
  pagesSelected?: number;
  /** Pages per chunk the request asked for; absent: chunks planned by tokens (jobs/planner.ts). */
  pagesPerChunk?: number;
  /** First page of each chunk of a token plan, recorded at the commit (a resumed split plans from it). */
  chunkStarts?: number[];
  analyses: AnalysisKind[];
  chunksTotal: number;
  chunksSucceeded: number;
  chunksFailed: number;
  /** S3 key of the upload in the uploads bucket. */
  sourceKey: string;
  /** S3 key of the document result in the results bucket, once written. */
  resultKey?: string;
  analyzer?: string;
  webhookUrl?: string;
  /** W3C trace context of the request that admitted the document: the assembly continues its trace. */
  traceparent?: string;
  /**
   * What admission reserved (store/usage-meter.ts): the month and pages charged to the page quota,
   * and an in-flight slot. The terminal transition releases the slot and the pages not analysed.
   */
  admission?: { month: string; pages: number };
  /** Pages whose chunks were counted (succeeded or failed), for the release of unanalysed pages. */
  pagesDone?: number;
  /** Set while a terminal job's admission release is still to be made (aws/status-table.ts, two-step finish). */
  releasePending?: boolean;
  /**
   * Fair share (pipeline/fair-share.ts): chunk records of this document on the stream ahead of
   * completions, fixed at the split's commit so a change of FAIR_SHARE_WINDOW never breaks the
   * chain of a document in flight. Absent: every chunk was published at once (sync hand-off).
   */
  window?: number;
  /** The tenant's share weight when the document was split (travels on its chunk records). */
  weight?: number;
  error?: RecordedError;
  /**
   * The dead letter (its sort key) holding this document's `document.submitted`: the split was
   * dead-lettered and waits for a replay (`docorch dead-letters replay`) or the reconciler.
   */
  heldBy?: string;
  /**
   * Set by the reconciler when it takes over a sync job whose API process died before its
   * hand-off: the sync path's own later writes are refused from then on (pipeline/reconcile.ts).
   */
  syncFenced?: boolean;
  /** Times the reconciler drove this document on (pipeline/reconcile.ts). */
  recoveries?: number;
  /** The Idempotency-Key the document was created under (deleted with the document). */
  idempotencyKey?: string;
  /** Who claimed the final assembly, and when (wall clock): see pipeline/assemble-job.ts. */
  assemblyOwner?: string;
  assemblyClaimedAt?: string;
  /** Bumped by every take of the assembly claim: tells two holders of one owner name apart. */
  assemblyEpoch?: number;
  createdAt: string;
  updatedAt: string;
  completedAt?: string;
}

/** Progress as the API shows it. */
export interface Progress {
  chunksTotal: number;
  chunksSucceeded: number;
  chunksFailed: number;
  /** 0-100, whole numbers; 100 only once the job is terminal. */
  percent: number;
}

/** Progress of a job; a terminal job is always 100%, a job not yet split 0%. */
export function progressOf(job: Pick<Job, 'status' | 'chunksTotal' | 'chunksSucceeded' | 'chunksFailed'>): Progress {
  const done = job.chunksSucceeded + job.chunksFailed;
  let percent = 0;
  if (TERMINAL_STATUSES.has(job.status)) percent = 100;
  else if (job.chunksTotal > 0) percent = Math.min(99, Math.floor((done / job.chunksTotal) * 100));
  return {
    chunksTotal: job.chunksTotal,
    chunksSucceeded: job.chunksSucceeded,
    chunksFailed: job.chunksFailed,
    percent,
  };
}

export const CHUNK_STATUSES = ['pending', 'processing', 'succeeded', 'failed'] as const;
export type ChunkStatus = (typeof CHUNK_STATUSES)[number];

/** A chunk of consecutive pages analysed as one unit. */
export interface ChunkPlan {
  index: number;
  /** Pages of the chunk, ascending and consecutive. */
  pages: number[];
}
