/**
 * Runs the fake Gemini server as a process, for the local stack and benchmarks:
 *
 *   tsx packages/testkit/src/fake-gemini/main.ts          # prints GEMINI_BASE_URL=http://127.0.0.1:PORT
 *   ANALYZER=gemini GEMINI_BASE_URL=http://127.0.0.1:PORT pnpm start
 *
 * Environment (all optional):
 * - FAKE_GEMINI_PORT: port (default: a free port)
 * - FAKE_GEMINI_HOST: interface (default 127.0.0.1; 0.0.0.0 in a container)
 * - FAKE_GEMINI_LATENCY_MS: `300` or a range `200-800`
 * - FAKE_GEMINI_FAILURES: e.g. `rateLimit=0.1,unavailable=0.1,hang=0.05,serverError=0,malformedJson=0,safetyBlock=0`
 * - FAKE_GEMINI_RETRY_DELAY_MS: RetryInfo delay of 429 answers (default 1000)
 * - FAKE_GEMINI_QUOTA_RPM: server-side requests-per-minute quota (default none)
 * - FAKE_GEMINI_SEED: seed of the failure draws (default 1)
 * Knobs can be changed while it runs: `POST /_fake/config` with a JSON body of knobs; the log is at
 * `GET /_fake/log`, sums at `GET /_fake/totals`.
 */
import { startFakeGemini, type FakeGeminiFailureMix, type FakeGeminiOptions } from './fake-gemini.js';

const FAILURE_KINDS = ['rateLimit', 'serverError', 'unavailable', 'hang', 'malformedJson', 'safetyBlock'] as const;

function numberEnv(name: string): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name}=${JSON.stringify(raw)}: expected a number >= 0`);
  return n;
}

function latencyEnv(): FakeGeminiOptions['latencyMs'] {
  const raw = process.env.FAKE_GEMINI_LATENCY_MS;
  if (!raw) return undefined;
  const range = /^(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)$/.exec(raw);
  if (range) return [Number(range[1]), Number(range[2])];
  return numberEnv('FAKE_GEMINI_LATENCY_MS');
}

function failuresEnv(): FakeGeminiFailureMix | undefined {
  const raw = process.env.FAKE_GEMINI_FAILURES;
  if (!raw) return undefined;
  const mix: FakeGeminiFailureMix = {};
  for (const item of raw.split(',').map((s) => s.trim()).filter(Boolean)) {
    const [name, value] = item.split('=');
    if (!FAILURE_KINDS.includes(name as (typeof FAILURE_KINDS)[number]) || !Number.isFinite(Number(value))) {
      throw new Error(`FAKE_GEMINI_FAILURES: bad item ${JSON.stringify(item)}; kinds: ${FAILURE_KINDS.join(', ')}`);
    }
    mix[name as (typeof FAILURE_KINDS)[number]] = Number(value);
  }
  return mix;
}

const quotaRpm = numberEnv('FAKE_GEMINI_QUOTA_RPM');
const latencyMs = latencyEnv();
const failures = failuresEnv();
const retryDelayMs = numberEnv('FAKE_GEMINI_RETRY_DELAY_MS');
const fake = await startFakeGemini({
  port: numberEnv('FAKE_GEMINI_PORT') ?? 0,
  host: process.env.FAKE_GEMINI_HOST ?? '127.0.0.1',
  seed: numberEnv('FAKE_GEMINI_SEED') ?? 1,
  ...(latencyMs === undefined ? {} : { latencyMs }),
  ...(failures ? { failures } : {}),
  ...(retryDelayMs === undefined ? {} : { retryDelayMs }),
  ...(quotaRpm ? { quota: { requests: quotaRpm, windowMs: 60_000 } } : {}),
});
process.stdout.write(`GEMINI_BASE_URL=${fake.url}\n`);

const stop = () => {
  fake.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
