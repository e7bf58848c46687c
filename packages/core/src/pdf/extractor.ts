/**
 * The PdfExtractor: PDF.js in a pool of worker threads (piscina), so that parsing never runs on
 * the caller's event loop and a hostile file cannot crash or hang the calling process.
 *
 * Isolation, in layers:
 * - every task runs in a thread with a heap limit (`PDF_MAX_HEAP_MB`); a thread that dies (out of
 *   memory, crash) fails only its own task, with a classified error, and piscina replaces it;
 * - every call has a deadline (`PDF_TIMEOUT_MS`) and honours the caller's AbortSignal: the thread
 *   running an aborted task is terminated;
 * - extracted text is capped (`PDF_MAX_TEXT_BYTES`), checked while a page's text streams in;
 * - unhandled rejections raised by PDF.js are absorbed inside the thread (see extract-thread.ts).
 *
 * Speed: a small selection is inspected and extracted by one task. A larger one is split into
 * slices of at most `PDF_SLICE_PAGES` pages that the threads extract in parallel, each thread
 * opening the file itself from its path (no document bytes cross threads).
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { Piscina } from 'piscina';
import type { Config } from '../config.js';
import { DocorchError, isDocorchError } from '../errors.js';
import { createLogger, type Logger } from '../telemetry/logger.js';
import { threadScript } from '../threads/thread-script.js';
import { isPageRangeSyntax, parsePageRange } from './page-range.js';
import type { ThreadData } from './extract-thread.js';
import { fromThreadError, type PageFailure, type ThreadResult, type ThreadTask } from './protocol.js';
import type { ExtractedPage, ExtractionResult, ExtractOptions, PdfExtractor, PdfInfo } from './types.js';

/** The settings {@link createPdfExtractor} reads. */
export type PdfExtractorConfig = Pick<
  Config,
  'PDF_THREADS' | 'PDF_TIMEOUT_MS' | 'PDF_MAX_HEAP_MB' | 'PDF_MAX_TEXT_BYTES' | 'PDF_SLICE_PAGES'
>;

/** Options of {@link createPdfExtractor} besides the config. */
export interface CreatePdfExtractorOptions {
  /** Where per-page failures, thread deaths and absorbed PDF.js rejections are logged. @defaultValue a pino logger with service "pdf-extractor" */
  logger?: Logger;
  /**
   * Threads kept alive while idle (the rest exit after `idleTimeoutMs`). A warm thread saves the
   * PDF.js start-up (~0.2 s) on the next request.
   * @defaultValue 1
   */
  minThreads?: number;
  /** How long a thread above `minThreads` may stay idle. @defaultValue 30000 */
  idleTimeoutMs?: number;
}

/** Counters of an extractor since it was created (for metrics and tests). */
export interface PdfExtractorStats {
  /** Tasks sent to threads. */
  tasks: number;
  /** Unhandled rejections PDF.js raised inside threads and the threads absorbed. */
  absorbedRejections: number;
  /** Tasks whose thread died (out of memory or crash); each was answered with an error. */
  threadDeaths: number;
  /** Pages answered empty because their extraction failed. */
  failedPages: number;
}

// Selections up to this size are extracted by the task that opens the document: a second
// round trip (and a second parse of the file) costs more than it saves.
const INLINE_PAGES = 48;
// A slice re-parses the document's structure; below this size that overhead is not worth it.
const MIN_SLICE_PAGES = 24;

/** {@link PdfExtractor} on a piscina pool; see the module comment. */
export class ThreadedPdfExtractor implements PdfExtractor {
  private readonly pool: Piscina<ThreadTask, ThreadResult>;
  private readonly logger: Logger;
  private readonly counters: PdfExtractorStats = { tasks: 0, absorbedRejections: 0, threadDeaths: 0, failedPages: 0 };
  private closed = false;

  constructor(
    private readonly config: PdfExtractorConfig,
    options: CreatePdfExtractorOptions = {},
  ) {
    this.logger = options.logger ?? createLogger({ service: 'pdf-extractor' });
    const script = threadScript(import.meta.url, './extract-thread');
    this.pool = new Piscina<ThreadTask, ThreadResult>({
      filename: script.filename,
      execArgv: script.execArgv,
      maxThreads: config.PDF_THREADS,
      minThreads: Math.min(options.minThreads ?? 1, config.PDF_THREADS),
      idleTimeout: options.idleTimeoutMs ?? 30_000,
      concurrentTasksPerWorker: 1,
      resourceLimits: { maxOldGenerationSizeMb: config.PDF_MAX_HEAP_MB },
      workerData: {
        pdfjsRoot: path.dirname(createRequire(import.meta.url).resolve('pdfjs-dist/package.json')),
      } satisfies ThreadData,
    });
    // piscina emits 'error' when an idle thread dies; unlistened, that would throw in the caller.
    this.pool.on('error', (err: unknown) => {
      this.logger.error({ err }, 'PDF thread failed outside a task');
    });
  }

  /** Counters since creation. */
  stats(): PdfExtractorStats {
    return { ...this.counters };
  }

  async inspect(filePath: string, options: { signal?: AbortSignal } = {}): Promise<PdfInfo> {
    return this.withDeadline(options.signal, async (run) => {
      const result = await run({ kind: 'open', path: filePath, extract: false, maxPages: Number.MAX_SAFE_INTEGER, inlinePages: 0, maxTextBytes: 0 });
      return result.info;
    });
  }

  async extract(filePath: string, options: ExtractOptions): Promise<ExtractionResult> {
    if (options.pages !== undefined && !isPageRangeSyntax(options.pages)) {
      // Answered without touching the file.
      throw new DocorchError('INVALID_REQUEST', `Malformed page range "${options.pages}"; expected e.g. 1-3,7`, {
        details: { pages: options.pages },
      });
    }
    const maxTextBytes = this.config.PDF_MAX_TEXT_BYTES;
    return this.withDeadline(options.signal, async (run) => {
      const opened = await run({
        kind: 'open',
        path: filePath,
        extract: true,
        pages: options.pages,
        maxPages: options.maxPages,
        inlinePages: INLINE_PAGES,
        maxTextBytes,
      });
      const info = opened.info;
      if (opened.pages) return this.finish(filePath, info, opened.pages, opened.failures);

      const selected = parsePageRange(options.pages, info.pageCount);
      const slices = planSlices(selected, this.config.PDF_THREADS, this.config.PDF_SLICE_PAGES);
      const results = await Promise.all(slices.map((pages) => run({ kind: 'pages', path: filePath, pages, maxTextBytes })));
      const textBytes = results.reduce((sum, r) => sum + r.textBytes, 0);
      if (textBytes > maxTextBytes) {
        throw new DocorchError('TOO_LARGE', `The PDF's text exceeds the limit of ${maxTextBytes} bytes`, {
          details: { reason: 'text', limitBytes: maxTextBytes },
        });
      }
      return this.finish(
        filePath,
        info,
        results.flatMap((r) => r.pages ?? []),
        results.flatMap((r) => r.failures),
      );
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.destroy();
  }

  private finish(filePath: string, info: PdfInfo, pages: ExtractedPage[], failures: PageFailure[]): ExtractionResult {
    if (failures.length > 0) {
      this.counters.failedPages += failures.length;
      this.logger.warn({ file: filePath, failures: failures.slice(0, 20), failedPages: failures.length }, 'PDF pages could not be extracted; answered empty');
      if (failures.length === pages.length) {
        // Not one selected page could be read: the document, not a page, is broken.
        throw new DocorchError('BAD_PDF', `The PDF could not be read: ${failures[0]?.message ?? 'no page could be read'}`, {
          details: { reason: 'pages-unreadable', failedPages: failures.length },
        });
      }
    }
    return { info, pages };
  }

  /**
   * Runs `body` with a task runner bound to one deadline and abort scope: the caller's signal,
   * PDF_TIMEOUT_MS, and a scope abort that stops the remaining slices once one has failed.
   */
  private async withDeadline<T>(
    callerSignal: AbortSignal | undefined,
    body: (run: (task: DistributiveOmit<ThreadTask, 'started'>) => Promise<Extract<ThreadResult, { ok: true }>>) => Promise<T>,
  ): Promise<T> {
    if (this.closed) throw new DocorchError('INTERNAL', 'The PDF extractor is closed');
    const timeoutMs = this.config.PDF_TIMEOUT_MS;
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(new DocorchError('TIMEOUT', 'PDF deadline')), timeoutMs);
    timer.unref();
    const scope = new AbortController();
    const signals = [deadline.signal, scope.signal, ...(callerSignal ? [callerSignal] : [])];
    const signal = AbortSignal.any(signals);
    let firstError: DocorchError | undefined;
    let anyStarted = false;
    const flags: Int32Array[] = [];

    const fail = (err: DocorchError): never => {
      firstError ??= err;
      scope.abort();
      throw firstError;
    };

    const run = async (task: DistributiveOmit<ThreadTask, 'started'>): Promise<Extract<ThreadResult, { ok: true }>> => {
      const started = new Int32Array(new SharedArrayBuffer(4));
      flags.push(started);
      this.counters.tasks++;
      let result: ThreadResult;
      try {
        result = await this.pool.run({ ...task, started } as ThreadTask, { signal });
      } catch (err) {
        if (firstError) throw firstError;
        if (signal.aborted) {
          anyStarted = flags.some((f) => Atomics.load(f, 0) === 1);
          return fail(this.abortError(callerSignal, deadline.signal, anyStarted));
        }
        return fail(this.threadError(err, task.path));
      }
      this.absorb(result, task.path);
      if (!result.ok) return fail(fromThreadError(result.error));
      return result;
    };

    try {
      return await body(run);
    } catch (err) {
      if (firstError) throw firstError;
      if (isDocorchError(err)) throw err;
      throw new DocorchError('INTERNAL', `PDF extraction failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    } finally {
      clearTimeout(timer);
    }
  }

  private abortError(callerSignal: AbortSignal | undefined, deadline: AbortSignal, running: boolean): DocorchError {
    if (callerSignal?.aborted && !deadline.aborted) {
      const reason: unknown = callerSignal.reason;
      if (isDocorchError(reason)) return reason;
      return new DocorchError('TIMEOUT', 'PDF extraction was aborted by the caller', {
        details: { reason: 'aborted' },
        cause: reason,
      });
    }
    const timeoutMs = this.config.PDF_TIMEOUT_MS;
    if (!running) {
      // Never got a thread: the pool is busy, which says nothing about the file. Retryable.
      return new DocorchError('TIMEOUT', `No PDF thread became free within ${timeoutMs} ms`, {
        details: { reason: 'queue', timeoutMs },
      });
    }
    // The file itself took too long: for the client that is an unreadable PDF, and retrying
    // would only burn the same time again. Terminal, 422.
    return new DocorchError('BAD_PDF', `The PDF could not be read within ${timeoutMs} ms`, {
      details: { reason: 'timeout', timeoutMs },
    });
  }

  private threadError(err: unknown, filePath: string): DocorchError {
    if (this.closed) return new DocorchError('INTERNAL', 'The PDF extractor was closed during the extraction', { cause: err });
    this.counters.threadDeaths++;
    const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
    this.logger.warn({ err, file: filePath }, 'PDF thread died during a task');
    if (code === 'ERR_WORKER_OUT_OF_MEMORY') {
      const limitMb = this.config.PDF_MAX_HEAP_MB;
      return new DocorchError('TOO_LARGE', `Reading the PDF needs more than the ${limitMb} MiB memory limit`, {
        details: { reason: 'memory', limitMb },
        cause: err,
      });
    }
    return new DocorchError('BAD_PDF', 'The PDF could not be read: the parser failed', {
      details: { reason: 'crash' },
      cause: err,
    });
  }

  private absorb(result: ThreadResult, filePath: string): void {
    if (result.unhandledRejections > 0) {
      this.counters.absorbedRejections += result.unhandledRejections;
      // May belong to an earlier document of the same thread: PDF.js can reject late.
      this.logger.info(
        { file: filePath, count: result.unhandledRejections, lastRejection: result.lastRejection },
        'absorbed unhandled rejections raised by PDF.js in a thread',
      );
    }
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/**
 * Splits a selection into contiguous slices: at most `slicePages` each, at least enough to keep
 * every thread busy, a multiple of the thread count so the threads finish together.
 */
export function planSlices(selected: readonly number[], threads: number, slicePages: number): number[][] {
  const n = selected.length;
  if (n === 0) return [];
  const bySize = Math.ceil(n / Math.max(1, slicePages));
  const byThreads = Math.min(threads, Math.max(1, Math.floor(n / MIN_SLICE_PAGES)));
  let count = Math.max(bySize, byThreads);
  if (count > threads) count = Math.ceil(count / threads) * threads;
  count = Math.min(count, n);
  const slices: number[][] = [];
  for (let i = 0; i < count; i++) {
    const from = Math.floor((i * n) / count);
    const to = Math.floor(((i + 1) * n) / count);
    if (to > from) slices.push(selected.slice(from, to));
  }
  return slices;
}

/**
 * Creates the PDF extractor of a process: a pool of `PDF_THREADS` threads with a
 * `PDF_MAX_HEAP_MB` heap each, a `PDF_TIMEOUT_MS` deadline per call and a `PDF_MAX_TEXT_BYTES`
 * text limit per document. Call `close()` on shutdown.
 *
 * Errors (DocorchError): ENCRYPTED_PDF (password needed); BAD_PDF (not a PDF, corrupt, parser
 * crash, or took longer than the deadline: `details.reason` is `timeout`); TOO_MANY_PAGES;
 * INVALID_PAGE_RANGE / INVALID_REQUEST (page selection); TOO_LARGE (`details.reason` `memory` or
 * `text`); TIMEOUT (deadline passed while every thread was busy with other work, or the caller
 * aborted with a non-DocorchError reason).
 */
export function createPdfExtractor(config: PdfExtractorConfig, options: CreatePdfExtractorOptions = {}): ThreadedPdfExtractor {
  return new ThreadedPdfExtractor(config, options);
}
