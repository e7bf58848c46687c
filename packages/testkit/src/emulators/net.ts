/** Small socket helpers shared by the emulator starters. */
import type { Server } from 'node:http';
import net from 'node:net';

/** Every emulator we bind listens here only (DynamoDB Local cannot bind one interface; see dynamodb.ts). */
export const LOOPBACK = '127.0.0.1';

/** SDK clients reuse idle sockets; a short server-side idle timeout races them (ECONNRESET). */
export const KEEP_ALIVE_TIMEOUT_MS = 65_000;

/**
 * A port that was free a moment ago: the OS picks one for 127.0.0.1:0 and we release it.
 * Another process may take it before the caller binds it, so callers that cannot bind port 0
 * themselves (DynamoDB Local) retry with a new port on a bind failure.
 */
export async function findFreePort(): Promise<number> {
  const server = net.createServer();
  await listen(server, 0);
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('could not determine a free port');
  return address.port;
}

/**
 * Binds `server` to `host`:`port` (0 = any free port) and returns the bound port. Only a container
 * entry point (serve-one.ts) passes another host than 127.0.0.1.
 */
export async function listen(server: net.Server, port: number, host: string = LOOPBACK): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('server has no TCP address');
  return address.port;
}

/**
 * Closes an HTTP server including its idle keep-alive sockets (SDK clients keep them open, and
 * `close()` alone would wait for them).
 */
export async function closeHttpServer(server: Server): Promise<void> {
  if (!server.listening) return;
  const closed = new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
  server.closeAllConnections();
  await closed;
}
