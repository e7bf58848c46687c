/**
 * Starts the local AWS emulators (s3rver, DynamoDB Local, kinesalite) in one child process, the
 * emulator host (emulator-host.ts explains why a child, and why it runs with
 * `--openssl-legacy-provider`). Every emulator listens on 127.0.0.1 (DynamoDB Local: see dynamodb.ts).
 */
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { threadScript } from '@docorch/core';
import type { HostMessage, StartMessage } from './host-protocol.js';
import { resolveKinesaliteTuning } from './kinesis.js';
import { emulatorEnv, type RunningEmulators, type StartEmulatorsOptions } from './options.js';

/** Longest wait for the host to exit after `stop`, before it is killed. */
const STOP_TIMEOUT_MS = 15_000;

/**
 * The host's entry file and Node flags: from source (vitest, tsx) with the tsx loader, compiled as
 * plain Node; always with OpenSSL's legacy provider (for s3rver, see emulator-host.ts).
 */
function hostScript(): { filename: string; execArgv: string[] } {
  const { filename, execArgv } = threadScript(import.meta.url, './emulator-host');
  return { filename, execArgv: [...execArgv, '--openssl-legacy-provider'] };
}

/**
 * Starts s3rver, DynamoDB Local and kinesalite and resolves once all three answer.
 *
 * The emulators stop when {@link RunningEmulators.stop} is called, and also whenever this process
 * ends without calling it (normal exit, crash, SIGINT/SIGTERM, SIGKILL): the host notices its IPC
 * channel closing. Java additionally runs under `setpriv --pdeathsig SIGKILL` on Linux.
 * The host does not keep this process alive on its own.
 *
 * @throws Error naming each emulator that failed to start (with DynamoDB Local's output).
 */
export async function startEmulators(options: StartEmulatorsOptions = {}): Promise<RunningEmulators> {
  const region = options.region ?? 'us-east-1';
  const startTimeoutMs = options.startTimeoutMs ?? 60_000;
  const script = hostScript();
  const host = fork(script.filename, [], {
    execArgv: script.execArgv,
    // kinesalite puts the region into stream ARNs.
    env: { ...process.env, AWS_REGION: region },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    serialization: 'json',
  });

  const start: StartMessage = {
    type: 'start',
    dataDir: options.dataDir === undefined ? undefined : path.resolve(options.dataDir),
    ports: { ...options.ports },
    kinesis: resolveKinesaliteTuning(options.kinesis),
    startTimeoutMs,
    verbose: options.verbose ?? false,
  };

  let endpoints: RunningEmulators['endpoints'];
  try {
    endpoints = await waitForReady(host, start, startTimeoutMs + 5_000);
  } catch (err) {
    await stopHost(host);
    throw err;
  }

  // From here on the host must not keep this process alive by itself (a script that forgets
  // stop() still ends; the host then stops on its own when the channel closes).
  host.unref();
  host.channel?.unref();
  let stopping: Promise<void> | undefined;
  return {
    endpoints,
    env: emulatorEnv(endpoints, region),
    pid: host.pid ?? -1,
    stop: () => (stopping ??= stopHost(host)),
  };
}

function waitForReady(host: ChildProcess, start: StartMessage, timeoutMs: number): Promise<RunningEmulators['endpoints']> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => finish(new Error(`emulators did not start within ${timeoutMs} ms`)), timeoutMs);
    const onMessage = (message: HostMessage) => {
      if (message.type === 'ready') finish(undefined, message.endpoints);
      else if (message.type === 'failed') finish(new Error(message.message));
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null) =>
      finish(new Error(`emulator host exited during start-up (${code ?? signal})`));
    const onError = (err: Error) => finish(err);
    function finish(err: Error | undefined, endpoints?: RunningEmulators['endpoints']) {
      clearTimeout(timer);
      host.off('message', onMessage);
      host.off('exit', onExit);
      host.off('error', onError);
      if (err || !endpoints) reject(err);
      else resolve(endpoints);
    }
    host.on('message', onMessage);
    host.once('exit', onExit);
    host.once('error', onError);
    host.send(start);
  });
}

/** Asks the host to stop; kills it if it has not exited after {@link STOP_TIMEOUT_MS}. */
async function stopHost(host: ChildProcess): Promise<void> {
  if (host.pid === undefined || host.exitCode !== null || host.signalCode !== null) return;
  // Keep this process alive until the host is gone.
  host.ref();
  host.channel?.ref();
  const exited = new Promise<void>((resolve) => host.once('exit', () => resolve()));
  if (host.connected) host.send({ type: 'stop' });
  else host.kill('SIGTERM');
  const timer = setTimeout(() => host.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}
