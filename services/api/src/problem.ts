/**
 * RFC 9457 problem+json answers. Every error the API returns goes through `sendProblem`, with a
 * stable `code` from core's taxonomy; internal details (stack, cause) are logged, never sent.
 */
import type { NextFunction, Request, Response } from 'express';
import type { ServerResponse } from 'node:http';
import { DocorchError, toDocorchError, type ErrorCode } from '@docorch/core';

/** The problem document. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  code: string;
  detail: string;
  instance?: string;
  [extension: string]: unknown;
}

const TYPE_BASE = 'https://docorch.dev/problems/';

/** Builds the problem document of an error. */
export function problemOf(err: DocorchError, instance?: string): Problem {
  // Extension members first: a detail named like a standard member (a document's `status`) must
  // never override it, or the body would contradict its own HTTP status.
  return {
    ...(err.details ?? {}),
    type: `${TYPE_BASE}${err.code.toLowerCase().replaceAll('_', '-')}`,
    title: err.title,
    status: err.status,
    code: err.code,
    detail: err.code === 'INTERNAL' ? 'An internal error occurred' : err.message,
    ...(instance ? { instance } : {}),
  };
}

/** The problem code each answered response carried (metrics count 429s by it). */
export const problemCodes = new WeakMap<ServerResponse, string>();

/** Sends an error as problem+json (with Retry-After for THROTTLED). */
export function sendProblem(res: ServerResponse, err: DocorchError, instance?: string): void {
  if (err.retryAfterMs !== undefined) res.setHeader('Retry-After', String(Math.max(1, Math.ceil(err.retryAfterMs / 1000))));
  // Plain node API, so it also serves the raw `checkContinue` response in main.ts.
  const body = JSON.stringify(problemOf(err, instance));
  res.statusCode = err.status;
  problemCodes.set(res, err.code);
  res.setHeader('Content-Type', 'application/problem+json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(body);
}

/** Shorthand: a problem from a code and message. */
export function problem(code: ErrorCode, message: string, details?: Record<string, unknown>): DocorchError {
  return new DocorchError(code, message, details ? { details } : {});
}

/** Express error handler: classifies anything thrown by a route. */
export function problemHandler() {
  return (err: unknown, req: Request, res: Response, _next: NextFunction): void => {
    const e = classifyHttpError(err);
    if (e.status >= 500) req.log?.error({ err, code: e.code }, 'request failed');
    else req.log?.info({ code: e.code, detail: e.message }, 'request rejected');
    if (res.headersSent) {
      res.destroy();
      return;
    }
    sendProblem(res, e, req.originalUrl);
  };
}

/** Maps express / body-parser errors (which carry `status`) onto the taxonomy. */
function classifyHttpError(err: unknown): DocorchError {
  if (err instanceof DocorchError) return err;
  const status = typeof err === 'object' && err !== null && 'status' in err ? Number((err as { status: unknown }).status) : 0;
  const message = err instanceof Error ? err.message : 'Request failed';
  if (status === 413) return new DocorchError('TOO_LARGE', message, { cause: err });
  if (status >= 400 && status < 500) return new DocorchError('INVALID_REQUEST', message, { cause: err });
  return toDocorchError(err);
}

/** 404 for unknown routes, as problem+json. */
export function notFoundHandler() {
  return (req: Request, res: Response): void => {
    sendProblem(res, new DocorchError('NOT_FOUND', `No route ${req.method} ${req.path}`), req.originalUrl);
  };
}

