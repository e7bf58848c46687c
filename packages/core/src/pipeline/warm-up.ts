/**
 * Start-up warm-up: runs one tiny PDF through the extractor and one sample through the analyzer,
 * so that worker processes and threads are started and their modules compiled before the process
 * reports ready; the first real request does not pay for it.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { PipelineContext } from './context.js';

/** A minimal valid one-page PDF with one line of text (xref offsets computed below). */
function tinyPdf(): Buffer {
  const objects = [
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 144] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>',
    '<< /Length 44 >>\nstream\nBT /F1 12 Tf 20 100 Td (Warm up.) Tj ET\nendstream',
    '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>',
  ];
  let body = '%PDF-1.4\n';
  const offsets: number[] = [];
  objects.forEach((obj, i) => {
    offsets.push(Buffer.byteLength(body));
    body += `${i + 1} 0 obj\n${obj}\nendobj\n`;
  });
  const xref = Buffer.byteLength(body);
  body += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`;
  for (const off of offsets) body += `${String(off).padStart(10, '0')} 00000 n \n`;
  body += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(body, 'latin1');
}

/** Warms the extractor and the local analyzer (a remote analyzer is not called: it costs quota). */
export async function warmUp(ctx: PipelineContext, options: { extractor?: boolean } = {}): Promise<void> {
  const started = Date.now();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'docorch-warmup-'));
  try {
    if (options.extractor !== false) {
      const file = path.join(dir, 'warmup.pdf');
      await writeFile(file, tinyPdf());
      // Every PDF worker process, not only the first: documents of different tenants are
      // extracted side by side (tasks sent together go to different workers). No tenant is
      // named, so the per-tenant cap on PDF workers does not hold any of them back.
      await Promise.all(Array.from({ length: ctx.config.PDF_THREADS }, () => ctx.extractor.extract(file, { maxPages: 1 })));
    }
    if (ctx.analyzer.name.startsWith('local/')) {
      await ctx.analyzer.analyzeChunk({
        tenantId: 'warmup',
        documentId: 'warmup',
        chunkIndex: 0,
        pages: [{ page: 1, text: 'Maria Gonzalez visited Paris on March 3, 2024. The team was delighted with the results.' }],
        analyses: ['summary', 'entities', 'keyPoints', 'sentiment'],
      });
    }
    ctx.logger.debug({ ms: Date.now() - started }, 'warm-up done');
  } catch (err) {
    // Not fatal: the first request will start what is missing.
    ctx.logger.warn({ err }, 'warm-up failed');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
