/**
 * The response recorder of the contract test (services/api/test/contract): every response an API
 * server sends during the test run is appended, one JSON line each, to a file under the folder named
 * by DOCORCH_RESPONSE_LOG. It hooks Node's `http.server.request.start` diagnostics channel, so the
 * API's code is untouched; the test harness loads it into API processes with `--import`
 * ({@link recorderNodeArgs}) and into the test workers (vitest setupFiles) for in-process tests.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { subscribe } from 'node:diagnostics_channel';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** One recorded exchange. */
export interface RecordedResponse {
  method: string;
  /** The path without the query string. */
  path: string;
  query: string;
  status: number;
  headers: Record<string, string>;
  /** The body as text, cut at {@link MAX_BODY_BYTES} (`truncated`). */
  body: string;
  truncated: boolean;
  /** The process (and so the suite) that served it. */
  pid: number;
}

/** Bodies beyond this are cut (an event stream, a large result). */
export const MAX_BODY_BYTES = 4 * 1024 * 1024;
const KEY = Symbol.for('docorch.contract.recorder');

const marked = new WeakSet<Server>();

/**
 * Marks an in-process server (a supertest target) as the API, so that in a test worker only its
 * responses are recorded, not a fake model's or a webhook receiver's.
 */
export function recordServer<T extends Server>(server: T): T {
  marked.add(server);
  return server;
}

/**
 * Starts recording this process's HTTP server responses into `dir` (once per process).
 * @param onlyMarked - record only servers passed to {@link recordServer} (test workers); else every server (an API process)
 */
export function recordResponses(dir: string, onlyMarked = false): void {
  const g = globalThis as typeof globalThis & { [KEY]?: boolean };
  if (g[KEY]) return;
  g[KEY] = true;
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${process.pid}-${Date.now()}.jsonl`);
  subscribe('http.server.request.start', (message) => {
    const { request, response, server } = message as { request: IncomingMessage; response: ServerResponse; server: Server };
    if (onlyMarked && !marked.has(server)) return;
    // Read now: Express rewrites `request.url` inside mounted routers.
    const url = new URL(request.url ?? '/', 'http://recorder');
    const chunks: Buffer[] = [];
    let size = 0;
    let truncated = false;
    const keep = (chunk: unknown, encoding?: unknown) => {
      if (chunk === undefined || chunk === null || typeof chunk === 'function') return;
      const buf = Buffer.isBuffer(chunk)
        ? chunk
        : chunk instanceof Uint8Array
          ? Buffer.from(chunk)
          : Buffer.from(String(chunk), typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8');
      if (size + buf.length > MAX_BODY_BYTES) {
        truncated = true;
        return;
      }
      size += buf.length;
      chunks.push(buf);
    };
    const write = response.write.bind(response) as (...args: unknown[]) => boolean;
    const end = response.end.bind(response) as (...args: unknown[]) => ServerResponse;
    response.write = ((...args: unknown[]) => {
      keep(args[0], args[1]);
      return write(...args);
    }) as ServerResponse['write'];
    response.end = ((...args: unknown[]) => {
      keep(args[0], args[1]);
      return end(...args);
    }) as ServerResponse['end'];
    response.once('finish', () => {
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(response.getHeaders())) {
        if (value !== undefined) headers[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : String(value);
      }
      const record: RecordedResponse = {
        method: request.method ?? 'GET',
        path: url.pathname,
        query: url.search,
        status: response.statusCode,
        headers,
        body: Buffer.concat(chunks).toString('utf8'),
        truncated,
        pid: process.pid,
      };
      appendFileSync(file, `${JSON.stringify(record)}\n`);
    });
  });
}

/**
 * Node flags that load the recorder into a service process, when DOCORCH_RESPONSE_LOG is set and
 * the service is the API; none otherwise.
 * @param source - whether the process runs TypeScript sources through tsx (else the built dist)
 */
export function recorderNodeArgs(service: string, source: boolean, env: NodeJS.ProcessEnv = process.env): string[] {
  if (service !== 'api' || !env.DOCORCH_RESPONSE_LOG) return [];
  const here = path.dirname(fileURLToPath(import.meta.url));
  const preload = source ? path.resolve(here, '../../src/contract/preload.ts') : path.resolve(here, '../../dist/contract/preload.js');
  return ['--import', preload];
}
