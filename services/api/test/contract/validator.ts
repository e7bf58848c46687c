/**
 * Checks recorded responses against the OpenAPI document with openapi-backend (routing, response
 * body and header validation), its Ajv swapped for the JSON Schema 2020-12 dialect of OpenAPI 3.1.
 */
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { OpenAPIBackend, type Document } from 'openapi-backend';
import type { RecordedResponse } from '@docorch/testkit';

// ajv-formats is CommonJS with a default export.
const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020;

/** One response that does not match the document. */
export interface Violation {
  response: string;
  problems: string[];
}

/** The contract checker of one document. */
export class ContractChecker {
  private readonly api: OpenAPIBackend;

  private constructor(
    checked: Document,
    private readonly served: Document,
  ) {
    this.api = new OpenAPIBackend({
      definition: checked,
      strict: false,
      validate: true,
      quick: true,
      customizeAjv: (_ajv, opts) => addFormats(new Ajv2020({ ...opts, strict: false, allErrors: true })) as never,
    });
  }

  /** Builds and initialises the checker. */
  static async create(document: object): Promise<ContractChecker> {
    const copy = structuredClone(document) as Document;
    // openapi-backend validates `application/json` bodies only: in this copy (not the served
    // document), each problem+json schema is also the application/json one. The content type a
    // response really carried is checked against the documented ones separately.
    for (const item of Object.values(copy.paths ?? {})) {
      for (const op of Object.values(item ?? {})) {
        const responses = (op as { responses?: Record<string, { content?: Record<string, unknown> }> }).responses ?? {};
        for (const r of Object.values(responses)) {
          const problem = r.content?.['application/problem+json'];
          if (problem && r.content) r.content['application/json'] = problem;
        }
      }
    }
    const checker = new ContractChecker(copy, document as Document);
    await checker.api.init();
    return checker;
  }

  /** The problems of one response ([] when it conforms). */
  check(r: RecordedResponse): string[] {
    // HEAD is GET without the body (Express answers it from the GET route).
    const head = r.method === 'HEAD';
    const method = head ? 'get' : r.method.toLowerCase();
    const operation = this.api.router.matchOperation({ method, path: r.path, headers: {}, query: {} });
    if (!operation) {
      // A 404 from the catch-all handler for a path the API does not have is the contract too.
      if (r.status === 404 && r.headers['content-type']?.startsWith('application/problem+json')) return [];
      // The reference page's own assets are static files, not API operations.
      if (r.method === 'GET' && (r.path === '/docs' || r.path === '/docs/' || r.path.startsWith('/docs/') || r.path.startsWith('/console'))) return [];
      return [`no operation ${r.method} ${r.path} in the document`];
    }
    const id = operation.operationId ?? `${r.method} ${r.path}`;
    const item = (this.served.paths?.[operation.path] ?? {}) as Record<string, { responses?: Record<string, { content?: Record<string, unknown> }> }>;
    const responses = item[operation.method]?.responses ?? {};
    const documented = responses[String(r.status)] ?? responses.default;
    if (!documented) return [`${id}: status ${r.status} is not documented (documented: ${Object.keys(responses).join(', ')})`];
    const problems: string[] = [];
    const type = (r.headers['content-type'] ?? '').split(';')[0]?.trim() ?? '';
    const types = Object.keys(documented.content ?? {});
    if (head) {
      if (types.length > 0 && !types.includes(type)) problems.push(`${id} ${r.status} (HEAD): content-type ${type || '(none)'} is not one of ${types.join(', ')}`);
    } else if (types.length === 0) {
      if (r.body.length > 0) problems.push(`${id} ${r.status}: a body was sent where none is documented`);
    } else if (!types.includes(type)) {
      problems.push(`${id} ${r.status}: content-type ${type || '(none)'} is not one of ${types.join(', ')}`);
    } else if (type.endsWith('json') && !r.truncated) {
      let body: unknown;
      try {
        body = JSON.parse(r.body);
      } catch {
        return [`${id} ${r.status}: the body is not JSON`];
      }
      const result = this.api.validator.validateResponse(body, operation, r.status);
      if (!this.api.validator.getStatusBasedResponseValidatorForOperation(id)?.[String(r.status)]) problems.push(`${id} ${r.status}: no schema to validate the body with`);
      for (const e of result.errors ?? []) problems.push(`${id} ${r.status}: body${e.instancePath} ${e.message ?? ''} ${JSON.stringify(e.params)}`);
    }
    const headers = this.api.validator.validateResponseHeaders(r.headers, operation, { statusCode: r.status, setMatchType: 'superset' });
    for (const e of headers.errors ?? []) problems.push(`${id} ${r.status}: header${e.instancePath} ${e.message ?? ''}`);
    return problems;
  }
}
