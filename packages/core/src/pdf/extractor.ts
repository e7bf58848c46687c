/**
 * The PdfExtractor: PDFium (WebAssembly, ./pdfium.ts; pdf.js as the fallback for files PDFium
 * refuses, ./pdfjs-fallback.ts) in a pool of worker PROCESSES, so that parsing never runs on the
 * caller's event loop and a hostile file cannot crash, hang or bloat the calling process.
 *
 * Why processes (workerpool) and not worker threads (piscina): measured here on Node 20.20, a
 * worker thread's `resourceLimits` are not a safe boundary for PDF.js (still the fallback engine).
 * - A heap bomb (a content stream holding one array of 100 million numbers) made PDF.js push
 *   into one array until V8 hit the thread's heap limit, and V8 then aborted the WHOLE process
 *   ("FATAL ERROR: Reached heap limit", nodejs/node#47224, still open) instead of terminating
 *   the thread. A child process that aborts takes only itself down.
 * - `resourceLimits` do not count ArrayBuffers, where PDF.js keeps decoded streams: a 2 MB
 *   decompression bomb reached 4-7 GB RSS in a thread limited to a 256 MiB heap. That is bounded
 *   by ./memory-guard.ts inside each worker, and the heap by `--max-old-space-size`. PDFium's
 *   WebAssembly memory has the same budget as its maximum (./pdfium.ts).
 *
 * Isolation, in layers:
 * - every task runs in a child process with `--max-old-space-size=PDF_MAX_HEAP_MB` and a buffer
 *   budget of `PDF_MAX_BUFFER_MB`; a worker that dies fails only its own task, with a classified
 *   error, and the pool starts a new one;
 * - every call has a deadline (`PDF_TIMEOUT_MS`) and honours the caller's AbortSignal: the
 *   worker running an aborted task is killed;
 * - extracted text is capped (`PDF_MAX_TEXT_BYTES`), checked while a page's text streams in;
 * - unhandled rejections (pdf.js) are absorbed inside the worker (extract-thread.ts).
 *
 * Speed: a small selection is inspected and extracted by one task. A larger one is split into
 * slices of at most `PDF_SLICE_PAGES` pages that the workers extract in parallel, each opening
 * the file itself from its path (no document bytes are sent between processes).
 */
import workerpool from 'workerpool';
import type { Config } from '../config.js';
import { DocorchError, isDocorchError } from '../errors.js';
import { FairQueue, type FairShare } from '../resilience/fair-queue.js';
import { createLogger, type Logger } from '../telemetry/logger.js';
import { threadScript } from '../threads/thread-script.js';
import { isPageRangeSyntax, parsePageRange } from './page-range.js';
import { fromThreadError, isPagesEvent, ocrTaskOptions, type OcrConfig, type PageFailure, type ThreadResult, type ThreadTask } from './protocol.js';
import type { ExtractedPage, ExtractionResult, ExtractOptions, InspectOptions, PdfExtractor, PdfInfo } from './types.js';

/** The settings {@link createPdfExtractor} reads. */
export type PdfExtractorConfig = Pick<
  Config,
  'PDF_THREADS' | 'PDF_TIMEOUT_MS' | 'PDF_MAX_HEAP_MB' | 'PDF_MAX_BUFFER_MB' | 'PDF_MAX_TEXT_BYTES' | 'PDF_SLICE_PAGES' | 'PDF_NICE'
> &
  OcrConfig;

/** Options of {@link createPdfExtractor} besides the config. */
export interface CreatePdfExtractorOptions {
  /**
   * Where per-page failures, worker deaths and absorbed PDF.js rejections are logged.
   * @defaultValue a pino logger with service "pdf-extractor"
   */
  logger?: Logger;
  /**
   * Worker processes started at once and kept alive (the others start on demand). A warm
   * worker saves the PDF.js start-up (0.3 s compiled, more from source) on the first request.
   * @defaultValue 1
   */
  minWorkers?: number;
}

/** Counters of an extractor since it was created (for metrics and tests). */
export interface PdfExtractorStats {
  /** Tasks sent to workers. */
  tasks: number;
  /** Unhandled rejections PDF.js raised inside workers and the workers absorbed. */
  absorbedRejections: number;
  /** Tasks whose worker process died (out of memory or crash); each was answered with an error. */
  workerDeaths: number;
  /** Pages answered empty because their extraction failed. */
  failedPages: number;
  /** Files PDFium refused as damaged that were opened with the pdf.js fallback. */
  pdfjsFallbacks: number;
}

// Selections up to this size are extracted by the task that opens the document: a second
// round trip (and a second parse of the file) costs more than it saves.
const INLINE_PAGES = 48;
// With `onPages`, a worker sends its pages in batches of this many as it extracts them.
const STREAM_PAGES = 8;
// A slice re-parses the document's structure; below this size that overhead is not worth it.
const MIN_SLICE_PAGES = 24;

type TaskInput = ThreadTask extends infer T ? (T extends unknown ? Omit<T, 'maxBufferBytes'> : never) : never;
type Success = Extract<ThreadResult, { ok: true }>;

/** Work that names no tenant (warm-up, tools, tests): one shared flow the per-tenant cap does not hold back. */
const UNNAMED_FLOW: FairShare = { flow: '', capped: false };

/** {@link PdfExtractor} on a workerpool of child processes; see the module comment. */
export class ProcessPdfExtractor implements PdfExtractor {
  private readonly pool: ReturnType<typeof workerpool.pool>;
  /**
   * Admission in front of the pool: a task that holds a slot has a worker (tells queue time from
   * run time). Fair between tenants: a queued 5-page document goes before the rest of another
   * tenant's 2,000-page split.
   */
  private readonly slots: FairQueue;
  private readonly logger: Logger;
  private readonly counters: PdfExtractorStats = { tasks: 0, absorbedRejections: 0, workerDeaths: 0, failedPages: 0, pdfjsFallbacks: 0 };
  private closed = false;
  /** Aborted by close(): calls still queued or running then reject at once. */
  private readonly closing = new AbortController();

  constructor(
    private readonly config: PdfExtractorConfig,
    options: CreatePdfExtractorOptions = {},
  ) {
    this.logger = options.logger ?? createLogger({ service: 'pdf-extractor' });
    const script = threadScript(import.meta.url, './extract-thread');
    this.pool = workerpool.pool(script.filename, {
      workerType: 'process',
      maxWorkers: config.PDF_THREADS,
      minWorkers: Math.min(options.minWorkers ?? 1, config.PDF_THREADS),
      // A killed worker gets this long to exit before SIGKILL.
      workerTerminateTimeout: 1_000,
      // Captured and logged per task: the service's stdout carries JSON log lines only.
      emitStdStreams: true,
      // --expose-gc: the buffer guard collects garbage before refusing an allocation.
      forkOpts: { execArgv: [...script.execArgv, `--max-old-space-size=${config.PDF_MAX_HEAP_MB}`, '--expose-gc'] },
    });
    // One tenant's split never holds every PDF worker: the next tenant's document starts at once.
    this.slots = new FairQueue(config.PDF_THREADS, { maxPerFlow: Math.max(1, config.PDF_THREADS - 1) });
  }

  /** Counters since creation. */
  stats(): PdfExtractorStats {
    return { ...this.counters };
  }

  async inspect(filePath: string, options: InspectOptions = {}): Promise<PdfInfo> {
    return this.withDeadline(options.signal, options.share, async (run) => {
      const result = await run({
        kind: 'open',
        path: filePath,
        extract: false,
        ...(options.gap ? { gap: options.gap } : {}),
        maxPages: Number.MAX_SAFE_INTEGER,
        inlinePages: 0,
        maxTextBytes: 0,
      });
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
    return this.withDeadline(options.signal, options.share, async (run, abort) => {
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
      if (opened.pages) {
        const result = this.finish(filePath, info, opened.pages, opened.failures);
        options.onOpen?.(info, result.pages.map((p) => p.page));
        options.onPages?.(result.pages);
        return result;
      }

      const selected = parsePageRange(options.pages, info.pageCount);
      options.onOpen?.(info, selected);
      const slices = planSlices(selected, this.config.PDF_THREADS, this.config.PDF_SLICE_PAGES);
      let textBytes = 0;
      const { onPages } = options;
      const results = await Promise.all(
        slices.map(async (pages) => {
          // With onPages, the worker streams its pages as it goes; they are delivered at once
          // and put back in front of the rest of the slice's result.
          const streamed: ExtractedPage[] = [];
          const task: TaskInput = { kind: 'pages', path: filePath, pages, maxTextBytes, ...(onPages ? { emitEvery: STREAM_PAGES } : {}) };
          const result = await run(task, (batch) => {
            streamed.push(...batch);
            onPages?.(batch);
          });
          if (streamed.length > 0) result.pages = [...streamed, ...(result.pages ?? [])];
          textBytes += result.textBytes;
          if (textBytes > maxTextBytes) {
            abort(
              new DocorchError('TOO_LARGE', `The PDF's text exceeds the limit of ${maxTextBytes} bytes`, {
                details: { reason: 'text', limitBytes: maxTextBytes },
              }),
            );
          }
          // The rest of the slice. Failed pages are delivered empty, as in the result; finish()
          // decides below whether the document as a whole is unreadable.
          const rest = result.pages?.slice(streamed.length) ?? [];
          if (rest.length > 0) onPages?.(rest);
          return result;
        }),
      );
      return this.finish(
        filePath,
        info,
        results.flatMap((r) => r.pages ?? []),
        results.flatMap((r) => r.failures),
      );
    });
  }

  /**
   * Resolves once every worker process is up (PDF.js loaded), e.g. before a service reports
   * ready. Not bound by PDF_TIMEOUT_MS: a worker's start-up is not a document's work.
   */
  async warmUp(): Promise<void> {
    if (this.closed) throw new DocorchError('INTERNAL', 'The PDF extractor is closed');
    // One ping per worker, all at once: workerpool gives each to a different (new) worker.
    await Promise.all(
      Array.from({ length: this.config.PDF_THREADS }, () => this.slots.run(UNNAMED_FLOW, async () => this.pool.exec('ping', [this.config.PDF_MAX_BUFFER_MB * 1024 * 1024]), this.closing.signal)),
    );
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.closing.abort(new DocorchError('INTERNAL', 'The PDF extractor was closed during the extraction'));
    await this.pool.terminate(true);
  }

  private finish(filePath: string, info: PdfInfo, pages: ExtractedPage[], failures: PageFailure[]): ExtractionResult {
    if (failures.length > 0) {
      this.counters.failedPages += failures.length;
      this.logger.warn(
        { file: filePath, failures: failures.slice(0, 20), failedPages: failures.length },
        'PDF pages could not be extracted; answered empty',
      );
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
   * Runs `body` with a task runner bound to one deadline and one abort scope: the caller's
   * signal, PDF_TIMEOUT_MS, and a scope abort that stops the remaining slices once one failed.
   */
  private async withDeadline<T>(
    callerSignal: AbortSignal | undefined,
    share: FairShare | undefined,
    body: (run: (task: TaskInput, onPages?: (pages: ExtractedPage[]) => void) => Promise<Success>, abort: (err: DocorchError) => never) => Promise<T>,
  ): Promise<T> {
    if (this.closed) throw new DocorchError('INTERNAL', 'The PDF extractor is closed');
    const timeoutMs = this.config.PDF_TIMEOUT_MS;
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(new DocorchError('TIMEOUT', 'PDF deadline')), timeoutMs);
    timer.unref();
    const scope = new AbortController();
    const signal = AbortSignal.any([
      deadline.signal,
      scope.signal,
      this.closing.signal,
      ...(callerSignal ? [callerSignal] : []),
    ]);
    let firstError: DocorchError | undefined;
    // Set when a worker reports that it runs one of this call's tasks.
    let anyStarted = false;

    const fail = (err: DocorchError): never => {
      firstError ??= err;
      scope.abort();
      throw firstError;
    };

    const run = async (input: TaskInput, onPages?: (pages: ExtractedPage[]) => void): Promise<Success> => {
      const task = { ...input, maxBufferBytes: this.config.PDF_MAX_BUFFER_MB * 1024 * 1024, nice: this.config.PDF_NICE, ocr: ocrTaskOptions(this.config) } as ThreadTask;
      let result: ThreadResult;
      try {
        result = await raceAbort(
          this.slots.run(share ?? UNNAMED_FLOW, async () => {
            if (signal.aborted) throw signal.reason;
            this.counters.tasks++;
            const pending = this.pool.exec('run', [task], {
              on: (event: unknown) => {
                if (isStartedEvent(event)) anyStarted = true;
                else if (isPagesEvent(event)) {
                  if (!signal.aborted) onPages?.(event.pages);
                } else this.workerOutput(event, task.path);
              },
            });
            const cancel = () => {
              // Kills the worker running the task. workerpool's cancel() runs its rejection
              // handlers synchronously and rethrows the CancellationError from there; inside an
              // abort listener that would be an uncaught exception, and the rejection it
              // announces reaches us through `pending` anyway.
              try {
                pending.cancel();
              } catch {
                // see above
              }
            };
            signal.addEventListener('abort', cancel, { once: true });
            try {
              return (await pending) as ThreadResult;
            } finally {
              signal.removeEventListener('abort', cancel);
            }
          }, signal),
          signal,
        );
      } catch (err) {
        if (firstError) throw firstError;
        if (signal.aborted) return fail(this.abortError(callerSignal, deadline.signal, anyStarted));
        return fail(this.workerError(err, task.path));
      }
      this.absorb(result, task.path);
      if (!result.ok) return fail(fromThreadError(result.error));
      return result;
    };

    try {
      return await body(run, fail);
    } catch (err) {
      if (firstError) throw firstError;
      if (isDocorchError(err)) throw err;
      throw new DocorchError('INTERNAL', `PDF extraction failed: ${err instanceof Error ? err.message : String(err)}`, {
        cause: err,
      });
    } finally {
      clearTimeout(timer);
    }
  }

  private abortError(callerSignal: AbortSignal | undefined, deadline: AbortSignal, running: boolean): DocorchError {
    // Shutting down: retryable, another instance can do the work.
    if (this.closing.signal.aborted) return this.closing.signal.reason as DocorchError;
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
      // No worker started the work (all busy, or the worker was still starting): that says
      // nothing about the file. Retryable.
      return new DocorchError('TIMEOUT', `No PDF worker became free within ${timeoutMs} ms`, {
        details: { reason: 'queue', timeoutMs },
      });
    }
    // The file itself took too long: for the client that is an unreadable PDF, and retrying
    // would only burn the same time again. Terminal, 422.
    return new DocorchError('BAD_PDF', `The PDF could not be read within ${timeoutMs} ms`, {
      details: { reason: 'timeout', timeoutMs },
    });
  }

  private workerError(err: unknown, filePath: string): DocorchError {
    if (this.closed) return new DocorchError('INTERNAL', 'The PDF extractor was closed during the extraction', { cause: err });
    this.counters.workerDeaths++;
    const message = err instanceof Error ? err.message : String(err);
    this.logger.warn({ err, file: filePath }, 'PDF worker process died during a task');
    // V8 aborts (SIGABRT) on a fatal out-of-memory; the kernel's OOM killer sends SIGKILL.
    if (/signalCode: `(SIGABRT|SIGKILL)`/.test(message)) {
      const limitMb = this.config.PDF_MAX_HEAP_MB;
      return new DocorchError('TOO_LARGE', `Reading the PDF needs more than the ${limitMb} MiB memory limit`, {
        details: { reason: 'memory', limitMb },
        cause: err,
      });
    }
    return new DocorchError('BAD_PDF', 'The PDF could not be read: the parser process failed', {
      details: { reason: 'crash' },
      cause: err,
    });
  }

  /** Logs what PDF.js or V8 printed in a worker (PDF.js errors, fatal out-of-memory reports). */
  private workerOutput(event: unknown, filePath: string): void {
    if (typeof event !== 'object' || event === null) return;
    const { stdout, stderr } = event as { stdout?: unknown; stderr?: unknown };
    const text = typeof stdout === 'string' ? stdout : typeof stderr === 'string' ? stderr : undefined;
    if (text === undefined || text.trim() === '') return;
    this.logger.warn({ file: filePath, output: text.length > 2000 ? `${text.slice(0, 2000)}...` : text.trimEnd() }, 'PDF worker output');
  }

  private absorb(result: ThreadResult, filePath: string): void {
    this.counters.pdfjsFallbacks += result.pdfjsFallbacks ?? 0;
    if (result.unhandledRejections > 0) {
      this.counters.absorbedRejections += result.unhandledRejections;
      // May belong to an earlier document of the same worker: PDF.js can reject late.
      this.logger.info(
        { file: filePath, count: result.unhandledRejections, lastRejection: result.lastRejection },
        'absorbed unhandled rejections raised by PDF.js in a worker',
      );
    }
  }
}

function isStartedEvent(event: unknown): boolean {
  return typeof event === 'object' && event !== null && (event as { started?: unknown }).started === true;
}

/** Rejects with the signal's reason as soon as it aborts, whatever `promise` does. */
function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    promise.catch(() => undefined);
    return Promise.reject(signal.reason as Error);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err as Error);
      },
    );
  });
}

/**
 * Splits a selection into contiguous slices: at most `slicePages` each, at least enough to keep
 * every worker busy, a multiple of the worker count so the workers finish together.
 */
export function planSlices(selected: readonly number[], workers: number, slicePages: number): number[][] {
  const n = selected.length;
  if (n === 0) return [];
  const bySize = Math.ceil(n / Math.max(1, slicePages));
  const byWorkers = Math.min(workers, Math.max(1, Math.floor(n / MIN_SLICE_PAGES)));
  let count = Math.max(bySize, byWorkers);
  if (count > workers) count = Math.ceil(count / workers) * workers;
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
 * Creates the PDF extractor of a process: a pool of `PDF_THREADS` worker processes with a
 * `PDF_MAX_HEAP_MB` heap and a `PDF_MAX_BUFFER_MB` buffer budget each, a `PDF_TIMEOUT_MS`
 * deadline per call and a `PDF_MAX_TEXT_BYTES` text limit per document. Call `close()` on shutdown.
 *
 * Errors (DocorchError): ENCRYPTED_PDF (password needed); BAD_PDF (not a PDF, corrupt, parser
 * crash, or took longer than the deadline: `details.reason` is `timeout`); TOO_MANY_PAGES
 * (checked right after the document is opened, before any page); INVALID_PAGE_RANGE /
 * INVALID_REQUEST (page selection); TOO_LARGE (`details.reason` `memory` or `text`); TIMEOUT
 * (the deadline passed while every worker was busy with other work, or the caller aborted with
 * a reason that is not a DocorchError; a DocorchError reason is passed through).
 */
export function createPdfExtractor(config: PdfExtractorConfig, options: CreatePdfExtractorOptions = {}): ProcessPdfExtractor {
  return new ProcessPdfExtractor(config, options);
}
