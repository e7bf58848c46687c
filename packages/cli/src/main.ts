#!/usr/bin/env node
/**
 * The `docorch` command: the client commands (client-commands.ts: analyze, status, result, list,
 * cancel, configure; an API key) and the admin commands (admin.ts: tenants, keys, usage, dead
 * letters, webhooks; AWS credentials or the local stack). One command for both, since the
 * command names do not overlap and one install serves a laptop that runs the local stack.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runAdmin } from './admin.js';
import { CLIENT_COMMANDS, runClient } from './client-commands.js';

// The checkout this package lives in (packages/cli/dist/main.js): its .data/stack.json is the local target.
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const argv = process.argv.slice(2);
const first = argv.find((a) => !a.startsWith('-'));
const out = (t: string) => process.stdout.write(t);
const err = (t: string) => process.stderr.write(t);
const code = first && CLIENT_COMMANDS.has(first)
  ? await runClient(argv, { out, err, progress: process.stderr, env: process.env, cwd: process.cwd() })
  : await runAdmin(argv, { out, err }, root);
process.exitCode = code;
