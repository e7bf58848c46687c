/**
 * Images of scanned pages, made inside a PDF worker process (./extract-thread.ts): a page whose
 * text layer is empty but whose operator list paints an image is rendered to PNG, so that a
 * multimodal analyzer can read it (issue 4). A blank page (no image, no text) gets none.
 *
 * Rendering uses @napi-rs/canvas, the canvas PDF.js itself loads in Node. It never fails the
 * document: a page that cannot be rendered (canvas not loadable, a PDF.js error, the buffer
 * memory limit, the task's image budget spent) is returned without an image, as any page without
 * a text layer, and the reason is written to stderr, which the extractor logs with the file.
 */
import type { PDFPageProxy } from 'pdfjs-dist/legacy/build/pdf.mjs';
import type { PageImage } from '../analysis/types.js';
import type { MemoryGuard } from './memory-guard.js';
import type { OcrTaskOptions, PageFailure } from './protocol.js';

/** PDF.js operators (names in `OPS`) that paint a raster image, inline or as an XObject. */
export const IMAGE_OPERATORS = [
  'paintImageXObject',
  'paintImageXObjectRepeat',
  'paintInlineImageXObject',
  'paintInlineImageXObjectGroup',
  'paintImageMaskXObject',
  'paintImageMaskXObjectGroup',
  'paintImageMaskXObjectRepeat',
  'paintSolidColorImageMask',
] as const;

/** Longest side of a rendered page in pixels, whatever the pixel cap allows (a 1 x 200-inch strip). */
export const MAX_IMAGE_SIDE = 16_384;

/**
 * Scale from PDF units (1/72 inch) to pixels for a page of `width` x `height` units: `dpi / 72`,
 * lowered so that the image has at most `maxPixels` pixels and no side above {@link MAX_IMAGE_SIDE}.
 */
export function renderScale(width: number, height: number, options: Pick<OcrTaskOptions, 'dpi' | 'maxPixels'>): number {
  let scale = options.dpi / 72;
  const area = width * height;
  if (area * scale * scale > options.maxPixels) scale = Math.sqrt(options.maxPixels / area);
  const side = Math.max(width, height);
  if (side * scale > MAX_IMAGE_SIDE) scale = MAX_IMAGE_SIDE / side;
  return scale;
}

type CanvasModule = typeof import('@napi-rs/canvas');
// Loaded on the first scanned page, so that a missing native binary only costs the images.
let canvasModule: Promise<CanvasModule> | undefined;

function loadCanvas(): Promise<CanvasModule> {
  canvasModule ??= import('@napi-rs/canvas').catch((err: unknown) => {
    const reason = err instanceof Error ? err.message : String(err);
    throw new Error(`@napi-rs/canvas could not be loaded, so scanned pages are not rendered: ${reason}`);
  });
  return canvasModule;
}

type RenderCanvas = Parameters<PDFPageProxy['render']>[0]['canvas'];

/** Renders the scanned pages of one task, within the task's image budget. */
export class PageImager {
  /** Scanned pages that got no image, with the reason. */
  readonly failures: PageFailure[] = [];
  private readonly imageOps: ReadonlySet<number>;
  private bytes = 0;
  /** Set once no further page of the task is rendered (budget spent, memory limit reached). */
  private stopped: string | undefined;

  /**
   * @param ops - PDF.js's `OPS` table (passed in: this module must not load PDF.js itself, see
   *   ./extract-thread.ts on the order of loading).
   * @param guard - the process's buffer guard; a breach while rendering costs the image, not the task.
   */
  constructor(
    private readonly options: OcrTaskOptions,
    ops: Readonly<Record<string, number>>,
    private readonly guard: MemoryGuard | undefined,
  ) {
    this.imageOps = new Set(IMAGE_OPERATORS.flatMap((name) => (ops[name] === undefined ? [] : [ops[name]])));
  }

  /**
   * The image of a page whose text layer is empty: undefined for a page that paints no image
   * (blank) and for one that could not be rendered (recorded in {@link failures}). Never throws.
   */
  async imageOf(page: PDFPageProxy): Promise<PageImage | undefined> {
    // A breach while reading the text is the caller's to report (the task fails with TOO_LARGE).
    if (this.guard?.exceeded) return undefined;
    if (this.stopped) {
      // Not even looked at: reading the operator list decodes the page's images.
      this.failures.push({ page: page.pageNumber, message: `not rendered: ${this.stopped}` });
      return undefined;
    }
    try {
      // The operator list is built with the page's images decoded (PDF.js skips one it cannot decode).
      const { fnArray } = await page.getOperatorList();
      if (this.guard?.exceeded) throw new Error("decoding the page's images needs more than the buffer memory limit");
      if (!fnArray.some((op) => this.imageOps.has(op))) return undefined;
      const data = (await this.render(page)).toString('base64');
      if (this.guard?.exceeded) throw new Error('rendering the page needs more than the buffer memory limit');
      if (this.bytes + data.length > this.options.maxBytes) {
        this.stopped = `the task's page images reached the limit of ${this.options.maxBytes} bytes`;
        throw new Error(this.stopped);
      }
      this.bytes += data.length;
      return { mimeType: 'image/png', data };
    } catch (err) {
      if (this.guard?.exceeded) {
        // Only this page's image was refused: the text of the rest is unaffected. Later scans of
        // the task would likely hit the limit again, so none is tried.
        this.guard.reset();
        this.stopped ??= 'an earlier page needed more than the buffer memory limit to render';
      }
      this.failures.push({ page: page.pageNumber, message: err instanceof Error ? err.message : String(err) });
      return undefined;
    }
  }

  /** One line for the extractor's log when some scanned pages got no image; undefined otherwise. */
  report(): string | undefined {
    if (this.failures.length === 0) return undefined;
    const shown = this.failures.slice(0, 10).map((f) => `page ${f.page}: ${f.message}`);
    const more = this.failures.length > shown.length ? ` (and ${this.failures.length - shown.length} more)` : '';
    return `scanned pages left without an image: ${shown.join('; ')}${more}\n`;
  }

  private async render(page: PDFPageProxy): Promise<Buffer> {
    const { createCanvas } = await loadCanvas();
    const unit = page.getViewport({ scale: 1 });
    if (!(unit.width > 0 && unit.height > 0)) throw new Error(`the page has no area (${unit.width} x ${unit.height})`);
    const viewport = page.getViewport({ scale: renderScale(unit.width, unit.height, this.options) });
    // Rounded down, so the pixel cap holds.
    const canvas = createCanvas(Math.max(1, Math.floor(viewport.width)), Math.max(1, Math.floor(viewport.height)));
    await page.render({ canvas: canvas as unknown as RenderCanvas, viewport }).promise;
    return canvas.encode('png');
  }
}
