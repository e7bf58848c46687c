/**
 * Sends one webhook request to a vetted target (target-guard.ts): the connection goes to the address
 * that was checked (a pinned `lookup`), with the URL's host name as Host and TLS server name.
 * Redirects are never followed (a 3xx is a failed attempt), the whole exchange has a deadline, and
 * at most `maxResponseBytes` of the answer are read.
 */
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import type { VettedTarget } from './target-guard.js';

/** The outcome of one attempt. */
export interface WebhookResponse {
  /** The receiver's status, or null when none came. */
  statusCode: number | null;
  /** Why the attempt failed; undefined on a 2xx. */
  error?: string;
}

/** Sends a signed request (injected in tests to assert that no connection is made). */
export type WebhookSender = (target: VettedTarget, body: string, headers: Record<string, string>, options: SendOptions) => Promise<WebhookResponse>;

/** Limits of one attempt. */
export interface SendOptions {
  timeoutMs: number;
  maxResponseBytes: number;
}

/** Options of {@link createHttpSender}. */
export interface HttpSenderOptions {
  /**
   * Opens the connection (node:http's `createConnection`); tests inject one to see where a request
   * would connect without connecting off loopback. @defaultValue the agent's (net / tls connect)
   */
  createConnection?: http.RequestOptions['createConnection'];
}

function agentFor(protocol: string, createConnection: HttpSenderOptions['createConnection']): http.Agent | false {
  if (!createConnection) return false;
  const agent = protocol === 'https:' ? new https.Agent({ keepAlive: false }) : new http.Agent({ keepAlive: false });
  // node:http uses the agent's createConnection, not the request option's, whenever there is an agent.
  (agent as unknown as { createConnection: typeof createConnection }).createConnection = createConnection;
  return agent;
}

/** The real sender over node:http / node:https. */
export const httpSender: WebhookSender = createHttpSender();

/** Builds a sender over node:http / node:https. */
export function createHttpSender(senderOptions: HttpSenderOptions = {}): WebhookSender {
  return (target, body, headers, options) => new Promise<WebhookResponse>((resolve) => {
    let settled = false;
    const done = (r: WebhookResponse) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(r);
    };
    // Only the vetted address is ever connected to, whatever DNS says now.
    const pinned: LookupFunction = (_host, opts, cb) => {
      if ((opts as { all?: boolean }).all) (cb as unknown as (e: null, a: Array<{ address: string; family: number }>) => void)(null, [{ address: target.address, family: target.family }]);
      else cb(null, target.address, target.family);
    };
    const client = target.url.protocol === 'https:' ? https : http;
    const req = client.request(target.url, {
      method: 'POST',
      headers: { ...headers, 'Content-Length': String(Buffer.byteLength(body)) },
      lookup: pinned,
      // A fresh agent per attempt (no pooled socket to another target), with the injected connect if any.
      agent: agentFor(target.url.protocol, senderOptions.createConnection),
    });
    const timer = setTimeout(() => {
      req.destroy();
      done({ statusCode: null, error: `no answer within ${options.timeoutMs} ms` });
    }, options.timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) => done({ statusCode: null, error: `request failed: ${err.code ?? err.message}` }));
    req.on('response', (res) => {
      const status = res.statusCode ?? 0;
      let read = 0;
      res.on('data', (chunk: Buffer) => {
        read += chunk.length;
        // The body is not used; reading more than the cap is not worth the bytes.
        if (read > options.maxResponseBytes) res.destroy();
      });
      const finish = () => {
        if (status >= 200 && status < 300) done({ statusCode: status });
        else if (status >= 300 && status < 400) done({ statusCode: status, error: `redirect to ${res.headers.location ?? '(none)'} not followed` });
        else done({ statusCode: status, error: `receiver answered ${status}` });
      };
      res.on('end', finish);
      res.on('close', finish);
      res.on('error', finish);
    });
    req.end(body);
  });
}
