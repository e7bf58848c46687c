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
  WEBHOOKS_TABLE: z.string().min(3).default('docorch-webhooks').describe('DynamoDB table of webhook deliveries (the persisted delivery schedule and each delivery\'s attempts).'),
  LEASES_TABLE: z.string().min(3).default('docorch-leases').describe('DynamoDB lease table of the stream consumer (KCL layout).'),
  RATE_LIMIT_TABLE: z.string().min(3).default('docorch-ratelimit').describe('DynamoDB table of the fleet-wide model rate-limit buckets (key pk).'),
  STREAM_NAME: z.string().min(1).default('docorch-events').describe('Kinesis stream carrying document and chunk events.'),
  SHARDS: int(4, 1).describe('Local stack only: shards of the stream it creates (Terraform sets them in AWS).'),
  WORKERS: int(2, 0).describe('Local stack only: worker processes it runs.'),

  HOST: z.string().min(1).default('127.0.0.1').describe('Address the HTTP servers bind to (0.0.0.0 in containers).'),
  PORT: int(3000).describe('API HTTP port.'),
  WORKER_PORT: int(8081).describe('Worker HTTP port for /healthz and /metrics.'),
  TRUST_PROXY: int(0).describe('Number of reverse proxies (e.g. the ALB) in front of the API, for client IPs.'),
  KEEP_ALIVE_TIMEOUT_MS: int(75_000, 1_000).describe('How long the API keeps an idle client connection open; must exceed the load balancer idle timeout (Terraform sets it to that plus 15 s).'),
  UPLOAD_TMP_DIR: z.string().min(1).default(os.tmpdir()).describe('Directory of the local copy of each upload, which the PDF workers read: the whole file up to max(SYNC_MAX_BYTES, 1 MiB), else its first that many bytes and its last 4 MiB (the uploads bucket has it all).'),
  MAX_UPLOAD_BYTES: int(100 * 1024 * 1024, 1).describe('Plan default and ceiling: largest accepted upload in bytes (413 above).'),
  MAX_PAGES: int(2000, 1).describe('Plan default: most pages accepted in one document (422 TOO_MANY_PAGES above).'),
  SYNC_MAX_BYTES: int(5 * 1024 * 1024, 0).describe('mode=auto: files up to this size are answered in the request.'),
  SYNC_MAX_PAGES: int(30, 0).describe('mode=auto: files up to this many pages are answered in the request.'),
  SYNC_TIMEOUT_MS: int(25_000, 1).describe('Time budget of a synchronous request.'),
  PAGES_PER_CHUNK: int(10, 1).describe('Pages per chunk of the page plan: used when CHUNK_TARGET_TOKENS is 0, and as the bound of CHUNK_MIN_COUNT (a request\'s pagesPerChunk overrides every chunk setting).'),
  CHUNK_TARGET_TOKENS: int(8000, 0).describe('Document tokens a chunk aims at (text at 4 characters a token, scanned pages at their image cost): pages are packed into one model call up to it. 0: chunks of PAGES_PER_CHUNK pages.'),
  CHUNK_MAX_PAGES: int(100, 1).describe('Most pages in one chunk of the token plan, however few tokens they hold.'),
  CHUNK_MIN_COUNT: int(8, 1).describe('Chunks a document is split into at least, to keep the fleet\'s analysis slots busy (about workers x ANALYSIS_CONCURRENCY), but never more than PAGES_PER_CHUNK pages a chunk would give.'),
  RATE_LIMIT_PER_MINUTE: int(120, 1).describe('Plan default: uploads and deletes per minute per tenant, shared by every API replica (429 above).'),
  READ_RATE_LIMIT_PER_MINUTE: int(1200, 1).describe('Plan default: status, result and list reads per minute per tenant, shared by every API replica (429 above).'),
  CONCURRENT_DOCUMENTS: int(100, 1).describe('Plan default: documents of a tenant admitted and not yet finished (429 CONCURRENCY_LIMIT above).'),
  PAGES_PER_MONTH: int(1_000_000, 1).describe('Plan default: pages a tenant may submit per calendar month, UTC (429 QUOTA_PAGES_EXCEEDED above).'),
  TOKENS_PER_MONTH: int(1_000_000_000, 1).describe('Plan default: model tokens (input + output) per tenant and calendar month (429 QUOTA_TOKENS_EXCEEDED once used up).'),
  TENANT_WEIGHT: z.coerce.number().positive().default(1).describe('Plan default: a tenant\'s share weight of the fleet and of the model quota.'),
  AUTH_CACHE_TTL_MS: int(5_000, 0).describe('How long an API replica reuses a key lookup: a revoked, expired or suspended key stops working within this bound.'),
  AUTH_NEGATIVE_CACHE_SIZE: int(10_000, 1).describe('Unknown key ids remembered per API replica (LRU, apart from valid keys).'),
  AUTH_FAILURES_PER_MINUTE: int(20, 1).describe('Requests with a missing or wrong key per client address and minute before 429 (counted before any key lookup).'),
  IDEMPOTENCY_TTL_HOURS: int(24, 1).describe('How long an Idempotency-Key of POST /v1/documents is remembered.'),
  DEV_API_KEY: z.string().min(16).optional().describe('Local stack only: API key of the seeded dev tenant.'),

  PDF_THREADS: int(Math.max(1, Math.min(4, os.availableParallelism())), 1).describe('Worker processes parsing PDFs (isolated: a crash or out-of-memory kills only the worker).'),
  TENANT_PDF_TASKS: int(1, 1).describe('PDF inspections, extractions and sync runs of one tenant at once in one API process, so one tenant\'s slow PDFs never hold every PDF worker; its other uploads wait in its own queue.'),
  TENANT_PDF_QUEUE: int(64, 0).describe('Uploads of one tenant that may wait for one of its PDF slots in one API process (429 beyond).'),
  PDF_TIMEOUT_MS: int(60_000, 1).describe('Longest a single PDF inspection or extraction may take.'),
  PDF_MAX_HEAP_MB: int(768, 64).describe('Heap limit (old generation) of each PDF worker process, in MiB (TOO_LARGE above).'),
  PDF_MAX_TEXT_BYTES: int(64 * 1024 * 1024, 1024).describe('Most extracted text accepted from one document.'),
  PDF_MAX_BUFFER_MB: int(512, 16).describe('Memory each PDF worker process may hold outside its heap, in MiB (TOO_LARGE above): the bound of PDFium\'s WebAssembly memory beyond the file itself, and of its JavaScript buffers.'),
  PDF_NICE: z.coerce.number().int().min(0).max(19).default(0).describe('Scheduling priority (nice, 0-19) of the PDF worker processes. Raise it where parsing competes with latency-sensitive processes on one host; measured here, 10 let a busy local stack starve a small document\'s parse for seconds, so the default leaves it.'),
  PDF_SLICE_PAGES: int(250, 1).describe('Most pages one PDF worker extracts per task; larger selections are split over the workers.'),
  PDF_OCR: z.enum(['on', 'off']).default('on').describe('on: a page without a text layer that paints an image (a scan) is rendered to PNG for a multimodal analyzer; off: it is left empty.'),
  PDF_OCR_DPI: z.coerce.number().int().min(36).max(600).default(150).describe('Resolution at which scanned pages are rendered, in dots per inch.'),
  PDF_OCR_MAX_PIXELS: int(4_000_000, 10_000).describe('Most pixels of one rendered page; a larger page is rendered at a lower resolution.'),
  PDF_OCR_MAX_MB: int(64, 1).describe('Most rendered page images (base64 MiB) one PDF worker returns per task; later scanned pages of the task carry no image.'),

  LEASE_FAILOVER_MS: int(10_000, 500).describe('Stream lease failover time: a worker silent this long loses its shards.'),
  LEASE_GRACEFUL_HANDOFF: z.enum(['on', 'off']).default('on').describe('on: a worker balancing the fleet asks for a lease and its holder drains, checkpoints and passes it (KCL 3.x hand-off); off: it takes the lease outright (KCL 2.x steal).'),
  LEASE_HANDOFF_DRAIN_MS: int(5_000, 0).describe('When a worker passes a shard to another for balance (graceful hand-off), how long the analyses under way may finish (records not begun are handed back at once); those still running then finish detached under their chunk claims, and it checkpoints so that the new owner starts from there at once.'),
  READY_BALANCE_TIMEOUT_MS: int(30_000, 0).describe('A worker reports ready (/readyz) once the fleet holds the shards evenly, or after this long from its start, whichever comes first.'),
  STREAM_IDLE_READ_MS: int(250, 10).describe('Pause between reads of an idle shard (Kinesis allows 5 reads/s/shard).'),
  STREAM_RECORDS_IN_FLIGHT: int(128, 1).describe('Stream records a worker handles at once. Analyses are capped separately (ANALYSIS_CONCURRENCY) and served fairly between tenants, so this is how far a worker reads ahead to see every tenant\'s work.'),
  FAIR_SHARE_WINDOW: int(32, 1).describe('Chunk records of one document on the stream ahead of their completions: the splitter publishes the first ones and each finished chunk publishes the next, so no document\'s backlog queues in front of another\'s chunks. A document\'s window is this times its tenant\'s weight (at most 8 times); a larger window lets one document use a larger fleet.'),
  CHUNK_CLAIM_TIMEOUT_MS: int(30_000, 100).describe('A chunk claim not heartbeated this long is taken over by a redelivery.'),
  CHUNK_MAX_ATTEMPTS: int(3, 1).describe('Deliveries of a chunk before it is dead-lettered and held for a replay (RECONCILE_STALE_MS), then failed.'),
  ASSEMBLY_CLAIM_TIMEOUT_MS: int(60_000, 1_000).describe('An assembly claim not heartbeated this long (wall clock, so well above clock skew) is taken over; a failed assembler releases its claim at once.'),
  RECONCILE_INTERVAL_MS: int(30_000, 100).describe('How often the reconciler sweeps for documents whose progress stopped (one worker of the fleet holds the sweep\'s lease at a time).'),
  RECONCILE_STALE_MS: int(300_000, 500).describe('A non-terminal document whose job row has not changed this long is driven on by the reconciler (re-published, re-assembled, or its dead-lettered work finished with its error); also how long dead-lettered work waits for an operator\'s replay. A sync job counts as stale only after SYNC_TIMEOUT_MS plus this.'),
  DOCUMENT_DEADLINE_MS: int(6 * 3_600_000, 1_000).describe('A document not terminal this long after its upload is failed with DEADLINE_EXCEEDED by the reconciler.'),
  DELETED_RETENTION_MS: int(300_000, 0).describe('How long a cancelled document\'s tombstone (its job row, answering `cancelled`) stays after DELETE; then the reconciler removes it and anything a racing writer left behind.'),
  EVENTS_POLL_MS: int(1_000, 50).describe('How often an open event stream (GET /v1/documents/{id}/events) re-reads its job row; the chunk rows are read only when a count moved.'),
  EVENTS_KEEPALIVE_MS: int(15_000, 100).describe('An event stream sends a `: keep-alive` comment after this long without an event (proxies close silent connections).'),
  EVENTS_IDLE_MS: int(300_000, 1_000).describe('An event stream with no event for this long is closed; the client reconnects with Last-Event-ID.'),
  WEBHOOK_ALLOWED_CIDRS: z
    .string()
    .default('')
    .describe('Comma-separated CIDRs a webhook may target although they are loopback, private or link-local (e.g. 127.0.0.1/32 for the local stack). Empty in production: only public addresses, over https.'),
  WEBHOOK_TIMEOUT_MS: int(5_000, 100).describe('Time a webhook receiver has to answer (connect, send, response headers and body).'),
  WEBHOOK_MAX_RESPONSE_BYTES: int(16_384, 0).describe('Most bytes of a receiver\'s response body read (the rest is dropped; only the status counts).'),
  WEBHOOK_RETRY_BASE_MS: int(30_000, 10).describe('Delay before the second delivery attempt; doubles per attempt up to WEBHOOK_RETRY_MAX_MS (with 20% jitter).'),
  WEBHOOK_RETRY_MAX_MS: int(3_600_000, 10).describe('Longest delay between two delivery attempts.'),
  WEBHOOK_RETRY_WINDOW_MS: int(24 * 3_600_000, 1_000).describe('A delivery not acknowledged (2xx) this long after its event is given up (status failed); POST .../redeliver starts it again.'),
  WEBHOOK_POLL_MS: int(1_000, 50).describe('How often each worker looks for deliveries that are due.'),
  WEBHOOK_CONCURRENCY: int(8, 1).describe('Deliveries each worker sends at once.'),
  API_DRAIN_MS: int(10_000, 0).describe('On SIGTERM, how long the API lets sync requests finish before handing the rest to the async path (each answers 202 with its document id).'),
  FAULT_AWS_ERROR_RATE: z.coerce.number().min(0).max(1).default(0).describe('Testing only: the share of S3, DynamoDB and Kinesis calls that fail with a throttling error before they are sent (chaos soak). 0 in production.'),
  WORKER_GRACE_MS: int(30_000, 0).describe('On SIGTERM, how long in-flight records may finish before they are handed back.'),
  MAX_FAILED_CHUNK_RATIO: z.coerce.number().min(0).max(1).default(0.5).describe('Above this share of failed chunks a document is failed, not completed_with_errors.'),
  REDUCE_FAN_IN: int(32, 2).describe('Most chunk summaries merged in one model call of the document-level reduce.'),
  REDUCE_MAX_INPUT_CHARS: int(48_000, 1_000).describe('Most characters of summaries and key points sent in one reduce call (about a quarter as many tokens).'),
  ANALYZER: z.enum(['local', 'gemini']).optional().describe('Analyzer; default gemini when GEMINI_API_KEY is set, else local.'),
  ANALYSIS_CONCURRENCY: int(4, 1).describe('Chunk analyses in flight per process (p-limit cap).'),
  ANALYSIS_THREADS: int(Math.max(1, Math.min(4, os.availableParallelism())), 1).describe('Worker threads of the local analyzer.'),
  ANALYSIS_TIMEOUT_MS: int(60_000, 1).describe('Longest a single chunk analysis may take.'),
  ANALYSIS_MAX_HEAP_MB: int(512, 64).describe('Heap limit (old generation) of each local-analyzer thread, in MiB.'),
  GEMINI_API_KEY: z.string().min(1).optional().describe('Gemini API key; enables the Gemini analyzer.'),
  GEMINI_API_KEY_SECRET_ARN: z
    .string()
    .regex(/^arn:aws[a-z-]*:secretsmanager:/)
    .optional()
    .describe('Secrets Manager secret holding the Gemini API key (append :KEY:: for a JSON key), read at start when GEMINI_API_KEY is unset (the aggregator Lambda).'),
  GEMINI_MODEL: z.string().min(1).default('gemini-2.5-flash').describe('Gemini model name.'),
  GEMINI_BASE_URL: optionalUrl.describe('Gemini API base URL override (tests use a fake server).'),
  GEMINI_TEMPERATURE: z.coerce.number().min(0).max(2).default(0.2).describe('Sampling temperature of Gemini calls (low: grounded, repeatable output).'),
  GEMINI_TIMEOUT_MS: int(60_000, 1).describe('Longest a single Gemini HTTP call may take before it is aborted and retried (TIMEOUT).'),
  GEMINI_MAX_RETRIES: int(4, 0).describe('Retries of a Gemini call after 429, 5xx or a timeout (full-jitter backoff, RetryInfo as a floor).'),
  GEMINI_RETRY_BASE_MS: int(500, 0).describe('Base delay of the Gemini retry backoff, in ms.'),
  GEMINI_RETRY_CAP_MS: int(30_000, 1).describe('Longest backoff delay between Gemini retries, in ms (a server retryDelay may exceed it).'),
  GEMINI_MAX_INVALID_OUTPUT_RETRIES: int(2, 0).describe('Retries of a Gemini call whose output is not valid JSON for the schema (then INVALID_MODEL_OUTPUT).'),
  GEMINI_RPM: int(1000, 0).describe('Gemini requests per minute of the whole fleet (the project quota), shared through RATE_LIMIT_TABLE; 0 = no fleet limit.'),
  GEMINI_TPM: int(1_000_000, 1).describe('Gemini input tokens per minute of the whole fleet (the project quota), shared through RATE_LIMIT_TABLE.'),
  GEMINI_MAX_CHUNK_CHARS: int(120_000, 1_000).describe('Most characters of page text sent in one chunk analysis call (about a quarter as many tokens), which bounds one call\'s share of GEMINI_TPM; pages beyond it are failed pages with code TEXT_LIMIT.'),
  CIRCUIT_WINDOW_MS: int(60_000, 1).describe('Rolling window over which the model circuit breaker measures the error rate, in ms.'),
  CIRCUIT_MIN_CALLS: int(20, 1).describe('Calls in the window before the circuit breaker may open.'),
  CIRCUIT_FAILURE_RATE: z.coerce.number().gt(0).max(1).default(0.5).describe('Error rate (0-1] in the window at or above which the circuit opens.'),
  CIRCUIT_OPEN_MS: int(30_000, 1).describe('How long the circuit stays open before probing the model again, in ms.'),
  CIRCUIT_PROBES: int(3, 1).describe('Successful probe calls in half-open state needed to close the circuit again.'),

  WORKER_ID: z.string().min(1).max(128).optional().describe('Id of a worker in the fleet (lease owner); default host-pid-random.'),
  DOCORCH_DATA_DIR: z.string().min(1).optional().describe('Local stack only: where emulator data and the dev API key live; default .data/ in the checkout.'),
  METRICS_NAMESPACE: z.string().min(1).default('docorch').describe('CloudWatch namespace of the metrics the aggregator Lambda writes as Embedded Metric Format.'),
  OTEL_TRACES_EXPORTER: z
    .string()
    .default('none')
    .transform((s) => s.split(',').map((x) => x.trim()).filter(Boolean))
    .pipe(z.array(z.enum(['otlp', 'console', 'none'])))
    .describe('Trace exporters, comma-separated: otlp, console or none (spans are still made, for the trace id in logs).'),
  OTEL_EXPORTER_OTLP_ENDPOINT: optionalUrl.describe('OTLP/HTTP collector base URL (read by the OpenTelemetry exporter; default http://localhost:4318).'),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: optionalUrl.describe('OTLP/HTTP traces URL, overriding OTEL_EXPORTER_OTLP_ENDPOINT (read by the exporter).'),
  OTEL_EXPORTER_OTLP_PROTOCOL: z.enum(['http/protobuf', 'http/json']).optional().describe('OTLP encoding (read by the exporter; default http/protobuf).'),
  OTEL_EXPORTER_OTLP_HEADERS: z.string().min(1).optional().describe('Headers sent to the collector, k=v comma-separated (read by the exporter; never logged).'),

});

/** The validated configuration. */
export type Config = z.infer<typeof configSchema> & {
  /** The analyzer actually selected (ANALYZER, else gemini if GEMINI_API_KEY or its secret is set, else local). */
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
  const analyzer = parsed.data.ANALYZER ?? (parsed.data.GEMINI_API_KEY || parsed.data.GEMINI_API_KEY_SECRET_ARN ? 'gemini' : 'local');
  return { ...parsed.data, analyzer };
}

/** One line per variable with its description, for `--help` style output and docs. */
export function describeConfig(): string[] {
  return Object.entries(configSchema.shape).map(([name, schema]) => `${name}: ${schema.description ?? ''}`);
}

/** Defaults that depend on the machine, as the reference states them. */
const MACHINE_DEFAULTS: Partial<Record<keyof typeof configSchema.shape, string>> = {
  UPLOAD_TMP_DIR: 'the OS temp dir',
  PDF_THREADS: 'cores, 1 to 4',
  ANALYSIS_THREADS: 'cores, 1 to 4',
};

/**
 * The environment reference: a markdown table of every variable the config reads, its default and
 * its description, in schema order. docs/DEVELOPMENT.md embeds it (`pnpm docs:env` rewrites it, and
 * a test fails when the page and the schema differ).
 */
export function configReference(): string {
  const rows = Object.entries(configSchema.shape).map(([name, schema]) => {
    const machine = MACHINE_DEFAULTS[name as keyof typeof MACHINE_DEFAULTS];
    const parsed = (schema as z.ZodType).safeParse(undefined);
    const value = machine ?? (parsed.success && parsed.data !== undefined ? `\`${Array.isArray(parsed.data) ? parsed.data.join(',') : String(parsed.data)}\`` : 'unset');
    return `| \`${name}\` | ${value} | ${(schema.description ?? '').replaceAll('|', '\\|')} |`;
  });
  return ['| variable | default | what it does |', '| --- | --- | --- |', ...rows].join('\n');
}
