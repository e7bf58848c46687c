/**
 * The contract test: every API response the suites recorded (contract/recorder.ts in testkit; this
 * project runs last, see vitest.config.ts) must match /openapi.json: a documented operation and
 * status, the documented content type, a body and headers that validate. A route or shape that
 * drifts from the document fails here.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { RecordedResponse } from '@docorch/testkit';
import { openApiDocument } from '../../src/contract/openapi.js';
import { ContractChecker } from './validator.js';

let checker: ContractChecker;

beforeAll(async () => {
  checker = await ContractChecker.create(openApiDocument());
});

function recorded(): RecordedResponse[] {
  const dir = process.env.DOCORCH_RESPONSE_LOG;
  if (!dir) return [];
  const out: RecordedResponse[] = [];
  for (const name of readdirSync(dir).filter((n) => n.endsWith('.jsonl'))) {
    for (const line of readFileSync(path.join(dir, name), 'utf8').split('\n')) {
      // A process killed mid-write (the fault tests kill -9 APIs) may leave a partial last line.
      if (!line) continue;
      try {
        out.push(JSON.parse(line) as RecordedResponse);
      } catch {
        // partial line
      }
    }
  }
  return out;
}

describe('every recorded API response matches /openapi.json', () => {
  it('validates the responses of the whole run', (ctx) => {
    const responses = recorded();
    if (responses.length === 0) {
      ctx.skip(true, 'no responses were recorded in this run (run the whole suite: the contract project runs after the others)');
      return;
    }
    const failures = new Map<string, { count: number; example: RecordedResponse }>();
    const operations = new Map<string, number>();
    for (const r of responses) {
      const key = `${r.method} ${r.path.replace(/\/v1\/documents\/[^/]+/, '/v1/documents/{id}')} ${r.status}`;
      operations.set(key, (operations.get(key) ?? 0) + 1);
      for (const problem of checker.check(r)) {
        const seen = failures.get(problem);
        if (seen) seen.count++;
        else failures.set(problem, { count: 1, example: r });
      }
    }
    console.log(`[contract] checked ${responses.length} recorded API responses against /openapi.json: ${failures.size === 0 ? 'all conform' : `${failures.size} distinct violations`}`);
    console.log(`[contract] by operation and status: ${[...operations].sort().map(([k, n]) => `${k} x${n}`).join('; ')}`);
    const report = [...failures].map(([problem, { count, example }]) => `${problem} (x${count}; e.g. ${example.method} ${example.path}${example.query}: ${example.body.slice(0, 300)})`);
    expect(report).toEqual([]);
  });

  it('fails a drifted response: a 409 whose problem body says "status": "processing"', () => {
    const body = {
      type: 'https://docorch.dev/problems/result-not-ready',
      title: 'The result is not ready yet',
      code: 'RESULT_NOT_READY',
      detail: 'The result of document doc_12345678 is not ready (status processing)',
      status: 'processing',
    };
    const drifted: RecordedResponse = {
      method: 'GET',
      path: '/v1/documents/doc_12345678/result',
      query: '',
      status: 409,
      headers: { 'content-type': 'application/problem+json; charset=utf-8' },
      body: JSON.stringify(body),
      truncated: false,
      pid: 0,
    };
    expect(checker.check(drifted).join('\n')).toMatch(/body\/status/);
    expect(checker.check({ ...drifted, body: JSON.stringify({ ...body, status: 409 }) })).toEqual([]);
  });

  it('fails an undocumented status, an undocumented route and a missing required header', () => {
    const base: RecordedResponse = { method: 'GET', path: '/v1/usage', query: '', status: 418, headers: { 'content-type': 'application/json' }, body: '{}', truncated: false, pid: 0 };
    expect(checker.check(base).join('\n')).toMatch(/status 418 is not documented/);
    expect(checker.check({ ...base, path: '/v1/secret', status: 200 }).join('\n')).toMatch(/no operation/);
    const accepted = { id: 'doc_12345678', status: 'queued', links: { self: '/v1/documents/doc_12345678', result: '/v1/documents/doc_12345678/result', events: '/v1/documents/doc_12345678/events' } };
    const noLocation: RecordedResponse = { ...base, method: 'POST', path: '/v1/documents', status: 202, body: JSON.stringify(accepted) };
    expect(checker.check(noLocation).join('\n')).toMatch(/location/i);
    expect(checker.check({ ...noLocation, headers: { ...noLocation.headers, location: '/v1/documents/doc_12345678' } })).toEqual([]);
  });
});
