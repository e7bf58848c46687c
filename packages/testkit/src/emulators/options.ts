/**
 * Option and result types of {@link startEmulators}, and the environment that points docorch's
 * config at the emulators.
 */

/** Ports of the three emulators. */
export interface EmulatorPorts {
  s3: number;
  dynamodb: number;
  kinesis: number;
}

/** How long kinesalite keeps a stream in a transitional state, and its account shard limit. */
export interface KinesaliteTuning {
  /** Time a new stream stays CREATING, in ms. @defaultValue 10 */
  createStreamMs?: number;
  /** Time a deleted stream stays DELETING, in ms. @defaultValue 10 */
  deleteStreamMs?: number;
  /** Time a resharded stream stays UPDATING, in ms. @defaultValue 10 */
  updateStreamMs?: number;
  /**
   * Most shards over all streams (LimitExceededException above). Tests create a stream per test,
   * so this is far above AWS's default. @defaultValue 10000
   */
  shardLimit?: number;
}

/** Options of {@link startEmulators}. */
export interface StartEmulatorsOptions {
  /**
   * Directory the emulators persist their data in (`s3/`, `dynamodb/`, `kinesis/` below it), so
   * a restart with the same directory keeps everything. When absent, s3rver uses a temporary
   * directory (removed on stop) and DynamoDB Local and kinesalite keep their data in memory.
   * @defaultValue undefined
   */
  dataDir?: string;
  /** Fixed ports; each emulator without one gets a free port. @defaultValue {} */
  ports?: Partial<EmulatorPorts>;
  /** Region put into {@link RunningEmulators.env} (kinesalite's ARNs use it too). @defaultValue 'us-east-1' */
  region?: string;
  /** kinesalite timings. @defaultValue see {@link KinesaliteTuning} */
  kinesis?: KinesaliteTuning;
  /** Longest wait until all three emulators answer, in ms. @defaultValue 60000 */
  startTimeoutMs?: number;
  /** Forward emulator output (s3rver request log, DynamoDB Local output) to stderr. @defaultValue false */
  verbose?: boolean;
}

/** Base URLs of the emulators (always `http://127.0.0.1:<port>`). */
export interface EmulatorEndpoints {
  s3: string;
  dynamodb: string;
  kinesis: string;
}

/** The variables {@link RunningEmulators.env} sets; docorch's config reads exactly these. */
export type EmulatorEnvName =
  | 'S3_ENDPOINT'
  | 'DYNAMODB_ENDPOINT'
  | 'KINESIS_ENDPOINT'
  | 'AWS_ACCESS_KEY_ID'
  | 'AWS_SECRET_ACCESS_KEY'
  | 'AWS_REGION';

/** Environment pointing docorch (config + SDK credential chain) at the emulators. */
export type EmulatorEnv = Record<EmulatorEnvName, string>;

/** Emulators started by {@link startEmulators}. */
export interface RunningEmulators {
  endpoints: EmulatorEndpoints;
  /**
   * Endpoint variables plus credentials and region. The credentials are s3rver's fixed key pair
   * `S3RVER`/`S3RVER`: s3rver verifies signatures against it, DynamoDB Local and kinesalite
   * accept any key, so one pair serves the whole local stack.
   */
  env: EmulatorEnv;
  /** Process id of the emulator host (the Node child that runs all three emulators). */
  pid: number;
  /** Stops all three emulators; removes the temporary s3rver directory. Idempotent. */
  stop(): Promise<void>;
}

/** s3rver accepts only this key pair (its signature check is real). */
export const EMULATOR_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

/** The environment for emulators at `endpoints`. */
export function emulatorEnv(endpoints: EmulatorEndpoints, region: string): EmulatorEnv {
  return {
    S3_ENDPOINT: endpoints.s3,
    DYNAMODB_ENDPOINT: endpoints.dynamodb,
    KINESIS_ENDPOINT: endpoints.kinesis,
    AWS_ACCESS_KEY_ID: EMULATOR_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: EMULATOR_CREDENTIALS.secretAccessKey,
    AWS_REGION: region,
  };
}
