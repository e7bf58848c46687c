#!/usr/bin/env node
/** The `docorch` command (packages/cli/src/admin.ts says what it does). */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runAdmin } from './admin.js';

// The checkout this package lives in (packages/cli/dist/main.js): its .data/stack.json is the local target.
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const code = await runAdmin(process.argv.slice(2), { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) }, root);
process.exitCode = code;
