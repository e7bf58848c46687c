/** A validated upload, as the API hands it to the pipeline. */
import { randomUUID } from 'node:crypto';
import type { AnalysisKind } from '../analysis/types.js';

export interface Submission {
  tenantId: string;
  /** Path of the uploaded file on local disk (removed by the caller afterwards). */
  filePath: string;
  filename: string;
  contentType: string;
  sizeBytes: number;
  sha256: string;
  /** Page selection, e.g. `1-3,7`; all pages when absent. */
  pages?: string;
  pagesPerChunk: number;
  analyses: AnalysisKind[];
  webhookUrl?: string;
}

/** New document id: time-ordered prefix (sortable in logs) + 96 random bits. */
export function newDocumentId(now = Date.now()): string {
  return `${now.toString(36).padStart(9, '0')}${randomUUID().replaceAll('-', '').slice(0, 24)}`;
}
