/**
 * The chaos soak (issue 10): a mixed workload of documents from several tenants runs through a
 * whole local deployment (API, workers and the aggregator as child processes, the emulators, a
 * fake Gemini) while a random process is killed -9 or stopped (SIGSTOP) at random moments, and a
 * share of every process's S3, DynamoDB and Kinesis request attempts fails with a throttling
 * error (FAULT_AWS_ERROR_RATE, inside the SDK's retries, as real throttling would).
 *
 * Per round it prints: documents submitted (acknowledged by the API), completed,
 * completed_with_errors, failed (by code), stuck (not terminal past the deadline), lost
 * (acknowledged, then missing), chunk analyses repeated beyond the analyses in flight at the
 * kills and stops, double counts (a finished job whose counted chunks differ from its chunks), and
 * the longest time from submission to a terminal state.
 *
 * Used by `pnpm soak -- --minutes N` (bench/soak.ts) and, bounded, by test/soak.test.ts in CI.
 */
import { randomUUID } from 'node:crypto';
import { createAwsClients, FilesTable, loadConfig, StatusTable, TenantStore, type Job } from '@docorch/core';
import { startFakeGemini, type FakeGemini } from './fake-gemini/index.js';
import { generatePdf } from './pdf/generate.js';
import { startPipeline, type Pipeline } from './pipeline.js';
import { seededRandom } from './random.js';
import { startService, type ServiceProcess } from './services.js';

/** Options of {@link runSoak}. */
export interface SoakOptions {
  /** Rounds to run. */
  rounds: number;
  /** Submission time of one round, ms. @defaultValue 60000 */
  roundMs?: number;
  /** Share of AWS request attempts failed with throttling. @defaultValue 0.05 */
  awsErrorRate?: number;
  /** Mean pause between chaos actions, ms. @defaultValue 6000 */
  chaosEveryMs?: number;
  /** Seed of the workload and the chaos. @defaultValue 1 */
  seed?: number;
  /** Told each round's line as it is printed. @defaultValue console.log */
  print?: (line: string) => void;
}

/** One round's figures. */
export interface SoakRound {
  round: number;
  submitted: number;
  completed: number;
  completedWithErrors: number;
  failed: Record<string, number>;
  cancelled: number;
  stuck: number;
  lost: number;
  /** Chunk analyses beyond one per chunk. */
  repeatedAnalyses: number;
  /** Chunks in flight in the processes killed or stopped (claimed by them, or their sync requests' chunks): the allowance. */
  inFlightAtChaos: number;
  doubleCounts: number;
  maxSubmitToTerminalMs: number;
  chaos: string[];
}

const TERMINAL = new Set(['completed', 'completed_with_errors', 'failed', 'cancelled']);
const STALE_MS = 5_000;
const INTERVAL_MS = 1_000;
const DEADLINE_MS = 120_000;

/** The chunk size the soak asks for. */
const PAGES_PER_CHUNK = 5;

/** A sync upload not answered yet: its client's Idempotency-Key finds its document. */
interface AwaitedSync {
  tenantId: string;
  key: string;
  pages: number;
}

interface Submitted {
  id: string;
  label: string;
  tenantId: string;
  pages: number;
  submittedAt: number;
  terminalAt?: number;
  job?: Job;
}

/** Runs the soak; resolves with every round's figures (the caller judges them). */
export async function runSoak(options: SoakOptions): Promise<SoakRound[]> {
  const print = options.print ?? ((line: string) => console.log(line));
  const rand = seededRandom(options.seed ?? 1);
  const fake: FakeGemini = await startFakeGemini({ latencyMs: [80, 250] });
  const rate = options.awsErrorRate ?? 0.05;
  const pipeline: Pipeline = await startPipeline({
    workers: 3,
    shards: 4,
    prefix: 'soak',
    env: {
      LOG_LEVEL: 'error',
      ANALYZER: 'gemini',
      GEMINI_API_KEY: 'test',
      GEMINI_BASE_URL: fake.url,
      FAULT_AWS_ERROR_RATE: String(rate),
      RECONCILE_STALE_MS: String(STALE_MS),
      RECONCILE_INTERVAL_MS: String(INTERVAL_MS),
      DOCUMENT_DEADLINE_MS: String(DEADLINE_MS),
      CHUNK_CLAIM_TIMEOUT_MS: '3000',
      ASSEMBLY_CLAIM_TIMEOUT_MS: '5000',
      LEASE_FAILOVER_MS: '3000',
      SYNC_TIMEOUT_MS: '6000',
      API_DRAIN_MS: '1000',
      WORKER_GRACE_MS: '2000',
      DELETED_RETENTION_MS: '5000',
    },
  });
  // The soak's own view of the tables: no injected faults here.
  const config = loadConfig({ ...process.env, ...pipeline.env, FAULT_AWS_ERROR_RATE: '0' });
  const aws = createAwsClients(config);
  const status = new StatusTable(aws.doc, config.STATUS_TABLE);
  const files = new FilesTable(aws.doc, config.FILES_TABLE);
  const tenants = new TenantStore(aws.doc, config.TENANTS_TABLE);
  const keys = new Map<string, string>([[pipeline.tenantId, pipeline.apiKey]]);
  for (const name of ['soak-b', 'soak-c']) {
    const tenantId = `${name}-${randomUUID().slice(0, 6)}`;
    await tenants.createTenant({ tenantId, name });
    keys.set(tenantId, (await tenants.createKey(tenantId, { name: 'soak' })).key);
  }
  const apiPort = new URL(pipeline.api.baseUrl).port;
  const apiUrl = pipeline.api.baseUrl;
  // The live processes by role; replacements are tracked here and stopped at the end.
  const live: { api: ServiceProcess; aggregator: ServiceProcess; workers: ServiceProcess[] } = {
    api: pipeline.api,
    aggregator: pipeline.aggregator,
    workers: [...pipeline.workers],
  };
  const workerIds = pipeline.workers.map((_, i) => `w${i + 1}`);
  /** Every document not seen terminal yet (any round): where in-flight work is counted. */
  const open: Submitted[] = [];
  /** Sync uploads whose answer the submitters are still waiting for (not acknowledged yet). */
  const awaiting = new Set<AwaitedSync>();
  /** The API's in-flight chunks of one sync document (its job as read, if any). */
  const syncInFlight = async (tenantId: string, documentId: string, job: Job | undefined, chunks: number): Promise<number> => {
    if (job && (TERMINAL.has(job.status) || job.mode !== 'sync')) return 0;
    const rows = job ? await status.listChunks(tenantId, documentId).catch(() => []) : [];
    // Not handed off to the fleet yet: every chunk may be analysed again.
    if (rows.length === 0) return job?.chunksTotal ?? chunks;
    return rows.filter((r) => r.status === 'processing' && r.claimOwner?.startsWith('sync-')).length;
  };
  /**
   * Chunks in flight in a process at the moment it is killed or stopped: those it holds claims on
   * (a worker: claimed, analysing or waiting for an analysis slot), or, for the API, the chunks of
   * its sync requests not handed off yet (all of them may be analysed again), including requests
   * not answered yet: the sync path starts analysing while it writes the job row, and a retry with
   * the same Idempotency-Key takes over a request that died before that row existed. The
   * aggregator analyses no chunk.
   */
  const inFlightIn = async (role: 'api' | 'aggregator' | 'worker', workerId?: string): Promise<number> => {
    if (role === 'aggregator') return 0;
    // Snapshots: a submission moves from `awaiting` to `open` in one step, so it is counted once.
    const acknowledged = [...open];
    const unanswered = [...awaiting];
    let n = 0;
    for (const d of acknowledged) {
      const job = await status.getJob(d.tenantId, d.id).catch(() => undefined);
      if (!job || TERMINAL.has(job.status)) continue;
      if (role === 'api') n += await syncInFlight(d.tenantId, d.id, job, job.chunksTotal);
      else {
        const rows = await status.listChunks(d.tenantId, d.id).catch(() => []);
        n += rows.filter((r) => r.status === 'processing' && r.claimOwner === workerId).length;
      }
    }
    if (role === 'api') {
      for (const s of unanswered) {
        // Unbound: the request has not started any work.
        const binding = await files.getIdempotencyKey(s.tenantId, s.key).catch(() => undefined);
        if (!binding) continue;
        const job = await status.getJob(s.tenantId, binding.documentId).catch(() => undefined);
        n += await syncInFlight(s.tenantId, binding.documentId, job, Math.ceil(s.pages / PAGES_PER_CHUNK));
      }
    }
    return n;
  };
  const started: ServiceProcess[] = [];
  let workerSeq = pipeline.workers.length;
  const rounds: SoakRound[] = [];
  try {
    for (let round = 1; round <= options.rounds; round++) {
      const docs: Submitted[] = [];
      const chaos: string[] = [];
      let inFlightAtChaos = 0;
      const roundStart = Date.now();
      const roundEnd = roundStart + (options.roundMs ?? 60_000);
      /** Seconds since the round started, for the chaos timeline and the repeats' times. */
      const since = (at: number) => `${((at - roundStart) / 1000).toFixed(1)} s`;
      fake.clearLog();

      const submitter = async (tenantId: string, apiKey: string): Promise<void> => {
        while (Date.now() < roundEnd) {
          const small = rand() < 0.4;
          const pages = small ? 1 + Math.floor(rand() * 6) : 10 + Math.floor(rand() * 70);
          const label = `soak-${round}-${randomUUID().slice(0, 8)}`;
          const pdf = await generatePdf({ pages, seed: Math.floor(rand() * 1e6), label });
          const key = randomUUID();
          const sync: AwaitedSync | undefined = small ? { tenantId, key, pages } : undefined;
          if (sync) awaiting.add(sync);
          const id = await submit(apiUrl, apiKey, key, pdf.bytes, small ? 'auto' : 'async');
          if (sync) awaiting.delete(sync);
          if (id) {
            const doc = { id, label, tenantId, pages, submittedAt: Date.now() };
            docs.push(doc);
            open.push(doc);
          }
          await sleep(500 + rand() * 1500);
        }
      };

      const cycle: Array<'api' | 'aggregator' | 'worker'> = [];
      const chaosLoop = async (): Promise<void> => {
        for (;;) {
          await sleep((options.chaosEveryMs ?? 6_000) * (0.5 + rand()));
          if (Date.now() >= roundEnd) return;
          // Every role is hit in turn (each cycle in a random order), so a short run covers them all.
          if (cycle.length === 0) cycle.push(...(['api', 'aggregator', 'worker', 'worker'] as const).map((r) => ({ r, k: rand() })).sort((a, b) => a.k - b.k).map((x) => x.r));
          const role = cycle.shift() as 'api' | 'aggregator' | 'worker';
          const index = Math.floor(rand() * live.workers.length);
          const target = role === 'worker' ? live.workers[index] : live[role];
          if (!target || target.exited()) continue;
          inFlightAtChaos += await inFlightIn(role, role === 'worker' ? workerIds[index] : undefined);
          if (rand() < 0.6) {
            chaos.push(`kill -9 ${role} at ${since(Date.now())}`);
            target.signal('SIGKILL');
            await target.exitedPromise;
            await sleep(300 + rand() * 1500);
            const replacement =
              role === 'api'
                ? await startService({ service: 'api', env: { ...pipeline.env, PORT: apiPort } })
                : role === 'aggregator'
                  ? await startService({ service: 'aggregator', env: pipeline.env })
                  : await startService({ service: 'worker', env: { ...pipeline.env, WORKER_ID: `w${++workerSeq}` }, portEnv: 'WORKER_PORT' });
            started.push(replacement);
            if (role === 'worker') {
              live.workers[index] = replacement;
              workerIds[index] = `w${workerSeq}`;
            }
            else live[role] = replacement;
          } else {
            const pauseMs = 1_000 + rand() * 3_000;
            chaos.push(`stop ${role} ${Math.round(pauseMs)} ms at ${since(Date.now())}`);
            target.signal('SIGSTOP');
            await sleep(pauseMs);
            target.signal('SIGCONT');
          }
        }
      };

      await Promise.all([...[...keys].map(([tenantId, key]) => submitter(tenantId, key)), chaosLoop()]);

      // Drain: every acknowledged document must reach a terminal state by its deadline, which
      // the reconciler enforces; past that (plus a sweep and margin) it is stuck.
      const bound = (d: Submitted) => d.submittedAt + DEADLINE_MS + STALE_MS + 3 * INTERVAL_MS + 10_000;
      for (;;) {
        const open = docs.filter((d) => d.terminalAt === undefined && Date.now() < bound(d));
        if (open.length === 0) break;
        for (const d of open) {
          const job = await status.getJob(d.tenantId, d.id).catch(() => undefined);
          d.job = job;
          if (job && TERMINAL.has(job.status)) d.terminalAt = Date.parse(job.completedAt ?? job.updatedAt) || Date.now();
        }
        await sleep(500);
      }
      for (const d of docs) if (d.terminalAt === undefined) d.job = await status.getJob(d.tenantId, d.id).catch(() => undefined);
      for (const d of docs) if (d.terminalAt !== undefined) open.splice(open.indexOf(d), 1);

      // Answered analyses by document label and first page: when each was answered.
      const byLabel = new Map<string, Map<number, number[]>>();
      for (const r of fake.log) {
        if (r.pages.length === 0 || r.status !== 200) continue;
        const label = /soak-\d+-[0-9a-f]{8}/.exec(r.sample)?.[0];
        if (!label) continue;
        const chunks = byLabel.get(label) ?? new Map<number, number[]>();
        chunks.set(r.pages[0] as number, [...(chunks.get(r.pages[0] as number) ?? []), r.respondedAt ?? r.at]);
        byLabel.set(label, chunks);
      }
      const repeatedAnalyses = [...byLabel.values()].reduce((n, chunks) => n + [...chunks.values()].reduce((m, times) => m + Math.max(0, times.length - 1), 0), 0);
      const failed: Record<string, number> = {};
      let maxMs = 0;
      for (const d of docs) {
        if (d.job?.status === 'failed') failed[d.job.error?.code ?? 'unknown'] = (failed[d.job.error?.code ?? 'unknown'] ?? 0) + 1;
        if (d.terminalAt !== undefined) maxMs = Math.max(maxMs, d.terminalAt - d.submittedAt);
      }
      const counted = (j: Job) => j.chunksSucceeded + j.chunksFailed;
      const result: SoakRound = {
        round,
        submitted: docs.length,
        completed: docs.filter((d) => d.job?.status === 'completed').length,
        completedWithErrors: docs.filter((d) => d.job?.status === 'completed_with_errors').length,
        failed,
        cancelled: docs.filter((d) => d.job?.status === 'cancelled').length,
        stuck: docs.filter((d) => d.job && !TERMINAL.has(d.job.status)).length,
        lost: docs.filter((d) => !d.job).length,
        repeatedAnalyses,
        inFlightAtChaos,
        doubleCounts: docs.filter((d) => d.job && (d.job.status === 'completed' || d.job.status === 'completed_with_errors') && counted(d.job) !== d.job.chunksTotal).length,
        maxSubmitToTerminalMs: maxMs,
        chaos,
      };
      rounds.push(result);
      print(
        `round ${round}: submitted ${result.submitted}, completed ${result.completed}, completed_with_errors ${result.completedWithErrors}, ` +
          `failed ${Object.values(failed).reduce((a, b) => a + b, 0)} ${JSON.stringify(failed)}, stuck ${result.stuck}, lost ${result.lost}, ` +
          `repeated analyses ${repeatedAnalyses} (in flight at kills/stops ${inFlightAtChaos}), double counts ${result.doubleCounts}, ` +
          `max submit->terminal ${(maxMs / 1000).toFixed(1)} s; chaos: ${chaos.join(', ') || 'none'}`,
      );
      if (repeatedAnalyses > inFlightAtChaos) {
        // Past the allowance: which chunks, and when each analysis was answered, next to the
        // chaos timeline above, so that a failed run says where to look.
        for (const [label, chunks] of byLabel) {
          const doc = docs.find((d) => d.label === label);
          for (const [page, times] of chunks) {
            if (times.length > 1) print(`  analysed ${times.length} times: ${doc ? `${doc.tenantId}/${doc.id}` : label}, chunk from page ${page}, answered at ${times.map(since).join(', ')}`);
          }
        }
      }
      for (const d of docs.filter((x) => !x.job || !TERMINAL.has(x.job.status))) {
        print(`  not terminal: ${d.tenantId}/${d.id} ${d.job?.status ?? 'missing'} ${JSON.stringify(d.job ? { total: d.job.chunksTotal, ok: d.job.chunksSucceeded, failed: d.job.chunksFailed, mode: d.job.mode } : {})}`);
      }
    }
  } finally {
    await Promise.all(started.map((p) => p.stop(5_000)));
    await pipeline.stop().catch(() => undefined);
    await fake.close();
    aws.destroy();
  }
  return rounds;
}

/**
 * Uploads like a careful client: one Idempotency-Key for every attempt, retried on a lost
 * connection, 429 and 5xx (honouring Retry-After) for up to 60 s. Returns the document id once
 * acknowledged (200 or 202), undefined when the API never took it.
 */
async function submit(baseUrl: string, apiKey: string, key: string, bytes: Uint8Array, mode: string): Promise<string | undefined> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const form = new FormData();
    form.set('mode', mode);
    form.set('pagesPerChunk', String(PAGES_PER_CHUNK));
    form.set('file', new Blob([bytes], { type: 'application/pdf' }), 'soak.pdf');
    try {
      const res = await fetch(`${baseUrl}/v1/documents`, {
        method: 'POST',
        body: form,
        headers: { authorization: `Bearer ${apiKey}`, 'idempotency-key': key },
        signal: AbortSignal.timeout(30_000),
      });
      const body = (await res.json().catch(() => ({}))) as { id?: string; documentId?: string };
      if (res.status === 200 || res.status === 202) return body.id ?? body.documentId ?? res.headers.get('location')?.split('/').pop();
      if (res.status !== 429 && res.status < 500 && res.status !== 409) return undefined;
      await sleep(Math.min(5_000, Number(res.headers.get('retry-after') ?? 1) * 1_000));
    } catch {
      await sleep(500); // the API was killed or stopped: try again (same key)
    }
  }
  return undefined;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
