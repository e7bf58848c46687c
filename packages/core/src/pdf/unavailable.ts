import { DocorchError } from '../errors.js';
import type { PdfExtractor } from './types.js';

/** A PdfExtractor for processes that never parse PDFs (the aggregator): every call fails clearly. */
export function unavailableExtractor(reason: string): PdfExtractor {
  const fail = () => Promise.reject(new DocorchError('INTERNAL', `PDF extraction is not available here: ${reason}`));
  return { inspect: fail, extract: fail, close: () => Promise.resolve() };
}
