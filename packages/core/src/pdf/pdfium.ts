/**
 * PDFium, the PDF engine Chrome ships (fuzzed continuously), compiled to WebAssembly
 * (@hyzyla/pdfium's build), used from inside a PDF worker process (./extract-thread.ts) through
 * its C API: open a document (read into its memory, or read on demand when large), count pages,
 * read a page's text, tell a scanned page from a blank one, render a page to a bitmap.
 *
 * Why the C API and not the wrapper's classes: the wrapper copies the file into memory without
 * checking the allocation, never closes the pages it loads, and renders in colour only through
 * its own helpers; here every allocation is checked, every page closed, and the limits applied
 * per call.
 *
 * Isolation and limits:
 * - The WebAssembly memory is bounded: the binary's memory maximum (2 GiB as built) is rewritten
 *   to the budget before it is compiled, so a decompression bomb makes PDFium's allocations fail
 *   inside the module (a failed malloc, or PDFium's own out-of-memory abort) instead of growing
 *   the process. A fault inside the module (an abort, an out-of-bounds access) is a trap that
 *   surfaces here as an exception; the instance is then discarded and a fresh one made.
 * - The build has no JavaScript engine (no V8) and no XFA, and PDFium never fetches anything:
 *   no scripts run, no forms are filled, no external resource is read.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { PDFiumLibrary } from '@hyzyla/pdfium';
import type { FileGap } from './types.js';

/**
 * The WebAssembly JS API as far as it is used here (Node has it; the project's lib set, ES
 * without DOM, does not declare it).
 */
type WasmModule = object;
interface WasmInstance {
  readonly exports: Record<string, unknown>;
}
interface WasmApi {
  compile(bytes: Uint8Array): Promise<WasmModule>;
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (module: WasmModule, imports: object) => WasmInstance;
}
interface WasmTable {
  grow(delta: number): number;
  set(index: number, value: unknown): void;
}
interface WasmMemory {
  readonly buffer: ArrayBuffer;
}
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

/** The part of PDFium's C API used here (emscripten exports; pointers and handles are numbers). */
interface PdfiumModule {
  HEAPU8: Uint8Array;
  wasmExports: { malloc(size: number): number; free(ptr: number): void };
  _FPDF_LoadMemDocument(data: number, size: number, password: number): number;
  _FPDF_LoadCustomDocument(access: number, password: number): number;
  _FPDF_CloseDocument(doc: number): void;
  _FPDF_GetLastError(): number;
  _FPDF_GetPageCount(doc: number): number;
  _FPDF_GetFileVersion(doc: number, out: number): number;
  _FPDF_GetMetaText(doc: number, tag: number, buffer: number, length: number): number;
  _FPDF_LoadPage(doc: number, index: number): number;
  _FPDF_ClosePage(page: number): void;
  _FPDF_GetPageWidthF(page: number): number;
  _FPDF_GetPageHeightF(page: number): number;
  _FPDFText_LoadPage(page: number): number;
  _FPDFText_ClosePage(text: number): void;
  _FPDFText_CountChars(text: number): number;
  _FPDFText_GetText(text: number, start: number, count: number, out: number): number;
  _FPDFPage_CountObjects(page: number): number;
  _FPDFPage_GetObject(page: number, index: number): number;
  _FPDFPageObj_GetType(object: number): number;
  _FPDFFormObj_CountObjects(form: number): number;
  _FPDFFormObj_GetObject(form: number, index: number): number;
  _FPDFBitmap_CreateEx(width: number, height: number, format: number, buffer: number, stride: number): number;
  _FPDFBitmap_FillRect(bitmap: number, left: number, top: number, width: number, height: number, color: number): void;
  _FPDFBitmap_Destroy(bitmap: number): void;
  _FPDF_RenderPageBitmap(bitmap: number, page: number, x: number, y: number, width: number, height: number, rotate: number, flags: number): void;
}

/** FPDF_GetLastError codes. */
const FPDF_ERR = { UNKNOWN: 1, FILE: 2, FORMAT: 3, PASSWORD: 4, SECURITY: 5, PAGE: 6 } as const;
const PAGEOBJ_IMAGE = 3;
const PAGEOBJ_FORM = 5;
const BITMAP_GRAY = 1;
const RENDER_ANNOT = 0x01;
const RENDER_GRAYSCALE = 0x08;
const WASM_PAGE = 65_536;
/** Table slots added to the binary's function table (one is used: the file reader of {@link PdfiumEngine.openFile}). */
const EXTRA_TABLE_SLOTS = 4;
/**
 * Files up to this size are read into PDFium's memory at once (fastest to extract from); larger
 * ones are read on demand, block by block, as PDFium asks (a 500 MB upload whose pages are a few
 * KB is then inspected without 500 MB of WebAssembly memory). @defaultValue 32 MiB
 */
export const IN_MEMORY_MAX_BYTES = 32 << 20;
/** Form XObjects nest; a scan is found within a few levels, and a cycle must not loop. */
const MAX_FORM_DEPTH = 8;

/** Why PDFium refused to open a document. */
export class PdfiumOpenError extends Error {
  constructor(
    /** `gap`: the open needed bytes of the file's gap (see {@link FileGap}); what PDFium made of it is unknown. */
    readonly reason: 'password' | 'security' | 'format' | 'file' | 'unknown' | 'memory' | 'gap',
    message: string,
  ) {
    super(message);
    this.name = 'PdfiumOpenError';
  }
}

/** A fault inside the module (abort, trap, failed allocation): the engine must not be used again. */
export class PdfiumFault extends Error {
  constructor(
    message: string,
    /** The WebAssembly memory was at its bound: the cause is the memory limit. */
    readonly atMemoryLimit: boolean,
  ) {
    super(message);
    this.name = 'PdfiumFault';
  }
}

/**
 * Rewrites the maximum of a WebAssembly binary's (only, defined) memory to `maxBytes`, so that the
 * module can never grow past it. Throws when the binary has no defined memory with a maximum.
 */
export function boundWasmMemory(binary: Uint8Array, maxBytes: number): Uint8Array {
  const maxPages = Math.max(1, Math.ceil(maxBytes / WASM_PAGE));
  let i = 8; // magic and version
  while (i < binary.length) {
    const id = binary[i] as number;
    const [size, bodyAt] = readLeb(binary, i + 1);
    if (id === 5) {
      const [count, limitsAt] = readLeb(binary, bodyAt);
      const flags = binary[limitsAt] as number;
      if (count !== 1 || (flags & 1) !== 1) throw new Error('the PDFium binary does not define one bounded memory');
      const [min, maxAt] = readLeb(binary, limitsAt + 1);
      const [, end] = readLeb(binary, maxAt);
      if (min > maxPages) throw new Error(`PDFium needs at least ${min * WASM_PAGE} bytes of memory; the bound is ${maxBytes}`);
      const body = [...writeLeb(1), flags, ...writeLeb(min), ...writeLeb(maxPages), ...binary.subarray(end, bodyAt + size)];
      return replaceSection(binary, i, bodyAt + size, Uint8Array.from([5, ...writeLeb(body.length), ...body]));
    }
    i = bodyAt + size;
  }
  throw new Error('the PDFium binary has no memory section');
}

/**
 * Raises the maximum of a WebAssembly binary's (only, defined) function table by `extra` slots, so
 * that functions can be added to it (emscripten builds it exactly full, with no room to grow).
 */
export function widenWasmTable(binary: Uint8Array, extra: number): Uint8Array {
  let i = 8;
  while (i < binary.length) {
    const id = binary[i] as number;
    const [size, bodyAt] = readLeb(binary, i + 1);
    if (id === 4) {
      const [count, typeAt] = readLeb(binary, bodyAt);
      const flags = binary[typeAt + 1] as number;
      if (count !== 1 || binary[typeAt] !== 0x70) throw new Error('the PDFium binary does not define one function table');
      if ((flags & 1) === 0) return binary; // no maximum: it grows already
      const [min, maxAt] = readLeb(binary, typeAt + 2);
      const [max, end] = readLeb(binary, maxAt);
      const body = [...writeLeb(1), 0x70, flags, ...writeLeb(min), ...writeLeb(max + extra), ...binary.subarray(end, bodyAt + size)];
      return replaceSection(binary, i, bodyAt + size, Uint8Array.from([4, ...writeLeb(body.length), ...body]));
    }
    i = bodyAt + size;
  }
  throw new Error('the PDFium binary has no table section');
}

function replaceSection(binary: Uint8Array, start: number, end: number, section: Uint8Array): Uint8Array {
  const out = new Uint8Array(binary.length - (end - start) + section.length);
  out.set(binary.subarray(0, start), 0);
  out.set(section, start);
  out.set(binary.subarray(end), start + section.length);
  return out;
}

/**
 * A WebAssembly function of type (i32, i32, i32, i32) -> i32 that calls `fn`: what a C function
 * pointer of PDFium's FPDF_FILEACCESS.m_GetBlock must be (only a WebAssembly function can sit in
 * its table). A module of one import re-exported, written out by hand.
 */
function wasmFunction(fn: (a: number, b: number, c: number, d: number) => number): unknown {
  const bytes = Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version 1
    0x01, 0x09, 0x01, 0x60, 0x04, 0x7f, 0x7f, 0x7f, 0x7f, 0x01, 0x7f, // type 0: (i32 x4) -> i32
    0x02, 0x07, 0x01, 0x01, 0x65, 0x01, 0x66, 0x00, 0x00, // import "e" "f": func of type 0
    0x07, 0x05, 0x01, 0x01, 0x66, 0x00, 0x00, // export "f": func 0
  ]);
  return new wasm.Instance(new wasm.Module(bytes), { e: { f: fn } }).exports['f'];
}

function readLeb(bytes: Uint8Array, at: number): [value: number, next: number] {
  let value = 0;
  let shift = 0;
  let i = at;
  for (;;) {
    const byte = bytes[i++] as number;
    value += (byte & 0x7f) * 2 ** shift;
    shift += 7;
    if (byte < 0x80) return [value, i];
  }
}

function writeLeb(value: number): number[] {
  const out: number[] = [];
  let v = value;
  do {
    let byte = v % 128;
    v = Math.floor(v / 128);
    if (v > 0) byte |= 0x80;
    out.push(byte);
  } while (v > 0);
  return out;
}

const compiled = new Map<number, Promise<WasmModule>>();

async function compile(maxBytes: number): Promise<WasmModule> {
  let module = compiled.get(maxBytes);
  if (!module) {
    const file = createRequire(import.meta.url).resolve('@hyzyla/pdfium/pdfium.wasm');
    module = readFile(file).then((binary) => wasm.compile(boundWasmMemory(widenWasmTable(binary, EXTRA_TABLE_SLOTS), maxBytes)));
    compiled.set(maxBytes, module);
  }
  return module;
}

/** Rendered pixels: 8-bit gray, one byte a pixel, rows top to bottom. */
export interface GrayBitmap {
  width: number;
  height: number;
  data: Uint8Array;
}

/** An open document. Not thread-safe (nothing here is); close it once. */
export interface PdfiumDocument {
  readonly engine: 'pdfium';
  readonly pageCount: number;
  /** True once PDFium asked for bytes of the file's gap: nothing read since can be trusted. */
  readonly gapRead: boolean;
  /** `1.7` style, or null when the header has none. */
  readonly version: string | null;
  /** The Info dictionary's Title, or null. */
  title(): string | null;
  /**
   * The text of a page (1-based) in PDFium's reading order, and whether the page paints an image
   * (a scan) — looked at only when the text is empty. Throws a RangeError past `maxChars`.
   */
  page(pageNumber: number, options: { maxChars: number; lookForImages: boolean }): { text: string; paintsImage: boolean; width: number; height: number };
  /** Renders a page (1-based) to gray pixels at `scale` (PDF units to pixels). */
  render(pageNumber: number, scale: number): GrayBitmap;
  close(): void;
}

/** A file PDFium reads block by block (see {@link PdfiumEngine.openFile}). */
interface OnDemandFile {
  fd: number;
  gap: FileGap | undefined;
  /** Set when PDFium asked for bytes of the gap. */
  gapRead: boolean;
}

/** One instance of the module with its memory bound; discarded after a fault. */
export class PdfiumEngine {
  private faulted: string | undefined;
  /** Open files read on demand, by the id their FPDF_FILEACCESS carries. */
  private readonly files = new Map<number, OnDemandFile>();
  private nextFileId = 1;
  /** Table index of {@link PdfiumEngine.readBlock} as a C function pointer. */
  private readonly readBlockPointer: number;

  private constructor(
    private readonly m: PdfiumModule,
    /** The memory bound in bytes. */
    readonly maxBytes: number,
    private readonly memory: WasmMemory,
    table: WasmTable,
  ) {
    this.readBlockPointer = table.grow(1);
    table.set(this.readBlockPointer, wasmFunction((id, position, buffer, size) => this.readBlock(id, position, buffer, size)));
  }

  /** Instantiates PDFium with its WebAssembly memory bounded to `maxBytes`. */
  static async create(maxBytes: number): Promise<PdfiumEngine> {
    const module = await compile(maxBytes);
    let exports: Record<string, unknown> = {};
    const library = await PDFiumLibrary.init({
      // emscripten calls back with (instance, module); the package's typing names them otherwise.
      instantiateWasm: (imports, done) => {
        const instance = new wasm.Instance(module, imports);
        exports = instance.exports;
        (done as unknown as (instance: WasmInstance, module: WasmModule) => void)(instance, module);
        return instance.exports as never;
      },
    });
    return new PdfiumEngine(
      (library as unknown as { module: PdfiumModule }).module,
      maxBytes,
      exports['memory'] as WasmMemory,
      exports['__indirect_function_table'] as WasmTable,
    );
  }

  /** Bytes of WebAssembly memory the instance holds now (it never shrinks). */
  get memoryBytes(): number {
    return this.m.HEAPU8.length;
  }

  /** Set after a fault: the instance must be dropped. */
  get broken(): boolean {
    return this.faulted !== undefined;
  }

  /** Opens a PDF from its bytes (copied into the module's memory). */
  open(bytes: Uint8Array): PdfiumDocument {
    const data = this.alloc(bytes.length);
    this.m.HEAPU8.set(bytes, data);
    return this.load(this.call(() => this.m._FPDF_LoadMemDocument(data, bytes.length, 0)), () => this.free(data));
  }

  /**
   * Opens a PDF file of `size` bytes. Up to {@link IN_MEMORY_MAX_BYTES} it is read straight into
   * the module's memory (no copy of it on the JavaScript heap); a larger one is read on demand
   * through FPDF_LoadCustomDocument, its file descriptor kept open until the document is closed,
   * so PDFium's memory holds only what it parses. Synchronous reads, so nothing else can run (and
   * grow the memory under the view) meanwhile.
   */
  openFile(filePath: string, size: number, options: { inMemoryMaxBytes?: number; gap?: FileGap | undefined } = {}): PdfiumDocument {
    // A file with a gap is always read on demand: only the reader can keep PDFium off the gap.
    if (options.gap || size > (options.inMemoryMaxBytes ?? IN_MEMORY_MAX_BYTES)) return this.openOnDemand(filePath, size, options.gap);
    const data = this.alloc(size);
    const fd = openSync(filePath, 'r');
    try {
      for (let done = 0; done < size; ) {
        const n = readSync(fd, this.m.HEAPU8, data + done, Math.min(size - done, 16 << 20), done);
        if (n === 0) throw new PdfiumOpenError('file', `the file ended after ${done} of ${size} bytes`);
        done += n;
      }
    } catch (err) {
      this.m.wasmExports.free(data);
      throw err;
    } finally {
      closeSync(fd);
    }
    return this.load(this.call(() => this.m._FPDF_LoadMemDocument(data, size, 0)), () => this.free(data));
  }

  private openOnDemand(filePath: string, size: number, gap?: FileGap): PdfiumDocument {
    if (size > 0xffff_ffff) throw new PdfiumOpenError('file', `the file (${size} bytes) is past the 4 GiB PDFium can address`);
    const access = this.alloc(12);
    const id = this.nextFileId++;
    const fd = openSync(filePath, 'r');
    const file: OnDemandFile = { fd, gap, gapRead: false };
    this.files.set(id, file);
    // FPDF_FILEACCESS { unsigned long m_FileLen; m_GetBlock (a table index); void* m_Param }: 32-bit fields.
    const view = new DataView(this.memory.buffer, access, 12);
    view.setUint32(0, size, true);
    view.setUint32(4, this.readBlockPointer, true);
    view.setUint32(8, id, true);
    const release = () => {
      this.files.delete(id);
      closeSync(fd);
      this.free(access);
    };
    try {
      return this.load(this.call(() => this.m._FPDF_LoadCustomDocument(access, 0)), release, () => file.gapRead);
    } catch (err) {
      if (this.files.has(id)) release();
      // Whatever went wrong, PDFium went wrong on a file it did not fully have.
      if (file.gapRead) throw new PdfiumOpenError('gap', `opening it needed bytes ${gap?.start ?? 0}-${gap?.end ?? 0}, which are not on disk`);
      throw err;
    }
  }

  /**
   * FPDF_FILEACCESS.m_GetBlock: copies `size` bytes at `position` of file `id` to `buffer` in the
   * module's memory; 1 when done, 0 on any failure (PDFium then treats the file as damaged). It
   * never throws: an exception must not unwind through PDFium's frames.
   */
  private readBlock(id: number, position: number, buffer: number, size: number): number {
    const file = this.files.get(id);
    if (file === undefined) return 0;
    const fd = file.fd;
    const from = position >>> 0;
    if (file.gap && from < file.gap.end && from + (size >>> 0) > file.gap.start) {
      file.gapRead = true;
      return 0;
    }
    try {
      const target = new Uint8Array(this.memory.buffer, buffer >>> 0, size >>> 0);
      for (let done = 0; done < target.length; ) {
        const n = readSync(fd, target, done, target.length - done, (position >>> 0) + done);
        if (n === 0) return 0;
        done += n;
      }
      return 1;
    } catch {
      return 0;
    }
  }

  /** Frees module memory, unless the instance faulted (its memory then goes with it). */
  private free(pointer: number): void {
    if (!this.faulted) this.m.wasmExports.free(pointer);
  }

  private alloc(size: number): number {
    const data = this.call(() => this.m.wasmExports.malloc(Math.max(1, size)));
    if (data === 0) throw new PdfiumOpenError('memory', `the file (${size} bytes) does not fit the ${this.maxBytes} byte memory limit`);
    return data;
  }

  /** Wraps a document handle just opened (0: the open failed; `release` frees what it read from). */
  private load(doc: number, release: () => void, gapRead: () => boolean = () => false): PdfiumDocument {
    const m = this.m;
    if (doc === 0) {
      const code = m._FPDF_GetLastError();
      release();
      throw openError(code);
    }
    const pageCount = this.call(() => m._FPDF_GetPageCount(doc));
    let version: string | null = null;
    const out = m.wasmExports.malloc(4);
    if (out !== 0) {
      if (m._FPDF_GetFileVersion(doc, out) !== 0) {
        const v = new DataView(m.HEAPU8.buffer).getInt32(out, true);
        if (v >= 10 && v < 100) version = `${Math.floor(v / 10)}.${v % 10}`;
      }
      m.wasmExports.free(out);
    }
    let closed = false;
    return {
      engine: 'pdfium',
      pageCount,
      get gapRead() {
        return gapRead();
      },
      version,
      title: () => this.call(() => metaText(m, doc, 'Title')),
      page: (pageNumber, options) => this.call(() => readPage(m, doc, pageNumber, options)),
      render: (pageNumber, scale) => this.call(() => renderPage(m, doc, pageNumber, scale)),
      close: () => {
        if (closed) return;
        closed = true;
        if (!this.faulted) m._FPDF_CloseDocument(doc); // else its memory goes with the instance
        release();
      },
    };
  }

  /** Runs a call into the module; a trap or abort marks the instance broken. */
  private call<T>(fn: () => T): T {
    if (this.faulted) throw new PdfiumFault(`PDFium is unusable after an earlier fault: ${this.faulted}`, false);
    try {
      return fn();
    } catch (err) {
      if (err instanceof RangeError && err.message.startsWith('text limit')) throw err;
      if (err instanceof PdfiumPageError) throw err;
      const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
      this.faulted = message;
      // Near the bound counts as the bound: the allocation that failed (and made PDFium abort)
      // would have crossed it; a fault far below it is PDFium failing on the file itself.
      throw new PdfiumFault(message, this.memoryBytes >= this.maxBytes * 0.85);
    }
  }
}

/** A page PDFium cannot load (the document itself is readable). */
export class PdfiumPageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PdfiumPageError';
  }
}

function openError(code: number): PdfiumOpenError {
  switch (code) {
    case FPDF_ERR.PASSWORD:
      return new PdfiumOpenError('password', 'a password is required');
    case FPDF_ERR.SECURITY:
      return new PdfiumOpenError('security', 'the encryption scheme is not supported');
    case FPDF_ERR.FORMAT:
      return new PdfiumOpenError('format', 'not a PDF, or damaged beyond repair');
    case FPDF_ERR.FILE:
      return new PdfiumOpenError('file', 'the file could not be read');
    default:
      return new PdfiumOpenError('unknown', `PDFium could not open it (error ${code})`);
  }
}

function withPage<T>(m: PdfiumModule, doc: number, pageNumber: number, use: (page: number) => T): T {
  const page = m._FPDF_LoadPage(doc, pageNumber - 1);
  if (page === 0) throw new PdfiumPageError(`page ${pageNumber} could not be loaded`);
  try {
    return use(page);
  } finally {
    m._FPDF_ClosePage(page);
  }
}

function readPage(
  m: PdfiumModule,
  doc: number,
  pageNumber: number,
  options: { maxChars: number; lookForImages: boolean },
): { text: string; paintsImage: boolean; width: number; height: number } {
  return withPage(m, doc, pageNumber, (page) => {
    let text = '';
    const textPage = m._FPDFText_LoadPage(page);
    if (textPage !== 0) {
      try {
        const count = m._FPDFText_CountChars(textPage);
        if (count > options.maxChars) throw new RangeError(`text limit: page ${pageNumber} has ${count} characters`);
        if (count > 0) {
          const out = m.wasmExports.malloc((count + 1) * 2);
          if (out === 0) throw new Error('out of memory reading the text');
          try {
            const written = m._FPDFText_GetText(textPage, 0, count, out);
            // UTF-16LE with a terminating NUL counted in `written`.
            if (written > 1) text = Buffer.from(m.HEAPU8.buffer, out, (written - 1) * 2).toString('utf16le');
          } finally {
            m.wasmExports.free(out);
          }
        }
      } finally {
        m._FPDFText_ClosePage(textPage);
      }
    }
    const paintsImage = options.lookForImages && /\S/.test(text) === false ? hasImage(m, page, false, 0) : false;
    return { text, paintsImage, width: m._FPDF_GetPageWidthF(page), height: m._FPDF_GetPageHeightF(page) };
  });
}

/** True when the page (or a form XObject on it, a few levels deep) holds an image object. */
function hasImage(m: PdfiumModule, container: number, isForm: boolean, depth: number): boolean {
  const count = isForm ? m._FPDFFormObj_CountObjects(container) : m._FPDFPage_CountObjects(container);
  for (let i = 0; i < count; i++) {
    const object = isForm ? m._FPDFFormObj_GetObject(container, i) : m._FPDFPage_GetObject(container, i);
    if (object === 0) continue;
    const type = m._FPDFPageObj_GetType(object);
    if (type === PAGEOBJ_IMAGE) return true;
    if (type === PAGEOBJ_FORM && depth < MAX_FORM_DEPTH && hasImage(m, object, true, depth + 1)) return true;
  }
  return false;
}

function renderPage(m: PdfiumModule, doc: number, pageNumber: number, scale: number): GrayBitmap {
  return withPage(m, doc, pageNumber, (page) => {
    const width = Math.max(1, Math.floor(m._FPDF_GetPageWidthF(page) * scale));
    const height = Math.max(1, Math.floor(m._FPDF_GetPageHeightF(page) * scale));
    const pixels = m.wasmExports.malloc(width * height);
    if (pixels === 0) throw new PdfiumPageError(`rendering the page needs ${width * height} bytes more than the memory limit allows`);
    try {
      const bitmap = m._FPDFBitmap_CreateEx(width, height, BITMAP_GRAY, pixels, width);
      if (bitmap === 0) throw new PdfiumPageError('the page bitmap could not be created');
      try {
        m._FPDFBitmap_FillRect(bitmap, 0, 0, width, height, 0xffffffff);
        m._FPDF_RenderPageBitmap(bitmap, page, 0, 0, width, height, 0, RENDER_ANNOT | RENDER_GRAYSCALE);
        return { width, height, data: m.HEAPU8.slice(pixels, pixels + width * height) };
      } finally {
        m._FPDFBitmap_Destroy(bitmap);
      }
    } finally {
      m.wasmExports.free(pixels);
    }
  });
}

/** A metadata entry (`Title`, ...) of the Info dictionary, or null. */
function metaText(m: PdfiumModule, doc: number, tag: string): string | null {
  const name = m.wasmExports.malloc(tag.length + 1);
  if (name === 0) return null;
  try {
    m.HEAPU8.set(Buffer.from(`${tag}\0`, 'latin1'), name);
    const bytes = m._FPDF_GetMetaText(doc, name, 0, 0);
    if (bytes <= 2) return null;
    const out = m.wasmExports.malloc(bytes);
    if (out === 0) return null;
    try {
      m._FPDF_GetMetaText(doc, name, out, bytes);
      return Buffer.from(m.HEAPU8.buffer, out, bytes - 2).toString('utf16le');
    } finally {
      m.wasmExports.free(out);
    }
  } finally {
    m.wasmExports.free(name);
  }
}
