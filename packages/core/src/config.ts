/**
 * Every setting of every docorch process, read from the environment in this one place.
 *
 * Each variable has a default and a one-line doc (the `.describe()` text, also printed by
 * `describeConfig()`). A malformed value fails at start-up with a message naming the variable.
 */
import os from 'node:os';
import { z } from 'zod';

const int = (def: number, min = 0) => z.coerce.number().int().min(min).default(def);
const optionalUrl = z.url().optional();

/** The environment schema: variable name -> parser with default and description. */
export const configSchema = z.object({
  NODE_ENV: z.enum(['development', 'test', 'production']).default('development').describe('Runtime environment.'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info').describe('pino log level.'),

  AWS_REGION: z.string().min(1).default('us-east-1').describe('AWS region of every client.'),
  S3_ENDPOINT: optionalUrl.describe('S3 endpoint override (local emulator); unset means real AWS.'),
  DYNAMODB_ENDPOINT: optionalUrl.describe('DynamoDB endpoint override (local emulator); unset means real AWS.'),
  DYNAMODB_STREAMS_ENDPOINT: optionalUrl.describe('DynamoDB Streams endpoint override; defaults to DYNAMODB_ENDPOINT.'),
  KINESIS_ENDPOINT: optionalUrl.describe('Kinesis endpoint override (local emulator); unset means real AWS.'),

  UPLOADS_BUCKET: z.string().min(3).default('docorch-uploads').describe('S3 bucket for uploaded PDFs and chunk inputs.'),
  RESULTS_BUCKET: z.string().min(3).default('docorch-results').describe('S3 bucket for chunk and document results.'),
  FILES_TABLE: z.string().min(3).default('docorch-files').describe('DynamoDB table of file metadata.'),
  STATUS_TABLE: z.string().min(3).default('docorch-status').describe('DynamoDB table of job and chunk rows (stream enabled).'),
  TENANTS_TABLE: z.string().min(3).default('docorch-tenants').describe('DynamoDB table of tenants and hashed API keys.'),
  DEAD_LETTERS_TABLE: z.string().min(3).default('docorch-dead-letters').describe('DynamoDB table of records that could not be processed.'),
  LEASES_TABLE: z.string().min(3).default('docorch-leases').describe('DynamoDB lease table of the stream consumer (KCL layout).'),
  STREAM_NAME: z.string().min(1).default('docorch-events').describe('Kinesis stream carrying document and chunk events.'),
  STREAM_SHARDS: int(4, 1).describe('Local stack only: shards of the stream it creates (Terraform sets them in AWS).'),

  HOST: z.string().min(1).default('127.0.0.1').describe('Address the HTTP servers bind to (0.0.0.0 in containers).'),
  PORT: int(3000).describe('API HTTP port.'),
  WORKER_PORT: int(8081).describe('Worker HTTP port for /healthz and /metrics.'),
  TRUST_PROXY: int(0).describe('Number of reverse proxies (e.g. the ALB) in front of the API, for client IPs.'),
  UPLOAD_TMP_DIR: z.string().min(1).default(os.tmpdir()).describe('Directory multer streams uploads into.'),
  MAX_UPLOAD_BYTES: int(100 * 1024 * 1024, 1).describe('Largest accepted upload in bytes (413 above).'),
  MAX_PAGES: int(2000, 1).describe('Most pages accepted in one document (422 TOO_MANY_PAGES above).'),
  SYNC_MAX_BYTES: int(5 * 1024 * 1024, 0).describe('mode=auto: files up to this size are answered in the request.'),
  SYNC_MAX_PAGES: int(30, 0).describe('mode=auto: files up to this many pages are answered in the request.'),
  SYNC_TIMEOUT_MS: int(25_000, 1).describe('Time budget of a synchronous request.'),
  PAGES_PER_CHUNK: int(10, 1).describe('Default pages per analysis chunk (a request may override it).'),
  RATE_LIMIT_PER_MINUTE: int(120, 1).describe('Requests per minute per tenant on the API (429 above).'),
  DEV_API_KEY: z.string().min(16).optional().describe('Local stack only: API key of the seeded dev tenant.'),

  PDF_THREADS: int(Math.max(1, Math.min(4, os.availableParallelism())), 1).describe('Worker threads parsing PDFs.'),
  PDF_TIMEOUT_MS: int(60_000, 1).describe('Longest a single PDF inspection or extraction may take.'),
  PDF_MAX_HEAP_MB: int(768, 64).describe('Heap limit (old generation) of each PDF worker thread, in MiB.'),
  PDF_MAX_TEXT_BYTES: int(64 * 1024 * 1024, 1024).describe('Most extracted text accepted from one document.'),
  PDF_SLICE_PAGES: int(250, 1).describe('Most pages one PDF thread extracts per task; larger selections are split over the threads.'),

  ANALYZER: z.enum(['local', 'gemini']).optional().describe('Analyzer; default gemini when GEMINI_API_KEY is set, else local.'),
  ANALYSIS_CONCURRENCY: int(4, 1).describe('Chunk analyses in flight per process (p-limit cap).'),
  ANALYSIS_THREADS: int(Math.max(1, Math.min(4, os.availableParallelism())), 1).describe('Worker threads of the local analyzer.'),
  ANALYSIS_TIMEOUT_MS: int(60_000, 1).describe('Longest a single chunk analysis may take.'),
  GEMINI_API_KEY: z.string().min(1).optional().describe('Gemini API key; enables the Gemini analyzer.'),
  GEMINI_MODEL: z.string().min(1).default('gemini-2.5-flash').describe('Gemini model name.'),
  GEMINI_BASE_URL: optionalUrl.describe('Gemini API base URL override (tests use a fake server).'),

});

/** The validated configuration. */
export type Config = z.infer<typeof configSchema> & {
  /** The analyzer actually selected (ANALYZER, else gemini if GEMINI_API_KEY is set, else local). */
  analyzer: 'local' | 'gemini';
};

/** Raised at start-up when the environment is invalid; the message names each bad variable. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

/**
 * Parses and validates the environment.
 * @param env - defaults to `process.env`; empty strings count as unset.
 * @throws ConfigError naming every variable that is malformed.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const cleaned: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) {
    if (value !== undefined && value !== '' && key in configSchema.shape) cleaned[key] = value;
  }
  const parsed = configSchema.safeParse(cleaned);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => {
        const name = String(issue.path[0] ?? '(root)');
        return `${name}=${JSON.stringify(cleaned[name] ?? '')}: ${issue.message}`;
      }),
    );
  }
  const analyzer = parsed.data.ANALYZER ?? (parsed.data.GEMINI_API_KEY ? 'gemini' : 'local');
  return { ...parsed.data, analyzer };
}

/** One line per variable with its description, for `--help` style output and docs. */
export function describeConfig(): string[] {
  return Object.entries(configSchema.shape).map(([name, schema]) => `${name}: ${schema.description ?? ''}`);
}
