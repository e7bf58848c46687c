/**
 * The client commands of `docorch` (on @docorch/client): analyze, status, result, list, cancel,
 * configure. They talk to the API with an API key; the admin commands (admin.ts) talk to the tables
 * with AWS credentials. Progress goes to stderr (a bar per document on a terminal, plain lines
 * otherwise); results go to stdout or --out, so `docorch result ID > out.json` is clean.
 *
 * Exit codes: 0 completed, 2 completed_with_errors, 1 failed, cancelled or an error, 3 usage.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import cliProgress from 'cli-progress';
import pLimit from 'p-limit';
import { DocorchApiError, DocorchClient, DocumentFailedError, type Document, type DocumentResult, type ProgressUpdate } from '@docorch/client';
import { resolveConnection, writeProfile } from './profile.js';

/** Where output goes, and whether stderr is a terminal (tests capture both). */
export interface ClientIo {
  out: (text: string) => void;
  err: (text: string) => void;
  /** The stream progress is drawn on (a bar when it is a TTY). */
  progress: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  env: NodeJS.ProcessEnv;
  cwd: string;
}

export const CLIENT_COMMANDS = new Set(['analyze', 'status', 'result', 'list', 'cancel', 'configure']);

const CONNECTION_HELP = `Connection (first found): --url URL --api-key KEY; DOCORCH_URL and DOCORCH_API_KEY;
the profile --profile NAME (DOCORCH_PROFILE, default "default") in ~/.config/docorch/credentials.json
(DOCORCH_CONFIG), written by "docorch configure" with mode 0600.`;

export const CLIENT_HELP: Record<string, string> = {
  '': `Using the API (an API key):
  analyze FILE... [--wait] [--pages 1-3] [--mode auto|sync|async] [--pages-per-chunk N]
          [--json] [--out DIR] [--concurrency N]   upload PDFs; with --wait, a progress bar each
  status ID [--json]                               a document's status and progress
  result ID                                        the result JSON (docorch result ID > out.json)
  list [--limit N] [--json]                        your documents, newest first
  cancel ID [--json]                               cancel a running document / delete a finished one
  configure --url URL --api-key KEY [--profile P]  save a connection profile (mode 0600)`,
  analyze: `docorch analyze FILE... [--wait] [--pages 1-3,7] [--mode auto|sync|async] [--pages-per-chunk N] [--json] [--out DIR] [--concurrency N]
Uploads each PDF (streamed from disk). Small files are answered at once; with --wait, large ones
are followed to the end with a progress bar each (chunks done of total, pages, elapsed, ETA) on a
terminal, plain lines otherwise.
  --wait               wait for each document's result
  --pages SEL          pages to analyse, e.g. 1-3,7 (default all)
  --mode M             auto (default), sync or async
  --pages-per-chunk N  pages per model call on the async path
  --out DIR            write each result to DIR/<file>.json
  --json               print the results (or, without --wait, the ids) as JSON on stdout
  --concurrency N      documents uploaded and followed at once (default 3)
Exit: 0 all completed, 2 some completed_with_errors, 1 a document failed or an error, 3 usage.

${CONNECTION_HELP}`,
  status: `docorch status ID [--json]
Shows a document's status, progress and pages.

${CONNECTION_HELP}`,
  result: `docorch result ID
Prints the document's result as JSON (exit 1 with RESULT_NOT_READY while it runs).

${CONNECTION_HELP}`,
  list: `docorch list [--limit N] [--json]
Lists your documents, newest first (all of them, or the first N).

${CONNECTION_HELP}`,
  cancel: `docorch cancel ID [--json]
Cancels a running document (its pending work stops, its data is deleted) or deletes a finished one's data.

${CONNECTION_HELP}`,
  configure: `docorch configure --url URL --api-key KEY [--profile NAME]
Saves a connection profile in ~/.config/docorch/credentials.json (DOCORCH_CONFIG), mode 0600.`,
};

class UsageError extends Error {}

const EXIT = { completed: 0, completed_with_errors: 2 } as Record<string, number>;
const exitFor = (status: string) => EXIT[status] ?? 1;

function seconds(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

/** One document's progress display. */
interface Tracker {
  update(u: { status: string; done: number; total: number; pages: string; elapsedMs: number }): void;
  /** The document's last line; `status` also ends its bar with that status (a terminal). */
  finish(line: string, status?: string): void;
}

/** Bars on a terminal (cli-progress), plain lines otherwise. */
class ProgressDisplay {
  private readonly multi: cliProgress.MultiBar | undefined;
  private readonly lines: string[] = [];
  /** Redraws the elapsed time of bars that have no news. */
  private readonly ticking = new Set<() => void>();
  private readonly timer: NodeJS.Timeout | undefined;

  constructor(private readonly io: ClientIo) {
    if (io.progress.isTTY) {
      this.multi = new cliProgress.MultiBar(
        {
          stream: io.progress as NodeJS.WritableStream,
          format: '{name} |{bar}| {done}/{of} chunks | {pages} | {spent} | ETA {left} | {status}',
          barsize: 24,
          hideCursor: true,
          clearOnComplete: false,
          stopOnComplete: false,
          fps: 8,
          autopadding: true,
        },
        cliProgress.Presets.shades_classic,
      );
      this.timer = setInterval(() => this.ticking.forEach((tick) => tick()), 1_000);
      this.timer.unref();
    }
  }

  track(name: string): Tracker {
    const label = name.length > 24 ? `${name.slice(0, 21)}...` : name.padEnd(12);
    if (this.multi) {
      // Payload names differ from cli-progress's own tokens (total, eta, ...), which it computes itself.
      const bar = this.multi.create(1, 0, { name: label, done: 0, of: '?', pages: 'pages ?', spent: '0s', left: '?', status: 'uploading' });
      const started = Date.now();
      const tick = () => bar.update({ spent: seconds(Date.now() - started) });
      this.ticking.add(tick);
      return {
        update: (u) => {
          const eta = u.done > 0 && u.done < u.total ? seconds((u.elapsedMs / u.done) * (u.total - u.done)) : u.done >= u.total && u.total > 0 ? '0s' : '?';
          bar.setTotal(Math.max(1, u.total));
          bar.update(u.done, { done: u.done, of: u.total || '?', pages: u.pages, spent: seconds(u.elapsedMs), left: eta, status: u.status });
        },
        finish: (line, status) => {
          this.ticking.delete(tick);
          if (status) bar.update({ status });
          this.lines.push(line);
        },
      };
    }
    let last = '';
    return {
      update: (u) => {
        const chunks = u.total ? ` ${u.done}/${u.total} chunks (${Math.floor((u.done / u.total) * 100)}%)` : '';
        const text = `${name}: ${u.status}${chunks}${u.pages === 'pages ?' ? '' : `, ${u.pages}`}, ${seconds(u.elapsedMs)}`;
        const key = `${u.status} ${u.done}/${u.total}`;
        if (key !== last) this.io.err(`${text}\n`);
        last = key;
      },
      finish: (line) => this.io.err(`${line}\n`),
    };
  }

  stop(): void {
    clearInterval(this.timer);
    if (!this.multi) return;
    this.multi.stop();
    for (const line of this.lines) this.io.err(`${line}\n`);
  }
}

function pagesText(doc: { pages: { total: number | null; selected: number | null; selection: string } } | undefined): string {
  if (!doc || doc.pages.total === null) return 'pages ?';
  return doc.pages.selection === 'all' ? `${doc.pages.total} pages` : `pages ${doc.pages.selection} of ${doc.pages.total}`;
}

/** Runs a client command; returns the exit code. */
export async function runClient(argv: string[], io: ClientIo): Promise<number> {
  const command = argv.find((a) => !a.startsWith('-')) ?? '';
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        url: { type: 'string' },
        'api-key': { type: 'string' },
        profile: { type: 'string' },
        json: { type: 'boolean' },
        wait: { type: 'boolean' },
        pages: { type: 'string' },
        mode: { type: 'string' },
        'pages-per-chunk': { type: 'string' },
        out: { type: 'string' },
        concurrency: { type: 'string' },
        limit: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    io.err(`docorch: ${(err as Error).message}\n\n${CLIENT_HELP[command] ?? CLIENT_HELP['']}\n`);
    return 3;
  }
  const { values } = parsed;
  const args = parsed.positionals.slice(1);
  if (values.help) {
    io.out(`${CLIENT_HELP[command]}\n`);
    return 0;
  }
  try {
    if (command === 'configure') {
      if (!values.url || !values['api-key']) throw new UsageError(`--url and --api-key are required\n\n${CLIENT_HELP.configure}`);
      const file = await writeProfile(io.env, values.profile ?? 'default', { url: values.url, apiKey: values['api-key'] });
      io.out(`saved profile "${values.profile ?? 'default'}" in ${file} (mode 600)\n`);
      return 0;
    }
    if (values.mode !== undefined && !['auto', 'sync', 'async'].includes(values.mode)) throw new UsageError('--mode must be auto, sync or async');
    const int = (name: string, v: string | undefined, min: number): number | undefined => {
      if (v === undefined) return undefined;
      const n = Number(v);
      if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer of at least ${min}`);
      return n;
    };
    const pagesPerChunk = int('pages-per-chunk', values['pages-per-chunk'], 1);
    const concurrency = int('concurrency', values.concurrency, 1) ?? 3;
    const limit = int('limit', values.limit, 1);
    if (command !== 'list' && args.length === 0) throw new UsageError(`missing ${command === 'analyze' ? 'FILE' : 'ID'}\n\n${CLIENT_HELP[command]}`);
    const connection = await resolveConnection({ url: values.url, apiKey: values['api-key'], profile: values.profile }, io.env);
    const client = new DocorchClient({ baseUrl: connection.url, apiKey: connection.apiKey });
    const json = values.json === true;
    switch (command) {
      case 'analyze':
        return await analyze(client, io, args, { json, wait: values.wait === true, out: values.out, pages: values.pages, mode: values.mode as 'auto' | 'sync' | 'async' | undefined, pagesPerChunk, concurrency });
      case 'status': {
        const doc = await client.get(args[0] as string);
        io.out(json ? `${JSON.stringify(doc, null, 2)}\n` : `${doc.id}  ${doc.status}  ${doc.progress.chunksSucceeded + doc.progress.chunksFailed}/${doc.progress.chunksTotal} chunks (${doc.progress.percent}%)  ${pagesText(doc)}  ${doc.filename}${doc.error ? `  ${doc.error.code}: ${doc.error.message}` : ''}\n`);
        return 0;
      }
      case 'result': {
        const result = await client.result(args[0] as string);
        io.out(`${JSON.stringify(result, null, 2)}\n`);
        return exitFor(result.status);
      }
      case 'list': {
        const docs: Document[] = [];
        for await (const d of client.list({ pageSize: Math.min(100, limit ?? 50) })) {
          docs.push(d);
          if (limit !== undefined && docs.length >= limit) break;
        }
        if (json) io.out(`${JSON.stringify(docs, null, 2)}\n`);
        else for (const d of docs) io.out(`${d.id}  ${d.status.padEnd(21)}  ${String(d.progress.percent).padStart(3)}%  ${d.createdAt}  ${d.filename}\n`);
        return 0;
      }
      case 'cancel': {
        const doc = await client.cancel(args[0] as string);
        io.out(json ? `${JSON.stringify(doc ?? { id: args[0], deleted: true }, null, 2)}\n` : doc ? `${doc.id} ${doc.status}\n` : `${args[0]} finished earlier: its data is deleted\n`);
        return 0;
      }
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`docorch: ${err.message}\n`);
      return 3;
    }
    io.err(`docorch: ${err instanceof DocorchApiError ? `${err.code}: ${err.message}` : (err as Error).message}\n`);
    return 1;
  }
}

interface AnalyzeOptions {
  json: boolean;
  wait: boolean;
  out: string | undefined;
  pages: string | undefined;
  mode: 'auto' | 'sync' | 'async' | undefined;
  pagesPerChunk: number | undefined;
  concurrency: number;
}

async function analyze(client: DocorchClient, io: ClientIo, files: string[], o: AnalyzeOptions): Promise<number> {
  const display = new ProgressDisplay(io);
  const limit = pLimit(o.concurrency);
  if (o.out) await mkdir(path.resolve(io.cwd, o.out), { recursive: true });
  const outcomes = await Promise.all(
    files.map((file) =>
      limit(async (): Promise<{ file: string; id?: string; status: string; result?: DocumentResult; saved?: string; error?: string }> => {
        const name = path.basename(file);
        const tracker = display.track(name);
        const started = Date.now();
        let pages = 'pages ?';
        try {
          tracker.update({ status: 'uploading', done: 0, total: 0, pages, elapsedMs: 0 });
          const submitted = await client.submit(path.resolve(io.cwd, file), {
            ...(o.mode ? { mode: o.mode } : {}),
            ...(o.pages ? { pages: o.pages } : {}),
            ...(o.pagesPerChunk !== undefined ? { pagesPerChunk: o.pagesPerChunk } : {}),
            onRetry: (r) =>
              tracker.update({ status: `waiting: ${r.error.code}, retry in ${seconds(r.waitMs)}`, done: 0, total: 0, pages, elapsedMs: Date.now() - started }),
          });
          let result = submitted.result;
          if (!result && !o.wait) {
            tracker.finish(`${name}: ${submitted.status} ${submitted.id} (follow it: docorch status ${submitted.id})`);
            return { file, id: submitted.id, status: submitted.status };
          }
          if (!result) {
            const doc = await client.get(submitted.id);
            pages = pagesText(doc);
            tracker.update({ status: doc.status, done: doc.progress.chunksSucceeded + doc.progress.chunksFailed, total: doc.progress.chunksTotal, pages, elapsedMs: Date.now() - started });
            result = await client.waitForResult(submitted.id, {
              onProgress: (u: ProgressUpdate) =>
                tracker.update({ status: u.status, done: u.progress.chunksSucceeded + u.progress.chunksFailed, total: u.progress.chunksTotal, pages, elapsedMs: Date.now() - started }),
            });
          }
          pages = `${result.pages.analysed} pages`;
          const chunks = result.chunks.length;
          tracker.update({ status: result.status, done: chunks, total: chunks, pages, elapsedMs: Date.now() - started });
          let saved: string | undefined;
          if (o.out) {
            saved = path.join(path.resolve(io.cwd, o.out), `${name.replace(/\.pdf$/i, '')}.json`);
            await writeFile(saved, `${JSON.stringify(result, null, 2)}\n`);
          }
          tracker.finish(`${name}: ${result.status} in ${seconds(Date.now() - started)} (${result.pages.analysed} pages, ${chunks} chunks)${saved ? ` -> ${path.relative(io.cwd, saved) || saved}` : ''}`);
          return { file, id: result.documentId, status: result.status, result, ...(saved ? { saved } : {}) };
        } catch (err) {
          const message = err instanceof DocumentFailedError ? err.message : err instanceof DocorchApiError ? `${err.code}: ${err.message}` : (err as Error).message;
          const status = err instanceof DocumentFailedError ? err.document.status : 'error';
          tracker.finish(`${name}: ${status}: ${message}`, status);
          return { file, status, error: message, ...(err instanceof DocumentFailedError ? { id: err.document.id } : {}) };
        }
      }),
    ),
  );
  display.stop();
  if (o.json) {
    const view = outcomes.map((x) => (x.result && !o.out ? x.result : { file: x.file, id: x.id, status: x.status, ...(x.saved ? { saved: x.saved } : {}), ...(x.error ? { error: x.error } : {}) }));
    io.out(`${JSON.stringify(view.length === 1 ? view[0] : view, null, 2)}\n`);
  } else if (!o.out) {
    for (const x of outcomes) {
      if (x.result) io.out(`${x.file}: ${x.result.status}, ${x.result.pages.analysed} pages, sentiment ${x.result.sentiment.label}\n  ${x.result.summary.slice(0, 400)}\n`);
    }
  }
  const codes = outcomes.map((x) => (x.status === 'error' ? 1 : x.result ? exitFor(x.status) : ['failed', 'cancelled'].includes(x.status) ? 1 : 0));
  return codes.includes(1) ? 1 : codes.includes(2) ? 2 : 0;
}
