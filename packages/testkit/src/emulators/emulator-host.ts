/**
 * Entry of the emulator host: the child process {@link startEmulators} forks to run s3rver,
 * DynamoDB Local and kinesalite. It talks to its parent over Node IPC (host-protocol.ts).
 *
 * Why a separate process, started with `--openssl-legacy-provider`:
 * - s3rver encrypts ListObjectsV2 continuation tokens with single DES
 *   (`crypto.createCipheriv('des', ...)` in generateContinuationToken / decipherContinuationToken,
 *   s3rver/lib/controllers/bucket.js; jamhall/s3rver#818). OpenSSL 3 (Node >= 17) moved DES to its
 *   legacy provider, so without it every truncated listing, and every request carrying a
 *   continuation token, fails with 500 ERR_OSSL_EVP_UNSUPPORTED. The provider can only be enabled
 *   when a process starts (the flag, or OPENSSL_CONF), not by code at run time. Giving the flag to
 *   this process alone means the processes running docorch (vitest, API, worker) need no special
 *   flag and keep OpenSSL's default, non-legacy algorithm set.
 * - Lifetime: when the parent goes away for any reason (normal exit, crash, SIGKILL) its IPC
 *   channel closes, and this process stops all three emulators, Java included, and exits.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startDynamoDbLocal } from './dynamodb.js';
import type { HostMessage, ParentMessage, StartMessage } from './host-protocol.js';
import { startKinesalite } from './kinesis.js';
import { startS3rver } from './s3.js';
import type { StartedEmulator } from './started-emulator.js';

/** Longest a shutdown may take before the host exits anyway (Java is SIGKILLed after 5 s). */
const SHUTDOWN_DEADLINE_MS = 10_000;

const running: StartedEmulator[] = [];
let temporaryDir: string | undefined;
let starting: Promise<void> | undefined;
let shuttingDown = false;

function send(message: HostMessage): void {
  if (process.connected) process.send?.(message);
}

async function start(message: StartMessage): Promise<void> {
  let s3Dir: string;
  let dynamoDir: string | undefined;
  let kinesisDir: string | undefined;
  if (message.dataDir === undefined) {
    // s3rver has no in-memory store.
    temporaryDir = await mkdtemp(path.join(os.tmpdir(), 'docorch-s3rver-'));
    s3Dir = temporaryDir;
  } else {
    s3Dir = path.join(message.dataDir, 's3');
    dynamoDir = path.join(message.dataDir, 'dynamodb');
    kinesisDir = path.join(message.dataDir, 'kinesis');
    await Promise.all([s3Dir, dynamoDir, kinesisDir].map((dir) => mkdir(dir, { recursive: true })));
  }

  const [s3, dynamodb, kinesis] = await Promise.allSettled([
    startS3rver({ port: message.ports.s3 ?? 0, directory: s3Dir, verbose: message.verbose }),
    startDynamoDbLocal({
      port: message.ports.dynamodb,
      path: dynamoDir,
      timeoutMs: message.startTimeoutMs,
      verbose: message.verbose,
    }),
    startKinesalite({ port: message.ports.kinesis ?? 0, path: kinesisDir, tuning: message.kinesis }),
  ]);
  // Whatever did start is stopped by shutdown(), also when another emulator failed.
  for (const result of [s3, dynamodb, kinesis]) if (result.status === 'fulfilled') running.push(result.value);
  if (s3.status === 'fulfilled' && dynamodb.status === 'fulfilled' && kinesis.status === 'fulfilled') {
    send({ type: 'ready', endpoints: { s3: s3.value.endpoint, dynamodb: dynamodb.value.endpoint, kinesis: kinesis.value.endpoint } });
    return;
  }
  const failures = ([['s3rver', s3], ['DynamoDB Local', dynamodb], ['kinesalite', kinesis]] as const).flatMap(([name, result]) =>
    result.status === 'rejected' ? [`${name}: ${result.reason instanceof Error ? result.reason.message : String(result.reason)}`] : [],
  );
  throw new Error(`emulators failed to start:\n${failures.join('\n')}`);
}

/** Stops every emulator (once), removes the temporary directory, exits. */
async function shutdown(code: number): Promise<void> {
  if (shuttingDown) return;
  shuttingDown = true;
  setTimeout(() => process.exit(code), SHUTDOWN_DEADLINE_MS).unref();
  // Let a start in progress finish, so that what it started is stopped too.
  await starting?.catch(() => undefined);
  await Promise.allSettled(running.map((emulator) => emulator.close()));
  if (temporaryDir) await rm(temporaryDir, { recursive: true, force: true }).catch(() => undefined);
  process.exit(code);
}

if (!process.send) {
  console.error('emulator-host: start it with startEmulators() (it needs an IPC channel to its parent)');
  process.exit(1);
}

process.on('message', (message: ParentMessage) => {
  if (message.type === 'stop') {
    void shutdown(0);
  } else if (message.type === 'start' && starting === undefined) {
    starting = start(message);
    starting.catch((err: unknown) => {
      send({ type: 'failed', message: err instanceof Error ? err.message : String(err) });
      void shutdown(1);
    });
  }
});
// The parent exited or crashed: nobody will ever call stop().
process.on('disconnect', () => void shutdown(0));
process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));
process.on('uncaughtException', (err) => {
  console.error('emulator-host: uncaught exception', err);
  void shutdown(1);
});
process.on('unhandledRejection', (err) => {
  console.error('emulator-host: unhandled rejection', err);
  void shutdown(1);
});
