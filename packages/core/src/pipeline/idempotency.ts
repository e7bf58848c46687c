/**
 * Idempotency-Key on POST /v1/documents: tenant-scoped, kept IDEMPOTENCY_TTL_HOURS (DynamoDB TTL on
 * the files table's binding row). One conditional write binds the key to a fresh document id before
 * any work; timeline of two requests with the same key and the same request:
 *
 *   A: bind key -> id1 (wins)  admit, store, analyse ...................... answer (id1)
 *   B:             bind key (loses: id1, same hash) -> waits for id1's job row -> answers as A did
 *
 * The same key with another file or other options is 422 IDEMPOTENCY_KEY_REUSED. A duplicate whose
 * original has not created its job within `waitMs` answers 409 IDEMPOTENCY_IN_PROGRESS with
 * Retry-After; never a second document, never a second usage charge. A request that fails before
 * its document exists (a 4xx such as a quota, or an error) gives the key back, so a retry may run.
 * One whose process died in between leaves its binding: a duplicate seeing it 15 s or more after
 * it was bound takes it over and runs (without first waiting out `waitMs`); the document's
 * creation is conditional on its binding (StatusTable.createJob), so a first request that was
 * only slow fails with CONFLICT there instead of creating a second document, and its failure
 * gives back only a binding that still names its own document.
 */
import { createHash } from 'node:crypto';
import { DocorchError } from '../errors.js';
import type { Job } from '../jobs/model.js';
import { sleep } from '../retry/backoff.js';
import type { PipelineContext } from './context.js';
import { newDocumentId } from './submission.js';

const KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;

/** Hash of what makes two requests the same: the file's SHA-256 and the options. */
export function idempotencyRequestHash(fileSha256: string, options: Record<string, unknown>): string {
  const canonical = JSON.stringify([fileSha256, Object.keys(options).sort().map((k) => [k, options[k]])]);
  return createHash('sha256').update(canonical).digest('hex');
}

/** The outcome of {@link runIdempotent}. */
export type IdempotentOutcome<T> = { kind: 'new'; value: T } | { kind: 'replay'; job: Job };

/**
 * Runs `run(documentId)` once per (tenant, key). A replay returns the original document's job.
 * @param options.documentId - the id a new document gets (a staged upload's). @defaultValue a new id
 * @param options.waitMs - how long a duplicate waits for the original's job row. @defaultValue 10000
 * @param options.takeOverMs - how old a binding whose document was never created must be for a
 *   duplicate to take it over and run (the first request presumed dead). @defaultValue 15000
 */
export async function runIdempotent<T>(
  ctx: PipelineContext,
  tenantId: string,
  key: string,
  requestHash: string,
  run: (documentId: string) => Promise<T>,
  options: { documentId?: string; waitMs?: number; takeOverMs?: number } = {},
): Promise<IdempotentOutcome<T>> {
  if (!KEY_PATTERN.test(key)) throw new DocorchError('INVALID_REQUEST', 'Idempotency-Key must be 1 to 255 visible ASCII characters');
  const waitMs = options.waitMs ?? 10_000;
  const documentId = options.documentId ?? newDocumentId();
  const existing = await ctx.files.claimIdempotencyKey(
    tenantId,
    key,
    { documentId, requestHash, createdAt: new Date().toISOString() },
    ctx.config.IDEMPOTENCY_TTL_HOURS * 3600,
  );
  if (!existing) return runBound(ctx, tenantId, key, documentId, run);
  if (existing.requestHash !== requestHash) {
    throw new DocorchError('IDEMPOTENCY_KEY_REUSED', 'This Idempotency-Key was used with another file or other options', {
      details: { documentId: existing.documentId },
    });
  }
  let seen = existing;
  const deadline = Date.now() + waitMs;
  const takeOverMs = options.takeOverMs ?? TAKE_OVER_MS;
  for (;;) {
    const job = await ctx.status.getJob(tenantId, seen.documentId);
    if (job) return { kind: 'replay', job };
    if (Date.now() - Date.parse(seen.createdAt) >= takeOverMs) {
      // Bound long ago and still no document: the first request's process most likely died
      // between binding the key and creating the document (a request that fails gives the key
      // back). This one takes the binding over; the document's creation is conditional on its
      // binding, so were the first request only slow, it would fail there rather than make a
      // second document.
      const mine = { documentId, requestHash, createdAt: new Date().toISOString() };
      if (await ctx.files.takeOverIdempotencyKey(tenantId, key, seen, mine, ctx.config.IDEMPOTENCY_TTL_HOURS * 3600)) {
        return runBound(ctx, tenantId, key, documentId, run);
      }
      // Another retry took it over first: wait for its document like any duplicate.
      const current = await ctx.files.getIdempotencyKey(tenantId, key);
      if (current) seen = current;
    }
    if (Date.now() > deadline) {
      throw new DocorchError('IDEMPOTENCY_IN_PROGRESS', 'The first request with this Idempotency-Key is still being processed', { retryAfterMs: 2_000 });
    }
    await sleep(250);
  }
}

/**
 * How old a binding without a document must be before a retry takes it over: past anything the
 * first request does between binding and creating its document (the upload is received before the
 * key is bound; then the PDF's inspection, admission and the source's last part, seconds at most).
 * A first request that was only slower than this loses nothing but its own answer (CONFLICT).
 */
const TAKE_OVER_MS = 15_000;

/** Runs the request that holds the binding; a failure before its document exists gives the key back. */
async function runBound<T>(ctx: PipelineContext, tenantId: string, key: string, documentId: string, run: (documentId: string) => Promise<T>): Promise<IdempotentOutcome<T>> {
  try {
    return { kind: 'new', value: await run(documentId) };
  } catch (err) {
    // Nothing was created under this key: give it back so the client's retry can run (unless a
    // retry has taken it over already: then it is the retry's).
    if (!(await ctx.status.getJob(tenantId, documentId))) await ctx.files.releaseIdempotencyKey(tenantId, key, documentId).catch(() => undefined);
    throw err;
  }
}
