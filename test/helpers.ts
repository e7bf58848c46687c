/** Helpers of the whole-system tests. */
import { generatePdf, type Pipeline } from '@docorch/testkit';

/** Submits a generated PDF asynchronously; returns the document id. */
export async function submitGenerated(
  pipeline: Pipeline,
  pages: number,
  fields: Record<string, string> = {},
): Promise<string> {
  const pdf = await generatePdf({ pages, seed: pages });
  const form = new FormData();
  form.set('mode', 'async');
  for (const [k, v] of Object.entries(fields)) form.set(k, v);
  form.set('file', new Blob([pdf.bytes], { type: 'application/pdf' }), `${pages}-pages.pdf`);
  const res = await fetch(`${pipeline.api.baseUrl}/v1/documents`, {
    method: 'POST',
    body: form,
    headers: { authorization: `Bearer ${pipeline.apiKey}` },
  });
  if (res.status !== 202) throw new Error(`submit answered ${res.status}: ${await res.text()}`);
  const body = (await res.json()) as { id: string };
  return body.id;
}

/** The public status view of a document. */
export interface StatusView {
  status: string;
  progress: { chunksTotal: number; chunksSucceeded: number; chunksFailed: number; percent: number };
  [k: string]: unknown;
}

export async function getStatus(pipeline: Pipeline, id: string, wait = 0): Promise<StatusView> {
  const res = await fetch(`${pipeline.api.baseUrl}/v1/documents/${id}${wait ? `?wait=${wait}` : ''}`, {
    headers: { authorization: `Bearer ${pipeline.apiKey}` },
  });
  if (res.status !== 200) throw new Error(`status answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as StatusView;
}

export async function getResult(pipeline: Pipeline, id: string): Promise<Record<string, any>> {
  const res = await fetch(`${pipeline.api.baseUrl}/v1/documents/${id}/result`, { headers: { authorization: `Bearer ${pipeline.apiKey}` } });
  if (res.status !== 200) throw new Error(`result answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as Record<string, any>;
}

const TERMINAL = new Set(['completed', 'completed_with_errors', 'failed', 'cancelled']);

/** Polls until the document is terminal, recording each observed status; fails after `timeoutMs`. */
export async function waitForTerminal(
  pipeline: Pipeline,
  id: string,
  timeoutMs: number,
  onPoll?: (view: StatusView) => void,
): Promise<StatusView> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const view = await getStatus(pipeline, id);
    onPoll?.(view);
    if (TERMINAL.has(view.status)) return view;
    if (Date.now() > deadline) throw new Error(`document ${id} still ${view.status} after ${timeoutMs} ms: ${JSON.stringify(view.progress)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
