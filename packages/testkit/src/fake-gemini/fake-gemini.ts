/**
 * A fake Gemini API server on 127.0.0.1 for tests, the local stack and benchmarks (the real API
 * is not reachable from CI). It speaks the real wire format of
 * `POST /{v1,v1beta}/models/{model}:generateContent`: answers carry `candidates[].content.parts[].text`,
 * `finishReason`, `safetyRatings`, `usageMetadata`, `modelVersion` and `responseId`, and errors
 * are google.rpc.Status bodies (`{ error: { code, message, status, details } }`), a 429 with a
 * RetryInfo `retryDelay`. The answer is a plausible analysis of the request's text
 * (./analysis.ts), shaped to the request's response schema (./conform.ts).
 *
 * Knobs (at start, by {@link FakeGemini.configure} or `POST /_fake/config`): latency, a failure
 * mix drawn per request from a seeded PRNG, `failAll`, a server-side quota, scripted outcomes
 * ({@link FakeGemini.enqueue}, or per matching request {@link FakeGemini.enqueueFor}). Every
 * request is logged with its arrival time, model, media parts, outcome and reported tokens, so
 * tests can measure the rate the server saw.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { analyseChunk, analyseReduce, parseContent } from './analysis.js';
import { conform, type SchemaNode } from './conform.js';
import { seededRandom } from '../random.js';

/** Probabilities (0..1, summing to at most 1) of each failure, drawn per request. */
export interface FakeGeminiFailureMix {
  /** 429 RESOURCE_EXHAUSTED with RetryInfo `retryDelay` = {@link FakeGeminiKnobs.retryDelayMs}. */
  rateLimit?: number;
  /** 500 INTERNAL. */
  serverError?: number;
  /** 503 UNAVAILABLE ("The model is overloaded"). */
  unavailable?: number;
  /** No answer at all until the client gives up. */
  hang?: number;
  /** 200 whose text is truncated, unparseable JSON. */
  malformedJson?: number;
  /** 200 blocked for safety (prompt `blockReason` or candidate `finishReason: SAFETY`, see `safetyBlockMode`). */
  safetyBlock?: number;
}

/** What the fake does with one request. */
export type FakeOutcome =
  | 'ok'
  | 'rateLimit'
  | 'serverError'
  | 'unavailable'
  | 'hang'
  | 'malformedJson'
  /** 200 with valid JSON that does not match the schema. */
  | 'invalidSchema'
  /** 200 with `promptFeedback.blockReason: SAFETY` and no candidates. */
  | 'safetyPrompt'
  /** 200 with a candidate whose `finishReason` is SAFETY. */
  | 'safetyCandidate';

/** Outcomes in the log: the above, plus answers the fake gives on its own. */
export type FakeLoggedOutcome =
  | FakeOutcome
  /** 429 from the server-side quota. */
  | 'quota'
  /** 503 from `failAll`. */
  | 'failAll'
  /** 400 API_KEY_INVALID. */
  | 'badKey'
  /** 404 for an unknown path or model. */
  | 'notFound'
  /** 400 for a body that is not a generateContent request. */
  | 'badRequest';

/** The settable behaviour of the fake. */
export interface FakeGeminiKnobs {
  /** Delay before answering, fixed or a uniform `[min, max]` range, in ms. @defaultValue 0 */
  latencyMs?: number | [number, number];
  /** Failure probabilities. @defaultValue none */
  failures?: FakeGeminiFailureMix;
  /** `retryDelay` of 429 answers, in ms. @defaultValue 1000 */
  retryDelayMs?: number;
  /** Answer every request with 503 (circuit-breaker tests). @defaultValue false */
  failAll?: boolean;
  /**
   * Server-side quota: more than `requests` requests in any `windowMs` get 429 with a retryDelay
   * until the window frees a slot (refused requests are not counted). @defaultValue none
   */
  quota?: { requests: number; windowMs?: number } | null;
  /** The API key requests must carry (else 400 API_KEY_INVALID). @defaultValue any key */
  apiKey?: string | null;
  /** Models that exist (others 404). @defaultValue any model */
  models?: string[] | null;
  /** Which kind of safety block `failures.safetyBlock` produces. @defaultValue 'mixed' (alternating by draw) */
  safetyBlockMode?: 'prompt' | 'candidate' | 'mixed';
}

/** Options of {@link startFakeGemini}. */
export interface FakeGeminiOptions extends FakeGeminiKnobs {
  /** Port. @defaultValue 0 (a free port) */
  port?: number;
  /** Interface to bind; only a container entry point passes another. @defaultValue '127.0.0.1' */
  host?: string;
  /** Seed of the failure draws and latencies. @defaultValue 1 */
  seed?: number;
}

/** One logged request. */
export interface FakeGeminiRequest {
  /** 1, 2, ... in arrival order. */
  id: number;
  /** Arrival time, epoch ms. */
  at: number;
  /** When the answer was written, epoch ms (absent for hangs and aborted requests). */
  respondedAt?: number;
  method: string;
  path: string;
  /** `v1` or `v1beta` ('' for unknown paths). */
  apiVersion: string;
  model: string;
  outcome: FakeLoggedOutcome;
  /** HTTP status sent (absent when nothing was sent). */
  status?: number;
  /** Inline media parts of the request (scanned pages). */
  inlineData: Array<{ mimeType: string; bytes: number }>;
  /** Pages found in the request's page markup. */
  pages: number[];
  /** The first 120 characters of the first page's text (tells documents apart in a test). */
  sample: string;
  /** Characters of text in the request (system instruction and response schema included). */
  textChars: number;
  /** Characters of document text: the pages' text inside the page markup (chunk requests). */
  documentChars: number;
  /** Tokens reported in `usageMetadata` (0 when the answer had none). */
  promptTokens: number;
  candidatesTokens: number;
  /** The client closed the connection before an answer was written. */
  clientAborted: boolean;
}

/** Sums over the log. */
export interface FakeGeminiTotals {
  requests: number;
  byOutcome: Partial<Record<FakeLoggedOutcome, number>>;
  /** Sums of `usageMetadata` over the answers actually delivered. */
  promptTokens: number;
  candidatesTokens: number;
  /** Delivered answers with usage (HTTP 200). */
  billedCalls: number;
}

/** A running fake server. */
export interface FakeGemini {
  /** `http://127.0.0.1:<port>`: pass as GEMINI_BASE_URL. */
  readonly url: string;
  readonly port: number;
  /** The requests so far, in arrival order (a live array; copy it to keep a snapshot). */
  readonly log: readonly FakeGeminiRequest[];
  /** Changes knobs at runtime (given fields only; `null` clears an optional one). */
  configure(knobs: FakeGeminiKnobs): void;
  /** The current knobs. */
  knobs(): FakeGeminiKnobs;
  /** Scripts the outcomes of the next requests (before the failure mix is drawn). */
  enqueue(...outcomes: FakeOutcome[]): void;
  /**
   * Scripts the outcomes of the next requests that `match` (e.g. those carrying a given page, to
   * fail one chunk whatever the order of arrival); consulted before {@link FakeGemini.enqueue}'s
   * script. `match` sees the request's log entry (pages, media parts, model).
   */
  enqueueFor(match: (request: FakeGeminiRequest) => boolean, ...outcomes: FakeOutcome[]): void;
  /** Most requests (optionally only those matching `filter`) that arrived in any window of `windowMs`. */
  ratePerWindow(windowMs: number, filter?: (r: FakeGeminiRequest) => boolean): number;
  /** Sums over the log. */
  totals(): FakeGeminiTotals;
  /** Empties the log. */
  clearLog(): void;
  /** Stops the server, dropping open (hanging) connections. */
  close(): Promise<void>;
}

const PATH = /^\/(v1|v1beta|v1alpha)\/models\/([^/:]+):generateContent$/;
const JSON_TYPE = 'application/json; charset=UTF-8';
const MAX_BODY = 32 * 1024 * 1024;
/** Tokens Gemini reports per image (one 768x768 tile). */
const IMAGE_TOKENS = 258;

const SAFE_RATINGS = [
  'HARM_CATEGORY_HATE_SPEECH',
  'HARM_CATEGORY_DANGEROUS_CONTENT',
  'HARM_CATEGORY_HARASSMENT',
  'HARM_CATEGORY_SEXUALLY_EXPLICIT',
].map((category) => ({ category, probability: 'NEGLIGIBLE' }));

/** Most timestamps in any half-open window `[t, t + windowMs)`. */
export function maxInWindow(times: readonly number[], windowMs: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let best = 0;
  for (let lo = 0, hi = 0; hi < sorted.length; hi++) {
    while ((sorted[hi] as number) - (sorted[lo] as number) >= windowMs) lo++;
    best = Math.max(best, hi - lo + 1);
  }
  return best;
}

/** Starts the fake on 127.0.0.1. */
export async function startFakeGemini(options: FakeGeminiOptions = {}): Promise<FakeGemini> {
  const { port = 0, seed = 1, host = '127.0.0.1', ...initial } = options;
  const random = seededRandom(seed);
  let knobs: FakeGeminiKnobs = { latencyMs: 0, retryDelayMs: 1000, safetyBlockMode: 'mixed', ...initial };
  const script: FakeOutcome[] = [];
  const matchScripts: Array<{ match: (request: FakeGeminiRequest) => boolean; outcomes: FakeOutcome[] }> = [];
  const log: FakeGeminiRequest[] = [];
  const timers = new Set<NodeJS.Timeout>();
  /** Arrival times of requests the quota accepted. */
  let accepted: number[] = [];
  let nextId = 1;

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) send(res, 500, rpcError(500, `fake-gemini: ${String(err)}`, 'INTERNAL'));
    });
  });

  function send(res: http.ServerResponse, status: number, body: unknown, raw?: string): void {
    const text = raw ?? JSON.stringify(body);
    res.writeHead(status, { 'content-type': JSON_TYPE, 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  function latency(): number {
    const l = knobs.latencyMs ?? 0;
    if (Array.isArray(l)) return l[0] + random() * Math.max(0, l[1] - l[0]);
    return l;
  }

  function draw(entry: FakeGeminiRequest): FakeOutcome {
    const matched = matchScripts.find((m) => m.outcomes.length > 0 && m.match(entry))?.outcomes.shift();
    if (matched) return matched;
    const scripted = script.shift();
    if (scripted) return scripted;
    const f = knobs.failures ?? {};
    let r = random();
    const table: Array<[FakeOutcome, number | undefined]> = [
      ['rateLimit', f.rateLimit],
      ['serverError', f.serverError],
      ['unavailable', f.unavailable],
      ['hang', f.hang],
      ['malformedJson', f.malformedJson],
    ];
    for (const [outcome, p] of table) {
      if (r < (p ?? 0)) return outcome;
      r -= p ?? 0;
    }
    if (r < (f.safetyBlock ?? 0)) {
      const mode = knobs.safetyBlockMode ?? 'mixed';
      return mode === 'prompt' ? 'safetyPrompt' : mode === 'candidate' ? 'safetyCandidate' : r < (f.safetyBlock ?? 0) / 2 ? 'safetyPrompt' : 'safetyCandidate';
    }
    return 'ok';
  }

  /** Quota check at arrival; returns the ms until a slot frees when over quota. */
  function overQuota(at: number): number | undefined {
    const quota = knobs.quota;
    if (!quota) return undefined;
    const windowMs = quota.windowMs ?? 60_000;
    accepted = accepted.filter((t) => t > at - windowMs);
    if (accepted.length < quota.requests) {
      accepted.push(at);
      return undefined;
    }
    return Math.max(1, Math.min(...accepted) + windowMs - at);
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const at = Date.now();
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (url.pathname.startsWith('/_fake/')) return admin(req, res, url);

    const match = req.method === 'POST' ? PATH.exec(url.pathname) : null;
    const entry: FakeGeminiRequest = {
      id: nextId++,
      at,
      method: req.method ?? '',
      path: url.pathname,
      apiVersion: match?.[1] ?? '',
      model: decodeURIComponent(match?.[2] ?? ''),
      outcome: 'notFound',
      inlineData: [],
      pages: [],
      sample: '',
      textChars: 0,
      documentChars: 0,
      promptTokens: 0,
      candidatesTokens: 0,
      clientAborted: false,
    };
    log.push(entry);
    let answered = false;
    res.on('close', () => {
      if (!answered) entry.clientAborted = true;
    });
    const reply = (status: number, body: unknown, raw?: string) => {
      if (res.destroyed) return;
      answered = true;
      entry.status = status;
      entry.respondedAt = Date.now();
      send(res, status, body, raw);
    };

    const body = await readBody(req).catch(() => undefined);
    if (!match) return reply(404, rpcError(404, `Method not found: ${url.pathname}`, 'NOT_FOUND'));
    const key = req.headers['x-goog-api-key'] ?? url.searchParams.get('key');
    if (knobs.apiKey && key !== knobs.apiKey) {
      entry.outcome = 'badKey';
      return reply(400, apiKeyInvalid());
    }
    if (knobs.models && !knobs.models.includes(entry.model)) {
      return reply(404, rpcError(404, `models/${entry.model} is not found for API version ${entry.apiVersion}, or is not supported for generateContent.`, 'NOT_FOUND'));
    }
    const request = parseRequest(body);
    if (!request) {
      entry.outcome = 'badRequest';
      return reply(400, rpcError(400, 'Invalid JSON payload received: not a generateContent request.', 'INVALID_ARGUMENT'));
    }
    entry.inlineData = request.inlineData;
    entry.textChars = request.textChars;
    const content = parseContent(request.text);
    entry.pages = content.pages.map((p) => p.page);
    entry.documentChars = content.kind === 'chunk' ? content.pages.reduce((n, p) => n + p.text.length, 0) : 0;
    entry.sample = (content.pages[0]?.text ?? '').slice(0, 120);
    const promptTokens = Math.ceil(request.textChars / 4) + IMAGE_TOKENS * request.inlineData.length;

    const wait = latency();
    if (wait > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          timers.delete(t);
          resolve();
        }, wait);
        timers.add(t);
      });
    }

    if (knobs.failAll) {
      entry.outcome = 'failAll';
      return reply(503, rpcError(503, 'The model is overloaded. Please try again later.', 'UNAVAILABLE'));
    }
    const quotaWait = overQuota(at);
    if (quotaWait !== undefined) {
      entry.outcome = 'quota';
      return reply(429, resourceExhausted(quotaWait));
    }
    const outcome = draw(entry);
    entry.outcome = outcome;
    const meta = { modelVersion: entry.model, responseId: randomBytes(16).toString('base64url') };
    switch (outcome) {
      case 'rateLimit':
        return reply(429, resourceExhausted(knobs.retryDelayMs ?? 1000));
      case 'serverError':
        return reply(500, rpcError(500, 'An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting', 'INTERNAL'));
      case 'unavailable':
        return reply(503, rpcError(503, 'The model is overloaded. Please try again later.', 'UNAVAILABLE'));
      case 'hang':
        return; // the client's timeout ends it
      case 'safetyPrompt': {
        entry.promptTokens = promptTokens;
        return reply(200, {
          promptFeedback: { blockReason: 'SAFETY', safetyRatings: blockedRatings() },
          usageMetadata: { promptTokenCount: promptTokens, totalTokenCount: promptTokens },
          ...meta,
        });
      }
      case 'safetyCandidate': {
        entry.promptTokens = promptTokens;
        return reply(200, {
          candidates: [{ finishReason: 'SAFETY', index: 0, safetyRatings: blockedRatings() }],
          usageMetadata: { promptTokenCount: promptTokens, totalTokenCount: promptTokens },
          ...meta,
        });
      }
      default: {
        const full = content.kind === 'reduce' ? analyseReduce(content.parts, content.points) : analyseChunk(content.pages);
        let text = JSON.stringify(request.schema ? conform(full, request.schema) : full);
        if (outcome === 'malformedJson') text = text.slice(0, Math.max(1, Math.floor(text.length * 0.6)));
        if (outcome === 'invalidSchema') text = JSON.stringify({ unexpected: true });
        const candidatesTokens = Math.max(1, Math.ceil(text.length / 4));
        entry.promptTokens = promptTokens;
        entry.candidatesTokens = candidatesTokens;
        return reply(200, {
          candidates: [
            {
              content: { parts: [{ text }], role: 'model' },
              finishReason: 'STOP',
              index: 0,
              safetyRatings: SAFE_RATINGS,
            },
          ],
          usageMetadata: {
            promptTokenCount: promptTokens,
            candidatesTokenCount: candidatesTokens,
            totalTokenCount: promptTokens + candidatesTokens,
            promptTokensDetails: [
              { modality: 'TEXT', tokenCount: promptTokens - IMAGE_TOKENS * request.inlineData.length },
              ...(request.inlineData.length > 0 ? [{ modality: 'IMAGE', tokenCount: IMAGE_TOKENS * request.inlineData.length }] : []),
            ],
          },
          ...meta,
        });
      }
    }
  }

  /** `GET /_fake/log`, `GET /_fake/totals`, `POST /_fake/config` (knobs), `POST /_fake/enqueue` (outcomes), `POST /_fake/clear`. */
  async function admin(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> {
    const body = await readBody(req).catch(() => undefined);
    const parsed = body && body.length > 0 ? (JSON.parse(body.toString('utf8')) as unknown) : undefined;
    switch (`${req.method} ${url.pathname}`) {
      case 'GET /_fake/log':
        return send(res, 200, log);
      case 'GET /_fake/totals':
        return send(res, 200, totals());
      case 'POST /_fake/config':
        configure((parsed ?? {}) as FakeGeminiKnobs);
        return send(res, 200, knobs);
      case 'POST /_fake/enqueue':
        script.push(...((Array.isArray(parsed) ? parsed : []) as FakeOutcome[]));
        return send(res, 200, { queued: script.length });
      case 'POST /_fake/clear':
        log.length = 0;
        return send(res, 200, {});
      default:
        return send(res, 404, rpcError(404, 'unknown fake admin route', 'NOT_FOUND'));
    }
  }

  function configure(update: FakeGeminiKnobs): void {
    const next: Record<string, unknown> = { ...knobs };
    for (const [k, v] of Object.entries(update)) {
      if (v === null) delete next[k];
      else if (v !== undefined) next[k] = v;
    }
    knobs = next as FakeGeminiKnobs;
    if (!knobs.quota) accepted = [];
  }

  function totals(): FakeGeminiTotals {
    const out: FakeGeminiTotals = { requests: log.length, byOutcome: {}, promptTokens: 0, candidatesTokens: 0, billedCalls: 0 };
    for (const r of log) {
      out.byOutcome[r.outcome] = (out.byOutcome[r.outcome] ?? 0) + 1;
      if (r.status === 200 && !r.clientAborted) {
        out.billedCalls++;
        out.promptTokens += r.promptTokens;
        out.candidatesTokens += r.candidatesTokens;
      }
    }
    return out;
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${address.port}`,
    port: address.port,
    log,
    configure,
    knobs: () => ({ ...knobs }),
    enqueue: (...outcomes) => void script.push(...outcomes),
    enqueueFor: (match, ...outcomes) => void matchScripts.push({ match, outcomes }),
    ratePerWindow: (windowMs, filter) => maxInWindow((filter ? log.filter(filter) : log).map((r) => r.at), windowMs),
    totals,
    clearLog: () => void (log.length = 0),
    async close() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

/** What the fake needs from a generateContent body. */
interface ParsedRequest {
  /** All text of the user contents, parts joined by newlines. */
  text: string;
  textChars: number;
  inlineData: Array<{ mimeType: string; bytes: number }>;
  schema: SchemaNode | undefined;
}

type Part = { text?: unknown; inlineData?: { mimeType?: unknown; data?: unknown } };

function parseRequest(body: Buffer | undefined): ParsedRequest | undefined {
  if (!body) return undefined;
  let json: {
    contents?: Array<{ parts?: Part[] }>;
    systemInstruction?: { parts?: Part[] };
    generationConfig?: { responseJsonSchema?: SchemaNode; responseSchema?: SchemaNode };
  };
  try {
    json = JSON.parse(body.toString('utf8')) as typeof json;
  } catch {
    return undefined;
  }
  if (!Array.isArray(json.contents) || json.contents.length === 0) return undefined;
  const texts: string[] = [];
  const inlineData: ParsedRequest['inlineData'] = [];
  for (const content of json.contents) {
    for (const part of content.parts ?? []) {
      if (typeof part.text === 'string') texts.push(part.text);
      if (part.inlineData && typeof part.inlineData.data === 'string') {
        inlineData.push({
          mimeType: String(part.inlineData.mimeType ?? ''),
          bytes: Buffer.byteLength(part.inlineData.data, 'base64'),
        });
      }
    }
  }
  const system = (json.systemInstruction?.parts ?? []).map((p) => (typeof p.text === 'string' ? p.text : '')).join('\n');
  const text = texts.join('\n');
  const schema = json.generationConfig?.responseJsonSchema ?? json.generationConfig?.responseSchema;
  return {
    text,
    // Gemini counts the response schema as input too.
    textChars: texts.reduce((n, t) => n + t.length, 0) + system.length + (schema ? JSON.stringify(schema).length : 0),
    inlineData,
    schema,
  };
}

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        reject(new Error('body too large'));
        req.destroy();
      } else chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function rpcError(code: number, message: string, status: string, details?: unknown[]): unknown {
  return { error: { code, message, status, ...(details ? { details } : {}) } };
}

/** A protobuf Duration in JSON form, e.g. "2s" or "0.250s". */
function duration(ms: number): string {
  const s = Math.max(0, ms) / 1000;
  return Number.isInteger(s) ? `${s}s` : `${s.toFixed(3)}s`;
}

function resourceExhausted(retryDelayMs: number): unknown {
  return rpcError(
    429,
    'You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.',
    'RESOURCE_EXHAUSTED',
    [
      {
        '@type': 'type.googleapis.com/google.rpc.QuotaFailure',
        violations: [
          {
            quotaMetric: 'generativelanguage.googleapis.com/generate_content_requests',
            quotaId: 'GenerateRequestsPerMinutePerProjectPerModel',
          },
        ],
      },
      { '@type': 'type.googleapis.com/google.rpc.Help', links: [{ description: 'Learn more about Gemini API quotas', url: 'https://ai.google.dev/gemini-api/docs/rate-limits' }] },
      { '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: duration(retryDelayMs) },
    ],
  );
}

function apiKeyInvalid(): unknown {
  return rpcError(400, 'API key not valid. Please pass a valid API key.', 'INVALID_ARGUMENT', [
    {
      '@type': 'type.googleapis.com/google.rpc.ErrorInfo',
      reason: 'API_KEY_INVALID',
      domain: 'googleapis.com',
      metadata: { service: 'generativelanguage.googleapis.com' },
    },
  ]);
}

function blockedRatings(): unknown[] {
  return SAFE_RATINGS.map((r) =>
    r.category === 'HARM_CATEGORY_DANGEROUS_CONTENT' ? { category: r.category, probability: 'HIGH', blocked: true } : r,
  );
}
