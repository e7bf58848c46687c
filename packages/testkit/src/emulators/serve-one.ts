/**
 * Container entry point of one emulator (docker-compose.yml): `node serve-one.js s3|kinesis|dynamodb`.
 * Inside a container the emulator must listen on the container's interface (other containers
 * reach it by service name); compose publishes no emulator port to the host except on 127.0.0.1.
 * Versions are the testkit's own (package.json), so `npm start`, the tests and compose run the same
 * emulators. Env: EMULATOR_HOST (0.0.0.0), EMULATOR_PORT, EMULATOR_DATA_DIR (/data).
 */
import { mkdir } from 'node:fs/promises';
import { startDynamoDbLocal } from './dynamodb.js';
import { resolveKinesaliteTuning, startKinesalite } from './kinesis.js';
import { startS3rver } from './s3.js';
import type { StartedEmulator } from './started-emulator.js';

const kind = process.argv[2];
const host = process.env.EMULATOR_HOST ?? '0.0.0.0';
const dataDir = process.env.EMULATOR_DATA_DIR ?? '/data';
const defaults = { s3: 4568, kinesis: 4567, dynamodb: 8000 } as const;

async function main(): Promise<StartedEmulator> {
  if (kind !== 's3' && kind !== 'kinesis' && kind !== 'dynamodb') throw new Error('usage: serve-one s3|kinesis|dynamodb');
  const port = Number(process.env.EMULATOR_PORT ?? defaults[kind]);
  await mkdir(dataDir, { recursive: true });
  switch (kind) {
    case 's3':
      return startS3rver({ port, directory: dataDir, verbose: false, host });
    case 'kinesis':
      return startKinesalite({ port, path: dataDir, tuning: resolveKinesaliteTuning(), host });
    case 'dynamodb':
      // Its relay (tcp-relay.ts) takes the public port on the container's interface; Java itself
      // binds every interface on a port of its own (it has no option for one).
      return startDynamoDbLocal({ port, path: dataDir, timeoutMs: 60_000, verbose: true, host });
  }
}

const started = await main();
process.stdout.write(`${kind} emulator listening on ${host}:${new URL(started.endpoint).port}\n`);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    void started.close().finally(() => process.exit(0));
  });
}
