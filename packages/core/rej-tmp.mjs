import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
globalThis.pdfjsWorker = await import('pdfjs-dist/legacy/build/pdf.worker.mjs');
const pdfjs = await import('pdfjs-dist/legacy/build/pdf.mjs');
let current = '';
const hits = new Map();
process.on('unhandledRejection', (r) => { const k = current; hits.set(k, [...(hits.get(k) ?? []), String(r?.message ?? r).slice(0, 120)]); });
const mode = process.argv[2];
const root = path.resolve('node_modules/pdfjs-dist');
const files = ['pdfjs', 'qpdf'].flatMap(d => readdirSync(`/work/shared/corpus/${d}`).map(f => `/work/shared/corpus/${d}/${f}`));
for (const f of files) {
  current = f;
  const opts = mode === 'defaults' ? {} : { isEvalSupported: false, disableFontFace: true, useSystemFonts: false, cMapUrl: root + '/cmaps/', cMapPacked: true, standardFontDataUrl: root + '/standard_fonts/' };
  const task = pdfjs.getDocument({ data: new Uint8Array(readFileSync(f)), verbosity: 0, ...opts });
  try {
    const doc = await Promise.race([task.promise, new Promise((_, rej) => setTimeout(() => rej(new Error('timeout')), 5000))]);
    await doc.getMetadata().catch(() => {});
    for (let i = 1; i <= Math.min(doc.numPages, 50); i++) {
      try {
        const page = await doc.getPage(i);
        await page.getTextContent();
        if (mode === 'more') { await page.getAnnotations().catch(()=>{}); await page.getOperatorList().catch(()=>{}); }
        page.cleanup();
      } catch {}
    }
  } catch {}
  await task.destroy().catch(() => {});
  await new Promise(r => setTimeout(r, 30));
}
console.log(mode, [...hits]);
