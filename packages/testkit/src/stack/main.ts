/**
 * The embedded local stack (`npm start`): emulators with data under .data/, resources created
 * idempotently, a dev tenant, and the services as separate processes.
 */
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  createAwsClients,
  createLogger,
  ensureResources,
  generateApiKey,
  keyIdOf,
  loadConfig,
  TenantStore,
} from '@docorch/core';
import { seedDevTenant } from './dev-tenant.js';
import { startEmulators } from '../emulators/index.js';
import { Supervisor } from './supervisor.js';
import { serviceEntry } from '../services.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..');
const startConfig = loadConfig();
const dataDir = path.resolve(startConfig.DOCORCH_DATA_DIR ?? path.join(root, '.data'));
const logger = createLogger({ service: 'stack', level: startConfig.LOG_LEVEL });

async function devApiKey(tenants: TenantStore): Promise<string> {
  const file = path.join(dataDir, 'dev-api-key');
  let key = startConfig.DEV_API_KEY;
  if (!key) {
    key = await readFile(file, 'utf8').then(
      (s) => s.trim(),
      () => undefined,
    );
  }
  // A key from before the dk_live_<keyid>_<secret> format is replaced by a new one.
  if (!key || !keyIdOf(key)) key = generateApiKey().key;
  await seedDevTenant(tenants, key);
  await writeFile(file, `${key}\n`, { mode: 0o600 });
  await chmod(file, 0o600);
  return key;
}

/**
 * A service's entry: `dist/main.js` when the stack runs compiled (`npm start`), and
 * `src/main.ts` with the tsx loader when the stack itself runs from source (tests), so that a
 * test never depends on a build of the services.
 */
function entryOf(name: string): { script: string; nodeArgs: string[] } {
  return serviceEntry(name, !import.meta.url.endsWith('.ts'));
}

async function waitForHealth(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1_000) });
      if (res.ok) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${url} did not become healthy within ${timeoutMs} ms`);
}

async function main(): Promise<void> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const emulators = await startEmulators({ dataDir: path.join(dataDir, 'emulators') });
  // The SDK reads the emulators' credentials from the environment, here as in the services.
  Object.assign(process.env, emulators.env);
  // Webhook receivers on this machine are allowed (docs/webhooks.md); production allows none.
  const env: NodeJS.ProcessEnv = { WEBHOOK_ALLOWED_CIDRS: '127.0.0.1/32', ...process.env };
  const config = loadConfig(env);
  const aws = createAwsClients(config);
  await ensureResources(aws, config, { shardCount: config.SHARDS });
  const apiKey = await devApiKey(new TenantStore(aws.doc, config.TENANTS_TABLE));
  // Where the admin command line (`pnpm docorch ...`) finds this stack: endpoints and resource names.
  const stackFile = path.join(dataDir, 'stack.json');
  const names = Object.fromEntries(
    (['UPLOADS_BUCKET', 'RESULTS_BUCKET', 'FILES_TABLE', 'STATUS_TABLE', 'TENANTS_TABLE', 'DEAD_LETTERS_TABLE', 'LEASES_TABLE', 'RATE_LIMIT_TABLE', 'WEBHOOKS_TABLE', 'STREAM_NAME'] as const).map((k) => [k, String(config[k])]),
  );
  await writeFile(stackFile, `${JSON.stringify({ env: { ...emulators.env, ...names } }, null, 2)}\n`, { mode: 0o600 });
  aws.destroy();

  const supervisor = new Supervisor(logger);
  const baseUrl = `http://${config.HOST}:${config.PORT}`;
  supervisor.start({ name: 'api', ...entryOf('api'), env });
  // Workers and the aggregator get their own HTTP ports (health, metrics) next to the API's.
  for (let i = 1; i <= config.WORKERS; i++) {
    supervisor.start({
      name: `worker-${i}`,
      ...entryOf('worker'),
      env: { ...env, WORKER_PORT: String(config.PORT + 10 + i), WORKER_ID: `local-worker-${i}` },
    });
  }
  supervisor.start({
    name: 'aggregator',
    ...entryOf('aggregator'),
    env: { ...env, PORT: String(config.PORT + 10) },
  });
  await waitForHealth(`${baseUrl}/healthz`, 60_000);
  // Ready means balanced: every worker's /readyz waits (up to READY_BALANCE_TIMEOUT_MS) until the
  // fleet holds the shards evenly, so the first document does not meet leases still moving.
  const balanceStarted = Date.now();
  const workerUrls = Array.from({ length: config.WORKERS }, (_, i) => `http://${config.HOST}:${config.PORT + 11 + i}/readyz`);
  await Promise.all(workerUrls.map((url) => waitForHealth(url, config.READY_BALANCE_TIMEOUT_MS + 60_000)));
  const balance = (await (await fetch(workerUrls[0] as string)).json().catch(() => ({}))) as { balance?: { balanced: boolean; held: Record<string, number> } };
  const heldLine = balance.balance
    ? `${Object.values(balance.balance.held).join('+')} shards${balance.balance.balanced ? '' : ' (not balanced yet)'}`
    : 'unknown';

  process.stdout.write(
    [
      '',
      `docorch local stack is up (Node ${process.version})`,
      `  API:      ${baseUrl}   (${config.WORKERS} workers on ${config.SHARDS} shards, aggregator on :${config.PORT + 10})`,
      `  Fleet:    ready in ${((Date.now() - balanceStarted) / 1000).toFixed(1)} s, leases held ${heldLine}`,
      `  API key:  ${apiKey}   (also in ${path.relative(process.cwd(), path.join(dataDir, 'dev-api-key'))})`,
      `  S3:       ${emulators.endpoints.s3}   DynamoDB: ${emulators.endpoints.dynamodb}   Kinesis: ${emulators.endpoints.kinesis}`,
      `  Metrics:  ${baseUrl}/metrics, worker-N on :${config.PORT + 10}+N/metrics, aggregator :${config.PORT + 10}/metrics`,
      `  Data:     ${dataDir}`,
      `  Admin:    pnpm docorch tenants list   (pnpm docorch --help)`,
      `  Docs:     ${baseUrl}/docs (API reference)   Console: ${baseUrl}/console`,
      '',
      'Configure the client (the docorch command, @docorch/client) for this stack:',
      `  export DOCORCH_URL=${baseUrl} DOCORCH_API_KEY=$(cat ${path.relative(process.cwd(), path.join(dataDir, 'dev-api-key'))})`,
      'then: pnpm docorch analyze your.pdf --wait',
      '',
      'Or with curl:',
      `  curl -s -H "Authorization: Bearer $(cat ${path.relative(process.cwd(), path.join(dataDir, 'dev-api-key'))})" -F file=@your.pdf ${baseUrl}/v1/documents`,
      '',
      'Ctrl-C stops everything (data is kept).',
      '',
    ].join('\n'),
  );

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping local stack');
    await supervisor.stop();
    await emulators.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

main().catch((err: unknown) => {
  logger.fatal({ err }, 'local stack failed to start');
  process.exit(1);
});
