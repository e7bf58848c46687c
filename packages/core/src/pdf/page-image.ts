/**
 * Images of scanned pages, made inside a PDF worker process (./extract-thread.ts): a page whose
 * text layer is empty but which paints an image (a scan) is rendered by PDFium to 8-bit gray
 * pixels and encoded as PNG (pngjs: node's zlib; the "up" filter, measured here at about 10 ms a
 * page where adaptive filtering took 38 and fast-png 50), so that a multimodal analyzer can read
 * it (issue 4). Gray:
 * a third of the bytes of colour for the same text, and Gemini counts an image by its size, not
 * its colours. A blank page (no image, no text) gets none.
 *
 * It never fails the document: a page that cannot be rendered (a PDFium error, the memory limit,
 * the task's image budget spent) is returned without an image, as any page without a text layer,
 * and the reason is written to stderr, which the extractor logs with the file.
 */
import { PNG } from 'pngjs';
import type { PageImage } from '../analysis/types.js';
import type { MemoryGuard } from './memory-guard.js';
import { PdfiumFault, type PdfiumDocument } from './pdfium.js';
import type { OcrTaskOptions, PageFailure } from './protocol.js';

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

/** Renders the scanned pages of one task, within the task's image budget. */
export class PageImager {
  /** Scanned pages that got no image, with the reason. */
  readonly failures: PageFailure[] = [];
  private bytes = 0;
  /** Set once no further page of the task is rendered (budget spent, memory limit reached). */
  private stopped: string | undefined;

  /** @param guard - the process's buffer guard; a breach while encoding costs the image, not the task. */
  constructor(
    private readonly options: OcrTaskOptions,
    private readonly guard: MemoryGuard | undefined,
  ) {}

  /**
   * The image of a scanned page of `width` x `height` PDF units, or none (the reason recorded in
   * {@link failures}). `fault`: PDFium failed inside while rendering, and the document must be
   * opened again on a fresh instance before its next page is read. Never throws.
   */
  async imageOf(doc: PdfiumDocument, pageNumber: number, width: number, height: number): Promise<{ image?: PageImage; fault?: true }> {
    if (this.stopped) {
      this.failures.push({ page: pageNumber, message: `not rendered: ${this.stopped}` });
      return {};
    }
    try {
      if (!(width > 0 && height > 0)) throw new Error(`the page has no area (${width} x ${height})`);
      const bitmap = doc.render(pageNumber, renderScale(width, height, this.options));
      const data = encodeGrayPng(bitmap.width, bitmap.height, bitmap.data).toString('base64');
      if (this.guard?.exceeded) throw new Error('encoding the page needs more than the buffer memory limit');
      if (this.bytes + data.length > this.options.maxBytes) {
        this.stopped = `the task's page images reached the limit of ${this.options.maxBytes} bytes`;
        throw new Error(this.stopped);
      }
      this.bytes += data.length;
      return { image: { mimeType: 'image/png', data } };
    } catch (err) {
      if (this.guard?.exceeded) {
        // Only this page's image was refused: the text of the rest is unaffected.
        this.guard.reset();
        this.stopped ??= 'an earlier page needed more than the buffer memory limit to render';
      }
      const fault = err instanceof PdfiumFault;
      if (fault) this.stopped ??= 'an earlier page needed more than the memory limit to render';
      this.failures.push({ page: pageNumber, message: fault ? `rendering failed inside PDFium (${err.atMemoryLimit ? 'memory limit' : err.message})` : err instanceof Error ? err.message : String(err) });
      return fault ? { fault: true } : {};
    }
  }

  /** One line for the extractor's log when some scanned pages got no image; undefined otherwise. */
  report(): string | undefined {
    if (this.failures.length === 0) return undefined;
    const shown = this.failures.slice(0, 10).map((f) => `page ${f.page}: ${f.message}`);
    const more = this.failures.length > shown.length ? ` (and ${this.failures.length - shown.length} more)` : '';
    return `scanned pages left without an image: ${shown.join('; ')}${more}\n`;
  }
}

/** An 8-bit gray PNG of `pixels` (one byte a pixel, rows top to bottom). */
export function encodeGrayPng(width: number, height: number, pixels: Uint8Array): Buffer {
  const png = new PNG({ width, height, colorType: 0, inputColorType: 0, inputHasAlpha: false, bitDepth: 8 });
  png.data = Buffer.from(pixels.buffer, pixels.byteOffset, pixels.byteLength);
  return PNG.sync.write(png, { colorType: 0, inputColorType: 0, inputHasAlpha: false, bitDepth: 8, filterType: 2, deflateLevel: 3 });
}
