/**
 * A whole docorch deployment for tests and benchmarks: isolated resources on the emulators
 * (fresh bucket, table and stream names), a tenant, the API, N workers and the aggregator, each
 * a real child process, bound to 127.0.0.1.
 */
import { createAwsClients, loadConfig, TenantStore, type Plan } from '@docorch/core';
import { createIsolatedResources, type IsolatedResources } from './emulators/index.js';
import { servicesCompiledByDefault, startService, type ServiceProcess } from './services.js';

/** Options of {@link startPipeline}. */
export interface StartPipelineOptions {
  /** @defaultValue 3 */
  workers?: number;
  /** @defaultValue 4 */
  shards?: number;
  /** Extra environment for every service (timeouts, analyzer, log level). */
  env?: Record<string, string>;
  /** Prefix of the resource names. @defaultValue 'pipe' */
  prefix?: string;
  /** Plan of the tenant created for the run. @defaultValue the config defaults */
  plan?: Plan;
  /**
   * Wait until the workers hold shards evenly (each `floor` or `ceil` of shards / workers), as
   * a fleet in steady state does; leases move one steal per take interval. @defaultValue false
   */
  waitForBalance?: boolean;
  /** Run the services compiled, as `npm start` does (see StartServiceOptions.compiled). @defaultValue servicesCompiledByDefault() */
  compiled?: boolean;
}

/** The shards each worker reports in /healthz. */
export async function workerShards(workers: readonly ServiceProcess[]): Promise<string[][]> {
  return Promise.all(
    workers.map(async (w) => {
      try {
        const res = await fetch(`${w.baseUrl}/healthz`, { signal: AbortSignal.timeout(2_000) });
        return ((await res.json()) as { shards?: string[] }).shards ?? [];
      } catch {
        return [];
      }
    }),
  );
}

async function waitForBalance(workers: readonly ServiceProcess[], shards: number, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const low = Math.floor(shards / workers.length);
  const high = Math.ceil(shards / workers.length);
  for (;;) {
    const held = await workerShards(workers);
    const total = new Set(held.flat()).size;
    if (total === shards && held.every((h) => h.length >= low && h.length <= high)) return;
    if (Date.now() > deadline) throw new Error(`workers did not balance ${shards} shards: ${JSON.stringify(held)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** A running pipeline. */
export interface Pipeline {
  api: ServiceProcess;
  workers: ServiceProcess[];
  aggregator: ServiceProcess;
  apiKey: string;
  tenantId: string;
  /** The environment every service got (resource names, endpoints). */
  env: Record<string, string>;
  resources: IsolatedResources;
  /** Starts one more worker (e.g. to replace a killed one). */
  startWorker(id: string): Promise<ServiceProcess>;
  /** Stops every process and deletes the resources. */
  stop(): Promise<void>;
}

export async function startPipeline(options: StartPipelineOptions = {}): Promise<Pipeline> {
  const resources = await createIsolatedResources({ prefix: options.prefix ?? 'pipe', shardCount: options.shards ?? 4 });
  const env: Record<string, string> = { ...resources.names, LOG_LEVEL: 'warn', ...options.env };
  const config = loadConfig({ ...process.env, ...env });
  const aws = createAwsClients(config);
  const tenantId = `t${Math.random().toString(36).slice(2, 10)}`;
  const tenants = new TenantStore(aws.doc, config.TENANTS_TABLE);
  await tenants.createTenant({ tenantId, name: tenantId, ...(options.plan ? { plan: options.plan } : {}) });
  const { key: apiKey } = await tenants.createKey(tenantId, { name: 'test' });
  aws.destroy();

  const compiled = options.compiled ?? servicesCompiledByDefault();
  const startWorker = (id: string) => startService({ service: 'worker', env: { ...env, WORKER_ID: id }, portEnv: 'WORKER_PORT', compiled });
  const started = await Promise.allSettled([
    startService({ service: 'api', env, compiled }),
    startService({ service: 'aggregator', env, compiled }),
    ...Array.from({ length: options.workers ?? 3 }, (_, i) => startWorker(`w${i + 1}`)),
  ]);
  // A service that fails to start must not leave the others running (nor its resources behind).
  const abandon = async (err: unknown): Promise<never> => {
    await Promise.all(started.map((r) => (r.status === 'fulfilled' ? r.value.stop(5_000) : undefined)));
    await resources.cleanup().catch(() => undefined);
    throw err;
  };
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) await abandon(failed.reason);
  const [api, aggregator, ...workers] = started.map((r) => (r as PromiseFulfilledResult<ServiceProcess>).value);
  const all = () => [api, aggregator, ...workers] as ServiceProcess[];
  if (options.waitForBalance) await waitForBalance(workers as ServiceProcess[], options.shards ?? 4).catch(abandon);
  return {
    api: api as ServiceProcess,
    aggregator: aggregator as ServiceProcess,
    workers: workers as ServiceProcess[],
    apiKey,
    tenantId,
    env,
    resources,
    async startWorker(id: string) {
      const w = await startWorker(id);
      workers.push(w);
      return w;
    },
    async stop() {
      await Promise.all(all().map((p) => p.stop(15_000)));
      await resources.cleanup();
    },
  };
}
