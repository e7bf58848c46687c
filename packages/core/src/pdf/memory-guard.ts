/**
 * Bounds the memory a PDF worker process holds OUTSIDE the V8 heap.
 *
 * Why: heap limits (`--max-old-space-size`, a worker thread's `resourceLimits`) cap only the JS
 * heap, and PDF.js keeps decoded streams in ArrayBuffers, which live outside it. Measured here
 * with pdfjs-dist 5.4: a 2 MB PDF whose content stream (or embedded font) inflates to 2 GB drove
 * the process to 4-7 GB RSS in a worker thread limited to a 256 MiB heap. PDF.js decodes those
 * streams in two ways, and both are guarded:
 * - asynchronously, through the global `DecompressionStream` (whole Flate streams): the guarded
 *   stream ends early once the worker is over its budget, so PDF.js gets a truncated stream
 *   instead of a huge one, and never falls back to its synchronous decoder for it;
 * - synchronously, growing `new Uint8Array(n)` buffers (fonts, other filters, fallbacks): the
 *   guarded constructor throws a RangeError for an allocation that would cross the budget.
 * Either way the guard records the breach; the worker then fails the task with TOO_LARGE.
 *
 * The budget is checked against `process.memoryUsage().arrayBuffers` of the worker process.
 * Only allocations of at least 1 MiB are checked, so the cost for ordinary documents is one
 * branch per typed-array allocation.
 */

/** Allocations below this size are never checked (cheap path for the many small buffers). */
const CHECK_FROM_BYTES = 1 << 20;

/** State of the guard of this process. */
export interface MemoryGuard {
  /** Budget of ArrayBuffer memory in bytes. */
  readonly limitBytes: number;
  /** True once an allocation or a decompression crossed the budget since the last reset. */
  readonly exceeded: boolean;
  /** Clears `exceeded` (at the start of each task). */
  reset(): void;
  /** How many times the budget was crossed since the guard was installed (reset() keeps it). */
  readonly trips: number;
}

let installed: (MemoryGuard & { exceeded: boolean; limitBytes: number }) | undefined;

function arrayBufferBytes(): number {
  return process.memoryUsage().arrayBuffers;
}

/**
 * True when `extraBytes` more would cross the budget. The count includes dead buffers until V8
 * collects them, and the refused allocation is what would have made V8 collect, so before
 * refusing, collect once (the worker runs with --expose-gc) and count again.
 */
function overBudget(limitBytes: number, extraBytes: number): boolean {
  if (arrayBufferBytes() + extraBytes <= limitBytes) return false;
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) return true;
  gc();
  return arrayBufferBytes() + extraBytes > limitBytes;
}

/**
 * Installs the guard in the current process (once; later calls return the same guard and keep the
 * first limit). Call it after PDF.js is loaded: the guard replaces globals PDF.js looks up at
 * call time, while PDF.js's bundled polyfills keep the originals they captured at load time.
 */
export function installMemoryGuard(limitBytes: number): MemoryGuard {
  if (installed) return installed;
  const guard = {
    limitBytes,
    exceeded: false,
    trips: 0,
    reset() {
      guard.exceeded = false;
    },
  };
  installed = guard;

  const NativeUint8Array = globalThis.Uint8Array;
  globalThis.Uint8Array = new Proxy(NativeUint8Array, {
    construct(target, args: unknown[], newTarget: unknown) {
      const size = args[0];
      if (typeof size === 'number' && size >= CHECK_FROM_BYTES && overBudget(guard.limitBytes, size)) {
        guard.exceeded = true;
        guard.trips++;
        throw new RangeError(`PDF buffer memory limit of ${guard.limitBytes} bytes exceeded`);
      }
      return Reflect.construct(target, args, newTarget === globalThis.Uint8Array ? target : (newTarget as typeof target));
    },
  });

  const NativeDecompressionStream = globalThis.DecompressionStream;
  if (NativeDecompressionStream) {
    class GuardedDecompressionStream {
      readonly readable: ReadableStream<Uint8Array>;
      readonly writable: DecompressionStream['writable'];
      constructor(format: ConstructorParameters<typeof DecompressionStream>[0]) {
        const inner = new NativeDecompressionStream(format);
        let unchecked = 0;
        const limiter = new TransformStream<Uint8Array, Uint8Array>({
          transform(chunk, controller) {
            unchecked += chunk.byteLength;
            if (unchecked >= CHECK_FROM_BYTES) {
              unchecked = 0;
              if (overBudget(guard.limitBytes, 0)) {
                guard.exceeded = true;
                guard.trips++;
                // End the output here: PDF.js keeps what it has, a bounded truncated stream.
                controller.terminate();
                return;
              }
            }
            controller.enqueue(chunk);
          },
        });
        this.readable = inner.readable.pipeThrough(limiter);
        this.writable = inner.writable;
      }
    }
    globalThis.DecompressionStream = GuardedDecompressionStream as unknown as typeof DecompressionStream;
  }
  return guard;
}
