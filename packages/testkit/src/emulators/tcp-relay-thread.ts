/**
 * Worker-thread entry of the DynamoDB Local relay (tcp-relay.ts): the relay gets its own event
 * loop, so kinesalite and s3rver, which share the emulator host's main thread, never delay a
 * DynamoDB byte.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { startTcpRelay, type TcpRelayOptions } from './tcp-relay.js';

const relay = await startTcpRelay(workerData as TcpRelayOptions);
parentPort?.postMessage({ port: relay.port });
parentPort?.on('message', (message: unknown) => {
  if (message === 'close') void relay.close().then(() => process.exit(0));
});
