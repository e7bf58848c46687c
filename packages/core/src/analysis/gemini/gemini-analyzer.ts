/**
 * The Gemini analyzer (DESIGN.md section 5, issue 4): one `generateContent` call per chunk with a
 * response schema (JSON mode), validated again with zod; one call per reduce step.
 *
 * Resilience, per HTTP call, in this order: the circuit breaker's permit (refused: fail fast with
 * UPSTREAM_UNAVAILABLE `circuit-open`), the fleet-wide rate limiter (waits for a slot; asked from
 * the SDK's fetch, right before the request leaves), then the call under a per-call timeout.
 * Failures are classified by ./errors.ts; 429, 5xx, timeouts and network errors are retried
 * with full-jitter backoff (retry/backoff.ts `withRetry`), a 429's RetryInfo `retryDelay` being
 * the floor of the wait. Output that is not valid JSON for the
 * schema is retried a bounded number of times (then INVALID_MODEL_OUTPUT); a safety block is
 * terminal (SAFETY_BLOCKED). The SDK's own retries are off (no `retryOptions`), and so is its
 * automatic continuation, so every HTTP call is one of ours and is counted.
 *
 * Usage: `inputTokens` / `outputTokens` sum `usageMetadata` of every answer the model gave (HTTP
 * 200), including answers we rejected (invalid output, safety block): those were billed. Output
 * counts candidates plus thinking tokens (both are billed as output). `modelCalls` counts those
 * billed answers; refused calls (429, 5xx, timeouts) are not billed and not counted. When an
 * operation fails, the usage so far is in the error's `details.usage`.
 *
 * Scanned pages: a page with empty text and an `image` is sent as an inline image part between
 * its page markers and listed in `ocrPages`; a page with neither is reported in `failedPages` as
 * NO_TEXT_LAYER (as the local analyzer does).
 */
import { GoogleGenAI, type Fetch, type GenerateContentConfig, type GenerateContentResponse } from '@google/genai';
import { DocorchError, isDocorchError } from '../../errors.js';
import { backoffPolicy, withRetry, type BackoffPolicy } from '../../retry/backoff.js';
import type { RateLimiter } from '../../ratelimit/types.js';
import type { Logger } from '../../telemetry/logger.js';
import type { CircuitPermit } from '../circuit-breaker.js';
import {
  ZERO_USAGE,
  type AnalyzeOptions,
  type Analyzer,
  type ChunkAnalysis,
  type ChunkInput,
  type FailedPage,
  type SummaryReduceInput,
  type SummaryReduceOutput,
  type Usage,
} from '../types.js';
import { classifyGeminiError, isBreakerFailure, retriedHere } from './errors.js';
import {
  CHUNK_SYSTEM_INSTRUCTION,
  PROMPT_VERSION,
  REDUCE_SYSTEM_INSTRUCTION,
  chunkPrompt,
  reducePrompt,
  type PromptPage,
  type PromptPart,
} from './prompts.js';
import { InvalidModelOutput, chunkResponseSchema, parseChunkOutput, parseReduceOutput, reduceResponseSchema } from './schema.js';

/** The circuit breaker as the analyzer uses it (./circuit-breaker.ts `CircuitBreaker` fits). */
export interface CircuitBreakerHook {
  /** A permit for one call, or undefined when the circuit refuses calls. */
  tryAcquire(): CircuitPermit | undefined;
  /** Whether the circuit is still in the state the permit was issued in. */
  stillValid(permit: CircuitPermit): boolean;
  /** Gives back a permit whose call was never made. */
  release(permit: CircuitPermit): void;
  onSuccess(permit?: CircuitPermit): void;
  onFailure(permit?: CircuitPermit): void;
  /** How long until a call may go through, in ms. */
  retryAfterMs(): number;
}

/** One HTTP call to the model, for metrics. */
export interface ModelCallEvent {
  operation: 'analyzeChunk' | 'reduceSummaries';
  /** 1 for the first HTTP call of the operation. */
  attempt: number;
  /** `ok` for an answer (HTTP 200, whatever its content), else the error code of the failure. */
  outcome: 'ok' | DocorchError['code'];
  /** HTTP status when the server answered. */
  httpStatus?: number;
  durationMs: number;
  /** Billed usage of an answer. */
  usage?: Usage;
}

/** Options of {@link createGeminiAnalyzer}; config knobs in brackets. */
export interface GeminiAnalyzerOptions {
  /** API key [GEMINI_API_KEY]. */
  apiKey: string;
  /** Model name [GEMINI_MODEL]. @defaultValue 'gemini-2.5-flash' */
  model?: string;
  /** API base URL, e.g. a fake server's [GEMINI_BASE_URL]. @defaultValue the SDK's (https://generativelanguage.googleapis.com) */
  baseUrl?: string;
  /** API version in the path. @defaultValue 'v1beta' (needed for `responseJsonSchema`) */
  apiVersion?: string;
  /** Sampling temperature [GEMINI_TEMPERATURE]. @defaultValue 0.2 */
  temperature?: number;
  /** Longest one HTTP call may take; then it is aborted and retried as TIMEOUT [GEMINI_TIMEOUT_MS]. @defaultValue 60000 */
  timeoutMs?: number;
  /** Cap on output tokens per call (thinking included). @defaultValue 8192 */
  maxOutputTokens?: number;
  /**
   * Backoff of retried calls [GEMINI_MAX_RETRIES + 1, GEMINI_RETRY_BASE_MS, GEMINI_RETRY_CAP_MS].
   * @defaultValue `{ maxAttempts: 5, baseMs: 500, capMs: 30000 }`
   */
  retry?: Partial<BackoffPolicy>;
  /**
   * A 429 whose RetryInfo asks for a longer wait than this is not retried here (it is a daily or
   * long quota, not a burst); the THROTTLED error carries the delay in `retryAfterMs`.
   * @defaultValue 60000
   */
  maxServerRetryDelayMs?: number;
  /** Retries of output that fails JSON parsing or validation [GEMINI_MAX_INVALID_OUTPUT_RETRIES]. @defaultValue 2 */
  maxInvalidOutputRetries?: number;
  /**
   * Most characters of page text in one chunk call [GEMINI_MAX_CHUNK_CHARS], so one call's
   * token reservation is bounded: the page that crosses it is cut there, later pages are failed
   * pages with code TEXT_LIMIT. @defaultValue 120000
   */
  maxChunkChars?: number;
  /** Called before every HTTP call (fleet-wide quota). @defaultValue none */
  rateLimiter?: RateLimiter;
  /** Consulted before and told after every HTTP call. @defaultValue none */
  circuitBreaker?: CircuitBreakerHook;
  /** Retries and rejected output are logged here. @defaultValue none */
  logger?: Pick<Logger, 'debug' | 'warn'>;
  /** Called after every HTTP call (metrics). @defaultValue none */
  onModelCall?: (event: ModelCallEvent) => void;
  /** Random source of the backoff jitter (tests). @defaultValue Math.random */
  random?: () => number;
}

/** The Gemini analyzer: an {@link Analyzer} plus what it was built with. */
export interface GeminiAnalyzer extends Analyzer {
  readonly model: string;
  /** {@link PROMPT_VERSION} of the prompts it sends. */
  readonly promptVersion: string;
}

/** Input tokens estimated per page image before the call (4 tiles of 258); the limiter is corrected by the actual count. */
export const IMAGE_TOKEN_ESTIMATE = 1_032;
/** Sentiment weight (characters) of a page read from its image, whose text length we do not see. */
export const OCR_PAGE_WEIGHT_CHARS = 2_000;
/** Inline data of one request must stay under Gemini's 20 MB request limit (base64 included). */
const MAX_INLINE_BYTES = 19 * 1024 * 1024;

/** What one operation has used so far: billed usage, and HTTP calls made (billed or not). */
interface Tally {
  usage: Usage;
  httpCalls: number;
}

/** Finish reasons that mean the model refused the content. */
const BLOCKED_FINISH = new Set(['SAFETY', 'PROHIBITED_CONTENT', 'BLOCKLIST', 'SPII', 'IMAGE_SAFETY', 'IMAGE_PROHIBITED_CONTENT']);

/** The fail-fast error of a call the open circuit refuses. */
function circuitOpen(breaker: CircuitBreakerHook): DocorchError {
  return new DocorchError('UPSTREAM_UNAVAILABLE', 'The model circuit breaker is open', {
    retryAfterMs: breaker.retryAfterMs(),
    details: { reason: 'circuit-open' },
  });
}

/** Creates the Gemini analyzer (`gemini/<model>`). Safe to call concurrently. */
export function createGeminiAnalyzer(options: GeminiAnalyzerOptions): GeminiAnalyzer {
  const model = options.model ?? 'gemini-2.5-flash';
  const timeoutMs = options.timeoutMs ?? 60_000;
  const policy = backoffPolicy({ maxAttempts: 5, baseMs: 500, capMs: 30_000, ...options.retry });
  const maxServerDelay = options.maxServerRetryDelayMs ?? 60_000;
  const maxInvalidRetries = options.maxInvalidOutputRetries ?? 2;
  const breaker = options.circuitBreaker;
  const limiter = options.rateLimiter;
  const ai = new GoogleGenAI({
    apiKey: options.apiKey,
    vertexai: false,
    httpOptions: {
      apiVersion: options.apiVersion ?? 'v1beta',
      ...(options.baseUrl ? { baseUrl: options.baseUrl } : {}),
    },
  });
  const baseConfig: GenerateContentConfig = {
    temperature: options.temperature ?? 0.2,
    maxOutputTokens: options.maxOutputTokens ?? 8192,
    responseMimeType: 'application/json',
    // One request per call: no SDK-side continuation hops.
    automaticContinuation: false,
  };
  let closed = false;

  /** One model request with its retries, each under the breaker and the limiter; billed usage accumulates in `tally`. */
  async function generate(
    operation: ModelCallEvent['operation'],
    request: { parts: PromptPart[]; systemInstruction: string; schema: unknown },
    estimatedTokens: number,
    tally: Tally,
    signal: AbortSignal | undefined,
  ): Promise<GenerateContentResponse> {
    const usage = tally.usage;
    return withRetry(
      async () => {
        if (closed) throw new DocorchError('INTERNAL', 'The Gemini analyzer is closed');
        const permit = acquirePermit();
        const controller = new AbortController();
        let timedOut = false;
        let timer: NodeJS.Timeout | undefined;
        /** Set once the limiter let the call go (0: it never left). */
        let attempt = 0;
        let started = 0;
        const onAbort = () => controller.abort(signal?.reason);
        signal?.addEventListener('abort', onAbort, { once: true });
        // The limiter is asked inside the SDK's fetch, when the request is built and about to
        // leave: the SDK's own work (slow in a cold process) then comes before the grant, not
        // between the grant and the server's count of the request (see ratelimit/gcra.ts).
        const limitedFetch: Fetch = async (input, init) => {
          await limiter?.acquire(estimatedTokens, signal);
          // The circuit may have opened (or its probe slot been superseded) during the wait.
          if (permit && breaker && !breaker.stillValid(permit)) throw circuitOpen(breaker);
          attempt = ++tally.httpCalls;
          started = performance.now();
          timer = setTimeout(() => {
            timedOut = true;
            controller.abort();
          }, timeoutMs);
          return fetch(input, init);
        };
        try {
          const response = await ai.models.generateContent({
            model,
            contents: [{ role: 'user', parts: request.parts }],
            config: {
              ...baseConfig,
              systemInstruction: request.systemInstruction,
              responseJsonSchema: request.schema,
              abortSignal: controller.signal,
              httpOptions: { fetch: limitedFetch },
            },
          });
          if (permit) breaker?.onSuccess(permit);
          const billed = usageOf(response);
          usage.inputTokens += billed.inputTokens;
          usage.outputTokens += billed.outputTokens;
          usage.modelCalls += 1;
          // Corrected by the billed count only when the answer reports one.
          if (limiter?.settle && billed.inputTokens > 0) {
            limiter.settle(estimatedTokens, billed.inputTokens).catch((err: unknown) => options.logger?.warn({ err }, 'rate limiter settle failed'));
          }
          options.onModelCall?.({ operation, attempt, outcome: 'ok', httpStatus: 200, durationMs: performance.now() - started, usage: billed });
          return response;
        } catch (err) {
          // Never sent (the limiter refused or the caller aborted while waiting), or the caller's abort.
          if (attempt === 0 || (signal?.aborted && !timedOut)) {
            if (permit) breaker?.release(permit);
            throw err;
          }
          const classified = classifyGeminiError(err, { timedOut, timeoutMs });
          if (permit) {
            if (isBreakerFailure(classified)) breaker?.onFailure(permit);
            else breaker?.onSuccess(permit);
          }
          const httpStatus = classified.details?.upstreamStatus;
          options.onModelCall?.({
            operation,
            attempt,
            outcome: classified.code,
            ...(typeof httpStatus === 'number' ? { httpStatus } : {}),
            durationMs: performance.now() - started,
          });
          throw classified;
        } finally {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
        }
      },
      {
        policy,
        shouldRetry: (err) =>
          retriedHere(err) && !(isDocorchError(err, 'THROTTLED') && (err.retryAfterMs ?? 0) > maxServerDelay),
        retryAfterMs: (err) => (err instanceof DocorchError ? err.retryAfterMs : undefined),
        onRetry: (err, attempt, delayMs) =>
          options.logger?.debug({ operation, attempt, delayMs, code: (err as DocorchError).code }, 'retrying Gemini call'),
        ...(signal ? { signal } : {}),
        ...(options.random ? { random: options.random } : {}),
      },
    );
  }

  function acquirePermit(): CircuitPermit | undefined {
    if (!breaker) return undefined;
    const permit = breaker.tryAcquire();
    if (!permit) throw circuitOpen(breaker);
    return permit;
  }

  /**
   * Runs an operation: `call` until its output is valid (bounded), mapping the caller's abort
   * and attaching usage to any error.
   */
  async function operation<T>(
    name: ModelCallEvent['operation'],
    signal: AbortSignal | undefined,
    tally: Tally,
    call: () => Promise<GenerateContentResponse>,
    accept: (response: GenerateContentResponse) => T,
  ): Promise<T> {
    try {
      for (let invalid = 0; ; invalid++) {
        const response = await call();
        try {
          return accept(response);
        } catch (err) {
          if (!(err instanceof InvalidModelOutput)) throw err;
          if (invalid >= maxInvalidRetries) {
            throw new DocorchError('INVALID_MODEL_OUTPUT', `${err.message} (after ${invalid + 1} answers)`, {
              cause: err,
              details: { answers: invalid + 1, problems: err.problems },
            });
          }
          options.logger?.warn({ operation: name, problems: err.problems, answer: invalid + 1 }, 'invalid model output; asking again');
        }
      }
    } catch (err) {
      if (signal?.aborted) throw withUsage(abortError(signal.reason), tally.usage);
      throw withUsage(err instanceof DocorchError ? err : classifyGeminiError(err, { timedOut: false, timeoutMs }), tally.usage);
    }
  }

  return {
    name: `gemini/${model}`,
    model,
    promptVersion: PROMPT_VERSION,

    async analyzeChunk(input: ChunkInput, callOptions: AnalyzeOptions = {}): Promise<ChunkAnalysis> {
      validateChunk(input);
      const signal = callOptions.signal;
      if (signal?.aborted) throw abortError(signal.reason);
      const failedPages: FailedPage[] = [];
      const ocrPages: number[] = [];
      const promptPages: PromptPage[] = [];
      let textLength = 0;
      let inlineBytes = 0;
      let textBudget = options.maxChunkChars ?? 120_000;
      for (const page of [...input.pages].sort((a, b) => a.page - b.page)) {
        if (page.text.trim() !== '') {
          if (textBudget <= 0) {
            failedPages.push({ page: page.page, code: 'TEXT_LIMIT' });
            continue;
          }
          const text = page.text.length > textBudget ? page.text.slice(0, textBudget) : page.text;
          textBudget -= text.length;
          promptPages.push({ page: page.page, text });
          textLength += text.length;
        } else if (page.image) {
          promptPages.push({ page: page.page, image: page.image });
          ocrPages.push(page.page);
          textLength += OCR_PAGE_WEIGHT_CHARS;
          inlineBytes += page.image.data.length;
        } else {
          failedPages.push({ page: page.page, code: 'NO_TEXT_LAYER' });
        }
      }
      if (inlineBytes > MAX_INLINE_BYTES) {
        throw new DocorchError('INVALID_REQUEST', `The chunk's page images are ${inlineBytes} bytes; at most ${MAX_INLINE_BYTES} fit in one request`, {
          details: { inlineBytes, ocrPages },
        });
      }
      const analyses = [...new Set(input.analyses)];
      const usage: Usage = { ...ZERO_USAGE };
      const empty = (): ChunkAnalysis => ({
        summary: '',
        keyPoints: [],
        entities: [],
        sentiment: { label: 'neutral', score: 0 },
        textLength: 0,
        failedPages,
        usage,
      });
      if (promptPages.length === 0 || analyses.length === 0) return { ...empty(), textLength };

      const numbers = promptPages.map((p) => p.page);
      const pageSet = new Set(numbers);
      const parts = chunkPrompt(promptPages, analyses);
      const schema = chunkResponseSchema(analyses, Math.min(...numbers), Math.max(...numbers));
      const estimate = estimateTokens(CHUNK_SYSTEM_INSTRUCTION, parts);
      const tally: Tally = { usage, httpCalls: 0 };
      const parsed = await operation(
        'analyzeChunk',
        signal,
        tally,
        () => generate('analyzeChunk', { parts, systemInstruction: CHUNK_SYSTEM_INSTRUCTION, schema }, estimate, tally, signal),
        (response) => parseChunkOutput(answerText(response), analyses, pageSet),
      );
      if (parsed.droppedPageCitations > 0) {
        options.logger?.debug({ chunkIndex: input.chunkIndex, dropped: parsed.droppedPageCitations }, 'dropped entity pages outside the chunk');
      }
      return {
        summary: parsed.summary,
        keyPoints: parsed.keyPoints,
        entities: parsed.entities,
        sentiment: parsed.sentiment,
        textLength,
        failedPages,
        usage,
        ...(ocrPages.length > 0 ? { ocrPages } : {}),
      };
    },

    async reduceSummaries(input: SummaryReduceInput, callOptions: AnalyzeOptions = {}): Promise<SummaryReduceOutput> {
      if (!Array.isArray(input.summaries) || !Array.isArray(input.keyPoints)) {
        throw new DocorchError('INVALID_REQUEST', 'reduceSummaries needs arrays of summaries and key points');
      }
      const signal = callOptions.signal;
      if (signal?.aborted) throw abortError(signal.reason);
      const maxKeyPoints = Math.max(0, Math.floor(input.maxKeyPoints));
      const summaries = input.summaries.map((s) => s.trim()).filter((s) => s !== '');
      const keyPoints = input.keyPoints.map((k) => k.trim()).filter((k) => k !== '');
      const usage: Usage = { ...ZERO_USAGE };
      // Nothing to merge: no call (and no cost).
      if (summaries.length === 0 && keyPoints.length === 0) return { summary: '', keyPoints: [], usage };
      if (summaries.length <= 1 && keyPoints.length <= maxKeyPoints) return { summary: summaries[0] ?? '', keyPoints, usage };

      const text = reducePrompt({ summaries, keyPoints, maxKeyPoints });
      const parts: PromptPart[] = [{ text }];
      const schema = reduceResponseSchema(maxKeyPoints);
      const estimate = estimateTokens(REDUCE_SYSTEM_INSTRUCTION, parts);
      const tally: Tally = { usage, httpCalls: 0 };
      const out = await operation(
        'reduceSummaries',
        signal,
        tally,
        () => generate('reduceSummaries', { parts, systemInstruction: REDUCE_SYSTEM_INSTRUCTION, schema }, estimate, tally, signal),
        (response) => parseReduceOutput(answerText(response), maxKeyPoints),
      );
      return { ...out, usage };
    },

    async close(): Promise<void> {
      closed = true;
    },
  };
}

/**
 * The answer's JSON text, after the safety checks.
 * @throws DocorchError SAFETY_BLOCKED when the prompt or the answer was blocked
 * @throws InvalidModelOutput when there is no usable text (no candidate, truncated, recitation)
 */
function answerText(response: GenerateContentResponse): string | undefined {
  const blockReason = response.promptFeedback?.blockReason;
  if (blockReason) {
    throw new DocorchError('SAFETY_BLOCKED', `Gemini blocked the prompt (${blockReason})`, { details: { blockReason } });
  }
  const candidate = response.candidates?.[0];
  if (!candidate) throw new InvalidModelOutput('The model returned no candidate', ['no candidates']);
  const finish = candidate.finishReason;
  if (finish && BLOCKED_FINISH.has(finish)) {
    throw new DocorchError('SAFETY_BLOCKED', `Gemini blocked the answer (${finish})`, { details: { finishReason: finish } });
  }
  // Truncated or recited output is a property of this sample, not of the input: worth another try.
  if (finish === 'MAX_TOKENS' || finish === 'RECITATION' || finish === 'MALFORMED_RESPONSE') {
    throw new InvalidModelOutput(`The model's answer stopped early (${finish})`, [`finishReason ${finish}`]);
  }
  return response.text;
}

/** Billed usage of one answer. */
function usageOf(response: GenerateContentResponse): Usage {
  const u = response.usageMetadata;
  return {
    inputTokens: u?.promptTokenCount ?? 0,
    outputTokens: (u?.candidatesTokenCount ?? 0) + (u?.thoughtsTokenCount ?? 0),
    modelCalls: 1,
  };
}

/** Input tokens of a request, estimated before sending it (about 4 characters per token). */
function estimateTokens(systemInstruction: string, parts: readonly PromptPart[]): number {
  let chars = systemInstruction.length;
  let images = 0;
  for (const part of parts) {
    if ('text' in part) chars += part.text.length;
    else images++;
  }
  return Math.ceil(chars / 4) + images * IMAGE_TOKEN_ESTIMATE;
}

/** The same error with the operation's usage so far in `details.usage` (billed answers before the failure). */
function withUsage(err: DocorchError, usage: Usage): DocorchError {
  if (usage.modelCalls === 0) return err;
  return new DocorchError(err.code, err.message, {
    cause: err.cause ?? err,
    details: { ...err.details, usage: { ...usage } },
    ...(err.retryAfterMs === undefined ? {} : { retryAfterMs: err.retryAfterMs }),
  });
}

/** The caller's abort: its reason when that is already classified, else TIMEOUT. */
function abortError(reason: unknown): DocorchError {
  if (reason instanceof DocorchError) return reason;
  return new DocorchError('TIMEOUT', 'The Gemini analysis was aborted', { cause: reason });
}

/** Rejects malformed input on the caller's side, where the error keeps its class and code. */
function validateChunk(input: ChunkInput): void {
  const ok =
    Array.isArray(input.pages) &&
    Array.isArray(input.analyses) &&
    input.pages.every(
      (p) =>
        Number.isInteger(p.page) &&
        p.page >= 1 &&
        typeof p.text === 'string' &&
        (p.image === undefined || (typeof p.image.mimeType === 'string' && typeof p.image.data === 'string')),
    );
  if (!ok) {
    throw new DocorchError('INVALID_REQUEST', 'Chunk input needs pages of { page >= 1, text, image? } and a list of analyses');
  }
}
