/**
 * An Idempotency-Key whose first request died between binding the key and creating its document
 * (pipeline/idempotency.ts): a retry arriving once the binding is old enough takes it over and
 * runs, instead of answering 409 IDEMPOTENCY_IN_PROGRESS until the binding expires (hours). The
 * document's creation is conditional on its binding, so a first request that was only slow fails
 * with CONFLICT when it finally tries, and exactly one document exists for the key. A young
 * binding is not taken over.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  closePipelineContext,
  createLogger,
  createPipelineContext,
  loadConfig,
  runIdempotent,
  unavailableExtractor,
  type PipelineContext,
} from '@docorch/core';
import { createIsolatedResources, type IsolatedResources } from '@docorch/testkit';
import { newJob } from './helpers.js';

describe('an idempotency binding left by a request that died', () => {
  let resources: IsolatedResources;
  let ctx: PipelineContext;
  const tenantId = 'tidem';

  beforeAll(async () => {
    resources = await createIsolatedResources({ prefix: 'idem', shardCount: 1 });
    const config = loadConfig({ ...process.env, ...resources.names, LOG_LEVEL: 'silent' });
    ctx = createPipelineContext(config, createLogger({ service: 'idem-test', level: 'silent' }), { extractor: unavailableExtractor('not used') });
  });

  afterAll(async () => {
    if (ctx) await closePipelineContext(ctx);
    await resources?.cleanup();
  });

  /** Creates a document as storeDocument does for a request with an Idempotency-Key. */
  const create = (documentId: string, key: string) =>
    ctx.status.createJob(newJob(tenantId, documentId, { pages: 2, status: 'queued', analyses: ['summary'] }), {
      binding: ctx.files.bindingCheck(tenantId, key, documentId),
    });

  it('is taken over by a retry once old enough; the first request, if it comes back, cannot create a second document', async () => {
    const key = 'key-died';
    // The first request bound the key a minute ago and never created its document.
    const bound = await ctx.files.claimIdempotencyKey(tenantId, key, { documentId: 'doc-first', requestHash: 'h', createdAt: new Date(Date.now() - 60_000).toISOString() });
    expect(bound).toBeUndefined();
    const outcome = await runIdempotent(ctx, tenantId, key, 'h', async (documentId) => {
      await create(documentId, key);
      return documentId;
    }, { documentId: 'doc-retry', waitMs: 300 });
    expect(outcome).toEqual({ kind: 'new', value: 'doc-retry' });
    // The first request was only slow: its creation is refused and writes nothing.
    await expect(create('doc-first', key)).rejects.toMatchObject({ code: 'CONFLICT' });
    expect(await ctx.status.getJob(tenantId, 'doc-first')).toBeUndefined();
    // Later retries are replays of the one document.
    const replay = await runIdempotent(ctx, tenantId, key, 'h', () => Promise.reject(new Error('not run')), { waitMs: 300 });
    expect(replay.kind).toBe('replay');
    expect(replay.kind === 'replay' && replay.job.documentId).toBe('doc-retry');
  });

  it('an old binding is taken over at once, not after the duplicate has waited for its document', async () => {
    const key = 'key-old-at-once';
    await ctx.files.claimIdempotencyKey(tenantId, key, { documentId: 'doc-old', requestHash: 'h', createdAt: new Date(Date.now() - 20_000).toISOString() });
    // A wait far longer than the test's timeout: only an immediate takeover finishes in time.
    const outcome = await runIdempotent(ctx, tenantId, key, 'h', async (documentId) => {
      await create(documentId, key);
      return documentId;
    }, { documentId: 'doc-old-retry', waitMs: 600_000 });
    expect(outcome).toEqual({ kind: 'new', value: 'doc-old-retry' });
  }, 20_000);

  it("a slow first request that fails after a retry took its key over leaves the retry's binding in place", async () => {
    const key = 'key-slow-first';
    let letGo: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (letGo = resolve));
    const first = runIdempotent(ctx, tenantId, key, 'h', async (documentId) => {
      await gate;
      await create(documentId, key);
      return documentId;
    }, { documentId: 'doc-slow' }).catch((err: unknown) => err);
    await new Promise((r) => setTimeout(r, 200)); // the first request has bound the key
    const retry = await runIdempotent(ctx, tenantId, key, 'h', async (documentId) => {
      await create(documentId, key);
      return documentId;
    }, { documentId: 'doc-second', waitMs: 300, takeOverMs: 0 });
    expect(retry).toEqual({ kind: 'new', value: 'doc-second' });
    letGo();
    expect(await first).toMatchObject({ code: 'CONFLICT' });
    // Its failure gave back nothing that was not its own: the key still names the retry's document.
    expect((await ctx.files.getIdempotencyKey(tenantId, key))?.documentId).toBe('doc-second');
    const replay = await runIdempotent(ctx, tenantId, key, 'h', () => Promise.reject(new Error('not run')), { waitMs: 300 });
    expect(replay.kind === 'replay' && replay.job.documentId).toBe('doc-second');
  });

  it('is not taken over while young: the duplicate answers 409 and the first request creates its document', async () => {
    const key = 'key-young';
    await ctx.files.claimIdempotencyKey(tenantId, key, { documentId: 'doc-young', requestHash: 'h', createdAt: new Date().toISOString() });
    await expect(runIdempotent(ctx, tenantId, key, 'h', () => Promise.reject(new Error('not run')), { waitMs: 300 })).rejects.toMatchObject({ code: 'IDEMPOTENCY_IN_PROGRESS' });
    await create('doc-young', key);
    expect((await ctx.status.getJob(tenantId, 'doc-young'))?.documentId).toBe('doc-young');
  });

  it('lets one of two retries take it over', async () => {
    const key = 'key-two';
    await ctx.files.claimIdempotencyKey(tenantId, key, { documentId: 'doc-gone', requestHash: 'h', createdAt: new Date(Date.now() - 60_000).toISOString() });
    const ran: string[] = [];
    const retry = (documentId: string) =>
      runIdempotent(ctx, tenantId, key, 'h', async (id) => {
        ran.push(id);
        await create(id, key);
        return id;
      }, { documentId, waitMs: 300 }).catch((err: unknown) => err);
    const outcomes = await Promise.all([retry('doc-a'), retry('doc-b')]);
    expect(ran).toHaveLength(1);
    // The loser either saw the winner's document (a replay) or was told to retry (409).
    const loser = outcomes.find((o) => !(typeof o === 'object' && o !== null && 'kind' in o && o.kind === 'new'));
    expect(loser === undefined || (typeof loser === 'object' && loser !== null && (('kind' in loser && loser.kind === 'replay') || ('code' in loser && loser.code === 'IDEMPOTENCY_IN_PROGRESS')))).toBe(true);
  });
});
