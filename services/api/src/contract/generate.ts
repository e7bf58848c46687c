/**
 * The files generated from the OpenAPI document (scripts/openapi.ts writes them; a test compares):
 * the document itself, and the client's types: one TypeScript type per component schema
 * (json-schema-to-typescript over `components.schemas`, whose `$ref`s it resolves).
 */
import { openApiDocument } from './openapi.js';

/** Repository-relative path -> content. */
export async function generatedOpenApiFiles(): Promise<Record<string, string>> {
  const document = openApiDocument() as { components?: { schemas?: Record<string, Record<string, unknown>> } };
  const schemas = document.components?.schemas ?? {};
  // A development-only generator: loaded here, never by the running API.
  const { compile } = await import('json-schema-to-typescript');
  // One root whose properties name every component, so each becomes an exported type of its name.
  const root = {
    title: 'DocorchApiSchemas',
    type: 'object',
    additionalProperties: false,
    properties: Object.fromEntries(Object.keys(schemas).map((name) => [name, { $ref: `#/components/schemas/${name}` }])),
    components: { schemas: Object.fromEntries(Object.entries(schemas).map(([name, s]) => [name, { ...s, title: name }])) },
  };
  const types = await compile(root as never, 'DocorchApiSchemas', {
    bannerComment: "// Generated from the API's OpenAPI document (components.schemas) by `pnpm openapi` (scripts/openapi.ts). Do not edit.",
    additionalProperties: false,
    unreachableDefinitions: true,
    strictIndexSignatures: true,
    format: true,
  });
  return {
    'docs/openapi.json': `${JSON.stringify(document, null, 2)}\n`,
    'packages/client/src/generated/openapi.ts': types,
  };
}
