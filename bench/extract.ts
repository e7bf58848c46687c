/**
 * PDF extraction: our extractor (the real createPdfExtractor path, isolation on: PDFium in
 * PDF_THREADS worker processes, limits, deadline) against poppler's `pdftotext` (one process) on
 * the same two generated 1000-page PDFs, measured in the same run so that the ratio means the same
 * on any machine; pdf.js (the fallback engine, in this process) measured alongside. Run:
 * `pnpm bench:extract`.
 *
 * Prints, per file, pages/s as the median of 5 interleaved runs after a warm-up (all runs shown),
 * and the ratio; then the text similarity to pdftotext of both engines on the generated files and
 * of ours on every text file of ../shared/corpus/; then the rendering of scanned pages (pages/s of
 * a 40-page scan at 150 dpi). The headline line is the embedded-font ratio, e.g.
 * `embedded-ttf ratio (ours/pdftotext, median of 5): 0.72`.
 *
 * Similarity: the Dice coefficient of the two texts' word-trigram multisets (1 = the same words in
 * the same order; each swapped or missing word costs up to three trigrams), whitespace ignored.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../packages/core/src/config.js';
import { createPdfExtractor } from '../packages/core/src/pdf/extractor.js';
import { openWithPdfjs } from '../packages/core/src/pdf/pdfjs-fallback.js';
import { createLogger } from '../packages/core/src/telemetry/logger.js';
import { writePdf } from '../packages/testkit/src/pdf/generate.js';

const PAGES = 1000;
const SCANNED = 40;
const RUNS = 5;
const here = path.dirname(fileURLToPath(import.meta.url));
const outDir = path.join(here, '.out');
const corpusDir = path.resolve(here, '../../shared/corpus');
/**
 * Scanned-page rendering before PDFium (pdf.js + @napi-rs/canvas, commit 2a923ab) on this same
 * scan, this machine, the same extractor path: median of 5 runs (5.90, 6.18, 5.93, 5.26, 5.36 s
 * for 40 pages). Kept as a figure: that code is gone.
 */
const RENDER_BEFORE_PAGES_PER_S = 6.8;

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

async function timed(fn: () => Promise<unknown> | unknown): Promise<number> {
  const started = performance.now();
  await fn();
  return (performance.now() - started) / 1000;
}

/** Dice coefficient of the word-trigram multisets of two texts. */
export function similarity(a: string, b: string): number {
  const grams = (text: string) => {
    const words = text.split(/\s+/).filter(Boolean);
    const counts = new Map<string, number>();
    if (words.length < 3 && words.length > 0) counts.set(words.join(' '), 1);
    for (let i = 0; i + 2 < words.length; i++) {
      const g = `${words[i]} ${words[i + 1]} ${words[i + 2]}`;
      counts.set(g, (counts.get(g) ?? 0) + 1);
    }
    return counts;
  };
  const ga = grams(a);
  const gb = grams(b);
  let total = 0;
  let common = 0;
  for (const n of ga.values()) total += n;
  for (const n of gb.values()) total += n;
  if (total === 0) return 1;
  for (const [g, n] of ga) common += Math.min(n, gb.get(g) ?? 0);
  return (2 * common) / total;
}

const pdftotextOf = (file: string): string | undefined => {
  const r = spawnSync('pdftotext', ['-q', file, '-'], { encoding: 'utf8', timeout: 15_000, maxBuffer: 256 << 20 });
  return r.status === 0 ? r.stdout : undefined;
};

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
  const scanned = path.join(outDir, `scanned-${SCANNED}.pdf`);
  await writePdf(scanned, { pages: SCANNED, seed: 7, imageOnlyPages: Array.from({ length: SCANNED }, (_, i) => i + 1) });

  const config = loadConfig({ ...process.env, PDF_OCR: 'off' });
  const logger = createLogger({ service: 'bench', level: 'warn' });
  const extractor = createPdfExtractor(config, { logger });
  console.log(
    `ours: createPdfExtractor (PDFium) with PDF_THREADS=${config.PDF_THREADS} worker processes, PDF_SLICE_PAGES=${config.PDF_SLICE_PAGES}, ` +
      `heap ${config.PDF_MAX_HEAP_MB} MiB, buffers and PDFium memory ${config.PDF_MAX_BUFFER_MB} MiB, deadline ${config.PDF_TIMEOUT_MS} ms; ` +
      `pdftotext: one process; pdf.js: in this process, one document at a time; medians of ${RUNS} interleaved runs`,
  );
  const oursText = async (file: string, expectPages = PAGES) => {
    const result = await extractor.extract(file, { maxPages: Math.max(PAGES, expectPages) });
    if (result.pages.length !== expectPages) throw new Error(`unexpected extraction result for ${file}`);
    return result.pages.map((p) => p.text).join('\n');
  };
  const pdfjsText = async (file: string) => {
    const doc = await openWithPdfjs(readFileSync(file));
    try {
      const pages: string[] = [];
      for (let n = 1; n <= doc.pageCount; n++) pages.push(await doc.pageText(n, 1 << 26));
      return pages.join('\n');
    } finally {
      await doc.close();
    }
  };
  const pdftotext = (file: string) => execFileSync('pdftotext', [file, path.join(outDir, 'pdftotext.txt')]);

  const ratios: Record<string, number> = {};
  try {
    for (const [font, file] of Object.entries(files)) {
      // Warm-up: worker processes started, code paths compiled, file in the page cache.
      await oursText(file);
      pdftotext(file);
      await pdfjsText(file);
      const ours: number[] = [];
      const poppler: number[] = [];
      const pdfjs: number[] = [];
      for (let run = 0; run < RUNS; run++) {
        // Interleaved, so that load from other processes affects every side alike.
        ours.push(await timed(() => oursText(file)));
        poppler.push(await timed(() => pdftotext(file)));
        pdfjs.push(await timed(() => pdfjsText(file)));
      }
      const rate = (s: number[]) => PAGES / median(s);
      const runs = (s: number[]) => s.map((x) => x.toFixed(2)).join(', ');
      ratios[font] = rate(ours) / rate(poppler);
      console.log(
        `${font}: ours ${rate(ours).toFixed(0)} pages/s (runs ${runs(ours)} s), pdftotext ${rate(poppler).toFixed(0)} pages/s (runs ${runs(poppler)} s), ` +
          `pdf.js ${rate(pdfjs).toFixed(0)} pages/s (runs ${runs(pdfjs)} s): ratio ${ratios[font]?.toFixed(2)}`,
      );
      const reference = pdftotextOf(file) ?? '';
      console.log(`${font} similarity to pdftotext: ours (PDFium) ${similarity(await oursText(file), reference).toFixed(4)}, pdf.js ${similarity(await pdfjsText(file), reference).toFixed(4)}`);
    }

    // The corpus: every file pdftotext and we both read, with text on either side.
    let corpus: string[] = [];
    try {
      corpus = ['pdfjs', 'qpdf'].flatMap((d) => readdirSync(path.join(corpusDir, d)).filter((f) => f.endsWith('.pdf')).map((f) => path.join(d, f))).sort();
    } catch {
      console.log(`corpus similarity: SKIPPED, ${corpusDir} is absent`);
    }
    if (corpus.length > 0) {
      const figures: Array<{ name: string; sim: number }> = [];
      for (const name of corpus) {
        const reference = pdftotextOf(path.join(corpusDir, name));
        if (reference === undefined) continue;
        let ours: string;
        try {
          const result = await extractor.extract(path.join(corpusDir, name), { maxPages: config.MAX_PAGES });
          ours = result.pages.map((p) => p.text).join('\n');
        } catch {
          continue;
        }
        if (!/\S/.test(reference) && !/\S/.test(ours)) continue;
        figures.push({ name, sim: similarity(ours, reference) });
      }
      const sims = figures.map((f) => f.sim);
      console.log(`corpus similarity to pdftotext, per file (${figures.length} files with text that both read):`);
      for (let i = 0; i < figures.length; i += 4) {
        console.log(`  ${figures.slice(i, i + 4).map((f) => `${f.name} ${f.sim.toFixed(3)}`).join('  ')}`);
      }
      console.log(
        `corpus similarity: median ${median(sims).toFixed(3)}, mean ${(sims.reduce((a, b) => a + b, 0) / sims.length).toFixed(3)}, ` +
          `${sims.filter((s) => s >= 0.9).length} of ${sims.length} at 0.9 or more, ${sims.filter((s) => s < 0.5).length} below 0.5`,
      );
    }
  } finally {
    await extractor.close();
  }

  // Scanned pages: rendered to PNG at the default 150 dpi.
  const ocr = createPdfExtractor(loadConfig({ ...process.env, PDF_OCR: 'on' }), { logger });
  try {
    const render = async () => {
      const result = await ocr.extract(scanned, { maxPages: SCANNED });
      if (result.pages.filter((p) => p.image).length !== SCANNED) throw new Error('not every scanned page was rendered');
    };
    await render();
    const seconds: number[] = [];
    for (let run = 0; run < RUNS; run++) seconds.push(await timed(render));
    const rate = SCANNED / median(seconds);
    const before = RENDER_BEFORE_PAGES_PER_S > 0 ? `; before PDFium (pdf.js + @napi-rs/canvas, same scan and machine): ${RENDER_BEFORE_PAGES_PER_S} pages/s, x${(rate / RENDER_BEFORE_PAGES_PER_S).toFixed(1)}` : '';
    console.log(`scanned-page rendering (${SCANNED} pages, 150 dpi, PNG, ${config.PDF_THREADS} processes): ${rate.toFixed(1)} pages/s (runs ${seconds.map((s) => s.toFixed(2)).join(', ')} s)${before}`);
  } finally {
    await ocr.close();
  }
  console.log(`helvetica ratio (ours/pdftotext, median of ${RUNS}): ${ratios.helvetica?.toFixed(2)}`);
  console.log(`embedded-ttf ratio (ours/pdftotext, median of ${RUNS}): ${ratios['embedded-ttf']?.toFixed(2)}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
