import { readFileSync } from 'node:fs';
const nativePush = Array.prototype.push;
const workerMod = await import('pdfjs-dist/legacy/build/pdf.worker.mjs');
globalThis.pdfjsWorker = workerMod;
const pdfjs = await import('pdfjs-dist/legacy/build/pdf.mjs');
Array.prototype.push = nativePush;
class DirectPort {
  #listeners = new Set(); #deferred = Promise.resolve();
  postMessage(obj) { const event = { data: obj }; this.#deferred.then(() => { for (const l of this.#listeners) l.call(this, event); }); }
  addEventListener(_n, l) { this.#listeners.add(l); }
  removeEventListener(_n, l) { this.#listeners.delete(l); }
  terminate() { this.#listeners.clear(); }
}
const file = readFileSync('/work/main/bench/.out/embedded-ttf-1000.pdf');
const mode = process.argv[2];
let chars = 0;
for (let rep = 0; rep < 2; rep++) {
  const c0 = process.cpuUsage();
  let worker;
  if (mode === 'direct') { const port = new DirectPort(); workerMod.WorkerMessageHandler.initializeFromPort(port); worker = new pdfjs.PDFWorker({ port }); }
  const task = pdfjs.getDocument({ data: new Uint8Array(file), isEvalSupported: false, disableFontFace: true, useSystemFonts: false, verbosity: 0, ...(worker ? { worker } : {}) });
  const doc = await task.promise;
  for (let i = 1; i <= doc.numPages; i++) {
    const page = await doc.getPage(i);
    const r = page.streamTextContent().getReader();
    for (;;) { const { value, done } = await r.read(); if (done) break; for (const it of value.items) chars += it.str.length; }
    page.cleanup();
  }
  await task.destroy(); worker?.destroy();
  const c = process.cpuUsage(c0);
  console.log(mode, 'cpu ms', ((c.user + c.system) / 1000).toFixed(0), chars);
}
