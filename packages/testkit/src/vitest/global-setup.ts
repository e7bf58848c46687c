/**
 * vitest globalSetup (root vitest.config.ts): starts the emulators once for the whole run (data in
 * memory and a temporary s3rver directory), creates the default resources, and hands the
 * endpoints to every test file, both as process.env (read by loadConfig and the SDK's credential
 * chain in the test workers, which are forked after this runs) and as `inject('docorchEmulators')`.
 *
 * Tests that write should isolate themselves with createIsolatedResources() rather than share
 * the default resources. s3rver needs OpenSSL's legacy provider; it gets it in its own process,
 * so vitest needs no flag (see emulators/emulator-host.ts).
 */
// TypeScript 7 resolves the module of a `declare module` augmentation only when the file imports it.
import type {} from 'vitest';
import type { TestProject } from 'vitest/node';
import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createAwsClients, ensureResources, loadConfig } from '@docorch/core';
import type { EmulatorEndpoints, EmulatorEnv } from '../emulators/options.js';
import { startEmulators } from '../emulators/start-emulators.js';

/** What the global setup provides to tests under the key `docorchEmulators`. */
export interface ProvidedEmulators {
  endpoints: EmulatorEndpoints;
  env: EmulatorEnv;
  /** How long starting the emulators took, in ms. */
  startMs: number;
}

declare module 'vitest' {
  export interface ProvidedContext {
    docorchEmulators: ProvidedEmulators;
  }
}

interface Shared {
  provided: Promise<ProvidedEmulators>;
  stop: () => Promise<void>;
  users: number;
}

// vitest runs a global setup once per project (see vitest.config.ts): every project shares one
// set of emulators, started by the first and stopped with the last.
const KEY = Symbol.for('docorch.vitest.emulators');
const registry = globalThis as typeof globalThis & { [KEY]?: Shared };

async function start(): Promise<{ provided: ProvidedEmulators; stop: () => Promise<void> }> {
  // Every API response of the run is recorded here for the contract test (contract/recorder.ts);
  // a folder made here is removed at the end of the run (one named by the caller is kept).
  const responseLog = process.env.DOCORCH_RESPONSE_LOG ? undefined : mkdtempSync(path.join(os.tmpdir(), 'docorch-responses-'));
  if (responseLog) process.env.DOCORCH_RESPONSE_LOG = responseLog;
  const removeResponseLog = () => (responseLog ? rm(responseLog, { recursive: true, force: true }) : Promise.resolve());
  const started = performance.now();
  const emulators = await startEmulators();
  const startMs = Math.round(performance.now() - started);
  try {
    Object.assign(process.env, emulators.env);
    const aws = createAwsClients(loadConfig(process.env));
    try {
      await ensureResources(aws, loadConfig(process.env));
    } finally {
      aws.destroy();
    }
  } catch (err) {
    await emulators.stop();
    throw err;
  }
  return {
    provided: { endpoints: emulators.endpoints, env: emulators.env, startMs },
    stop: async () => {
      await Promise.all([emulators.stop(), removeResponseLog()]);
    },
  };
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  let shared = registry[KEY];
  if (!shared) {
    const starting = start();
    shared = {
      provided: starting.then((s) => s.provided),
      stop: async () => (await starting).stop(),
      users: 0,
    };
    registry[KEY] = shared;
  }
  shared.users++;
  project.provide('docorchEmulators', await shared.provided);
  const mine = shared;
  return async () => {
    mine.users--;
    if (mine.users === 0) {
      delete registry[KEY];
      await mine.stop();
    }
  };
}
