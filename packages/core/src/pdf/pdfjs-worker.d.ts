// pdfjs-dist ships no types for its worker bundle; extract-thread.ts only hands the module to
// PDF.js (globalThis.pdfjsWorker), which reads WorkerMessageHandler from it.
declare module 'pdfjs-dist/legacy/build/pdf.worker.mjs' {
  export const WorkerMessageHandler: unknown;
}
