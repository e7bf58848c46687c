/**
 * Writes the OpenAPI document the API serves (docs/openapi.json) and the typed client's types
 * generated from it (packages/client/src/generated/openapi.ts, openapi-typescript). Run after a
 * change to services/api/src/contract: `pnpm openapi`. services/api/test/routes.test.ts fails while
 * either file differs from what this writes.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generatedOpenApiFiles } from '../services/api/src/contract/generate.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
for (const [file, text] of Object.entries(await generatedOpenApiFiles())) {
  await writeFile(path.join(root, file), text);
  console.log(`wrote ${file}`);
}
