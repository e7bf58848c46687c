/**
 * Per-test isolation on the shared emulators, the BullMQ way: every test gets its own randomly
 * named buckets, tables and stream, and deletes them afterwards.
 */
import { randomBytes } from 'node:crypto';
import {
  createAwsClients,
  deleteResources,
  ensureResources,
  loadConfig,
  type ResourceClients,
  type ResourceNames,
} from '@docorch/core';

/**
 * Fresh resource names, valid for S3 buckets, DynamoDB tables and Kinesis streams alike:
 * `${prefix}-${8 random hex}-uploads`, `...-files`, `...-events`, and so on.
 * @param prefix - lower-cased; characters other than a-z, 0-9 and '-' become '-'; cut to 24.
 */
export function uniqueNames(prefix = 'test'): ResourceNames {
  const clean =
    prefix
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, '-')
      .slice(0, 24)
      .replace(/^-+|-+$/g, '') || 'test';
  const base = `${clean}-${randomBytes(4).toString('hex')}`;
  return {
    UPLOADS_BUCKET: `${base}-uploads`,
    RESULTS_BUCKET: `${base}-results`,
    FILES_TABLE: `${base}-files`,
    STATUS_TABLE: `${base}-status`,
    TENANTS_TABLE: `${base}-tenants`,
    LEASES_TABLE: `${base}-leases`,
    DEAD_LETTERS_TABLE: `${base}-dead`,
    RATE_LIMIT_TABLE: `${base}-ratelimit`,
    WEBHOOKS_TABLE: `${base}-webhooks`,
    STREAM_NAME: `${base}-events`,
  };
}

/** Options of {@link createIsolatedResources}. */
export interface CreateIsolatedResourcesOptions {
  /** Prefix of the names (see {@link uniqueNames}); use the test's topic. @defaultValue 'test' */
  prefix?: string;
  /**
   * Clients to create and delete the resources with. @defaultValue clients for the emulators named
   * in process.env (set by the vitest global setup), destroyed by `cleanup()`
   */
  clients?: ResourceClients;
  /** Shards of the stream. @defaultValue 4 */
  shardCount?: number;
}

/** Resources of one test. */
export interface IsolatedResources {
  /**
   * The names, keyed like the config: merge them into a config or an env, e.g.
   * `loadConfig({ ...process.env, ...resources.names })`.
   */
  names: ResourceNames;
  /** Deletes the resources with their contents and destroys clients created here. Idempotent. */
  cleanup(): Promise<void>;
}

/**
 * Creates randomly named buckets, tables and a stream on the emulators, active when it resolves.
 * Call `cleanup()` after the test (e.g. in afterEach / onTestFinished).
 *
 * @throws Error when no clients are given and process.env names no emulator endpoints: this
 *   helper never creates resources on real AWS.
 */
export async function createIsolatedResources(options: CreateIsolatedResourcesOptions = {}): Promise<IsolatedResources> {
  const names = uniqueNames(options.prefix);
  let clients = options.clients;
  let destroy = () => {};
  if (!clients) {
    const { S3_ENDPOINT, DYNAMODB_ENDPOINT, KINESIS_ENDPOINT } = process.env;
    if (!S3_ENDPOINT || !DYNAMODB_ENDPOINT || !KINESIS_ENDPOINT) {
      throw new Error(
        'createIsolatedResources: S3_ENDPOINT, DYNAMODB_ENDPOINT and KINESIS_ENDPOINT are not set; run under the vitest global setup or pass clients',
      );
    }
    const aws = createAwsClients(loadConfig(process.env));
    clients = aws;
    destroy = () => aws.destroy();
  }
  const used = clients;
  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    (cleaning ??= deleteResources(used, names).finally(destroy));
  try {
    await ensureResources(used, names, options.shardCount === undefined ? {} : { shardCount: options.shardCount });
  } catch (err) {
    await cleanup().catch(() => undefined);
    throw err;
  }
  return { names, cleanup };
}
