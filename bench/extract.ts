/**
 * PDF text extraction throughput: our extractor (the real createPdfExtractor path, isolation
 * on: worker processes, limits, deadline) against poppler's `pdftotext`, on the same two
 * generated 1000-page PDFs, measured in the same run so that the ratio is meaningful on any
 * machine. Run: `pnpm bench:extract`.
 *
 * Prints, per file, pages/s of ours and of pdftotext (best of 3 interleaved runs after a
 * warm-up; the best run is the one least disturbed by other load on a shared machine, the
 * median is printed too) and the ratio; the last line is the embedded-font ratio, e.g.
 * `embedded-ttf ratio (ours/pdftotext): 0.42`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../packages/core/src/config.js';
import { createPdfExtractor } from '../packages/core/src/pdf/extractor.js';
import { createLogger } from '../packages/core/src/telemetry/logger.js';
import { writePdf } from '../packages/testkit/src/pdf/generate.js';

const PAGES = 1000;
const RUNS = 3;
const outDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '.out');

function hasPdftotext(): boolean {
  return spawnSync('pdftotext', ['-v'], { stdio: 'ignore' }).error === undefined;
}

function ensurePdftotext(): void {
  if (hasPdftotext()) return;
  console.log('pdftotext is missing: installing poppler-utils with apt-get');
  execFileSync('apt-get', ['update'], { stdio: 'inherit' });
  execFileSync('apt-get', ['install', '-y', 'poppler-utils'], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  if (!hasPdftotext()) throw new Error('pdftotext is still missing after installing poppler-utils');
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

const best = (values: number[]): number => Math.min(...values);

async function timed(fn: () => Promise<unknown> | unknown): Promise<number> {
  const started = performance.now();
  await fn();
  return (performance.now() - started) / 1000;
}

async function main(): Promise<void> {
  ensurePdftotext();
  mkdirSync(outDir, { recursive: true });
  const files = {
    'embedded-ttf': path.join(outDir, 'embedded-ttf-1000.pdf'),
    helvetica: path.join(outDir, 'helvetica-1000.pdf'),
  } as const;
  for (const [font, file] of Object.entries(files) as [keyof typeof files, string][]) {
    const seconds = await timed(() => writePdf(file, { pages: PAGES, font, seed: 42 }));
    console.log(`generated ${path.relative(process.cwd(), file)} (${PAGES} pages, ${font}) in ${seconds.toFixed(1)} s`);
  }

  const config = loadConfig(process.env);
  const extractor = createPdfExtractor(config, { logger: createLogger({ service: 'bench', level: 'warn' }) });
  console.log(
    `ours: createPdfExtractor with PDF_THREADS=${config.PDF_THREADS} worker processes, PDF_SLICE_PAGES=${config.PDF_SLICE_PAGES}, ` +
      `heap ${config.PDF_MAX_HEAP_MB} MiB, buffers ${config.PDF_MAX_BUFFER_MB} MiB, deadline ${config.PDF_TIMEOUT_MS} ms`,
  );
  const ours = async (file: string) => {
    const result = await extractor.extract(file, { maxPages: PAGES });
    if (result.pages.length !== PAGES || !result.pages[PAGES - 1]?.text.includes(`Page ${PAGES}`)) {
      throw new Error(`unexpected extraction result for ${file}`);
    }
  };
  const pdftotext = (file: string) => execFileSync('pdftotext', [file, path.join(outDir, 'pdftotext.txt')]);

  const ratios: Record<string, number> = {};
  try {
    for (const [font, file] of Object.entries(files)) {
      // Warm-up: worker processes started, code paths compiled, file in the page cache.
      await ours(file);
      pdftotext(file);
      const oursSeconds: number[] = [];
      const popplerSeconds: number[] = [];
      for (let run = 0; run < RUNS; run++) {
        // Interleaved, so that load from other processes affects both sides alike.
        oursSeconds.push(await timed(() => ours(file)));
        popplerSeconds.push(await timed(() => pdftotext(file)));
      }
      const oursRate = PAGES / best(oursSeconds);
      const popplerRate = PAGES / best(popplerSeconds);
      ratios[font] = oursRate / popplerRate;
      const medianRatio = median(popplerSeconds) / median(oursSeconds);
      console.log(
        `${font}: ours ${oursRate.toFixed(0)} pages/s (runs ${oursSeconds.map((s) => s.toFixed(2)).join(', ')} s), ` +
          `pdftotext ${popplerRate.toFixed(0)} pages/s (runs ${popplerSeconds.map((s) => s.toFixed(2)).join(', ')} s), ` +
          `ratio ${ratios[font]?.toFixed(2)} (of medians ${medianRatio.toFixed(2)})`,
      );
    }
  } finally {
    await extractor.close();
  }
  console.log(`helvetica ratio (ours/pdftotext): ${ratios.helvetica?.toFixed(2)}`);
  console.log(`embedded-ttf ratio (ours/pdftotext): ${ratios['embedded-ttf']?.toFixed(2)}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
