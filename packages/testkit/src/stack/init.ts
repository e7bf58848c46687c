/**
 * The compose stack's init step (docker-compose.yml `init`): creates the buckets, tables and stream
 * idempotently on the emulators and seeds the dev tenant with DEV_API_KEY, the same calls `npm start`
 * makes (main.ts). Retries until the emulators answer, so it may start with them.
 */
import { createAwsClients, createLogger, ensureResources, loadConfig, TenantStore } from '@docorch/core';
import { seedDevTenant } from './dev-tenant.js';

const config = loadConfig();
const logger = createLogger({ service: 'init', level: config.LOG_LEVEL });
if (!config.DEV_API_KEY) {
  logger.fatal('DEV_API_KEY is required: the key of the dev tenant to seed');
  process.exit(1);
}
const aws = createAwsClients(config);
const deadline = Date.now() + 120_000;
for (let attempt = 1; ; attempt++) {
  try {
    await ensureResources(aws, config, { shardCount: config.SHARDS });
    await seedDevTenant(new TenantStore(aws.doc, config.TENANTS_TABLE), config.DEV_API_KEY);
    break;
  } catch (err) {
    if (Date.now() > deadline) {
      logger.fatal({ err }, 'could not create the resources');
      process.exit(1);
    }
    logger.info({ attempt, err: (err as Error).message }, 'emulators not ready; retrying');
    await new Promise((r) => setTimeout(r, 1_000));
  }
}
aws.destroy();
logger.info({ shards: config.SHARDS }, 'resources ready, dev tenant seeded');
