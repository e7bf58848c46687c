/**
 * The local offline analyzer (DESIGN.md section 5): wink-nlp and compromise, run in a pool of
 * worker threads (piscina) so that CPU-bound NLP never blocks the event loop of the API or the
 * worker. Each thread loads the models once; every call has a time budget after which its thread
 * is terminated and the call fails with TIMEOUT.
 */
import os from 'node:os';
import { Piscina } from 'piscina';
import { DocorchError, toDocorchError } from '../../errors.js';
import type { Logger } from '../../telemetry/logger.js';
import { threadScript } from '../../threads/thread-script.js';
import type {
  AnalyzeOptions,
  Analyzer,
  ChunkAnalysis,
  ChunkInput,
  SummaryReduceInput,
  SummaryReduceOutput,
} from '../types.js';

/**
 * Name the local analyzer records in results. Defined here, not beside the analysis: importing
 * analyze-text.ts loads the NLP models (compromise, wink), about 25 MB of heap that only the
 * analysis threads need, into every process that imports core.
 */
export const LOCAL_ANALYZER_NAME = 'local/wink-nlp';

/** Options of {@link createLocalAnalyzer}. */
export interface LocalAnalyzerOptions {
  /**
   * Worker threads (config `ANALYSIS_THREADS`). All are started up front so the models are loaded
   * before the first call.
   * @defaultValue min(4, available parallelism)
   */
  threads?: number;
  /**
   * Longest one call may take, queueing included (config `ANALYSIS_TIMEOUT_MS`). On expiry the
   * thread is terminated (a replacement is started) and the call throws `DocorchError('TIMEOUT')`.
   * @defaultValue 60000
   */
  timeoutMs?: number;
  /**
   * Old-generation heap limit of each thread in MiB; a thread that exceeds it is terminated and
   * the call fails with a retryable INTERNAL error instead of taking the process down.
   * @defaultValue 512
   */
  maxHeapMb?: number;
  /**
   * Where thread failures outside a call (e.g. a thread dying while idle) are reported.
   * @defaultValue none (not reported)
   */
  logger?: Pick<Logger, 'warn'>;
}

/** Task names exported by ./analyze-thread.ts. */
type TaskName = 'analyzeChunk' | 'reduceSummaries';

/**
 * Creates the local analyzer (`local/wink-nlp`). Safe to call concurrently: calls beyond the
 * thread count wait in the pool's queue (their time budget running). Call `close()` to stop the threads.
 */
export function createLocalAnalyzer(options: LocalAnalyzerOptions = {}): Analyzer {
  const threads = Math.max(1, Math.floor(options.threads ?? Math.min(4, os.availableParallelism())));
  const timeoutMs = Math.max(1, options.timeoutMs ?? 60_000);
  const script = threadScript(import.meta.url, './analyze-thread');
  const pool = new Piscina({
    filename: script.filename,
    execArgv: script.execArgv,
    // Preloads the entry (and so the models) in every thread at start.
    name: 'analyzeChunk',
    minThreads: threads,
    maxThreads: threads,
    idleTimeout: Number.POSITIVE_INFINITY,
    resourceLimits: { maxOldGenerationSizeMb: options.maxHeapMb ?? 512 },
  });
  // piscina reports a thread that dies while idle as an 'error' event; unheard, it would crash
  // the process. Calls in flight fail on their own.
  pool.on('error', (err: unknown) => options.logger?.warn({ err }, 'local analyzer thread failed'));
  let closed = false;

  async function run<R>(name: TaskName, task: unknown, signal: AbortSignal | undefined): Promise<R> {
    if (closed) throw new DocorchError('INTERNAL', 'The local analyzer is closed');
    if (signal?.aborted) throw abortError(signal.reason);
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeoutMs);
    const onAbort = () => controller.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      return (await pool.run(task, { name, signal: controller.signal })) as R;
    } catch (err) {
      if (timedOut) {
        throw new DocorchError('TIMEOUT', `Local analysis took longer than ${timeoutMs} ms`, {
          cause: err,
          details: { timeoutMs },
        });
      }
      if (signal?.aborted) throw abortError(signal.reason);
      throw toDocorchError(err);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
  }

  return {
    name: LOCAL_ANALYZER_NAME,
    async analyzeChunk(input: ChunkInput, callOptions: AnalyzeOptions = {}): Promise<ChunkAnalysis> {
      validateChunk(input);
      // Only what the thread needs crosses the thread boundary: the text, not the images of
      // scanned pages (this analyzer reads text only; such pages come back as NO_TEXT_LAYER).
      const pages = input.pages.map(({ page, text }) => ({ page, text }));
      return run<ChunkAnalysis>('analyzeChunk', { pages, analyses: input.analyses }, callOptions.signal);
    },
    async reduceSummaries(input: SummaryReduceInput, callOptions: AnalyzeOptions = {}): Promise<SummaryReduceOutput> {
      if (!Array.isArray(input.summaries) || !Array.isArray(input.keyPoints)) {
        throw new DocorchError('INVALID_REQUEST', 'reduceSummaries needs arrays of summaries and key points');
      }
      return run<SummaryReduceOutput>('reduceSummaries', input, callOptions.signal);
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      await pool.destroy();
    },
  };
}

/** The caller's abort: its reason when that is already classified, else TIMEOUT (retryable elsewhere). */
function abortError(reason: unknown): DocorchError {
  if (reason instanceof DocorchError) return reason;
  return new DocorchError('TIMEOUT', 'Local analysis was aborted', { cause: reason });
}

/** Rejects malformed input on the caller's side, where the error keeps its class and code. */
function validateChunk(input: ChunkInput): void {
  const ok =
    Array.isArray(input.pages) &&
    Array.isArray(input.analyses) &&
    input.pages.every((p) => Number.isInteger(p.page) && p.page >= 1 && typeof p.text === 'string');
  if (!ok) {
    throw new DocorchError('INVALID_REQUEST', 'Chunk input needs pages of { page >= 1, text } and a list of analyses');
  }
}
