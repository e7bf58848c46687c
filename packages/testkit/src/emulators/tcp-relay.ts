/**
 * A TCP relay in front of DynamoDB Local: accepts on 127.0.0.1 with a deep listen backlog and
 * opens the upstream connections a few at a time.
 *
 * Why: DynamoDB Local's Jetty listens with Java's default backlog of 50 and no option to change
 * it. A worker that starts 128 records at once opens as many connections at once; when the JVM
 * accepts slowly (a collection, a busy core), the kernel drops the SYNs beyond the backlog
 * (`TcpExtListenDrops`, measured here: about 100 in one run of test/fair-share.test.ts) and the
 * clients retry them after 1, 3 and 7 s, past the SDK's 5 s connection timeout. Real DynamoDB
 * has no such limit, so the relay takes the burst instead: its accept is immediate, and a
 * connection waits for its upstream inside the relay (counted against the request timeout, as on
 * a slow server) rather than in a SYN queue that drops it.
 *
 * Each client connection gets its own upstream connection (keep-alive is the client's business).
 */
import net from 'node:net';
import { LOOPBACK } from './net.js';

/** Options of {@link startTcpRelay}. */
export interface TcpRelayOptions {
  /** Port the relay listens on; 0 for a free one. */
  port: number;
  /** Interface the relay listens on (a container entry point passes its own). @defaultValue 127.0.0.1 */
  host?: string;
  /** Upstream port on 127.0.0.1. */
  upstreamPort: number;
  /** Upstream connects in progress at once; the rest wait their turn. @defaultValue 8 */
  maxPendingConnects?: number;
  /** Listen backlog of the relay (the kernel caps it at net.core.somaxconn). @defaultValue 4096 */
  backlog?: number;
}

/** A running relay. */
export interface TcpRelay {
  port: number;
  close(): Promise<void>;
}

/** Starts a relay; resolves once it listens. */
export async function startTcpRelay(options: TcpRelayOptions): Promise<TcpRelay> {
  const maxPending = Math.max(1, options.maxPendingConnects ?? 8);
  const waiting: net.Socket[] = [];
  const open = new Set<net.Socket>();
  let pending = 0;

  const pump = (): void => {
    while (pending < maxPending && waiting.length > 0) {
      const client = waiting.shift() as net.Socket;
      if (client.destroyed) continue;
      pending++;
      const upstream = net.connect({ host: LOOPBACK, port: options.upstreamPort, noDelay: true });
      open.add(upstream);
      let connected = false;
      const settle = () => {
        if (connected) return;
        connected = true;
        pending--;
        pump();
      };
      upstream.once('connect', () => {
        settle();
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
      const destroyBoth = () => {
        settle();
        client.destroy();
        upstream.destroy();
      };
      upstream.once('error', destroyBoth);
      upstream.once('close', () => {
        open.delete(upstream);
        destroyBoth();
      });
      client.once('error', destroyBoth);
      client.once('close', destroyBoth);
    }
  };

  const server = net.createServer({ pauseOnConnect: true, noDelay: true }, (client) => {
    open.add(client);
    client.once('close', () => open.delete(client));
    waiting.push(client);
    pump();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: options.host ?? LOOPBACK, port: options.port, backlog: options.backlog ?? 4096 }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('relay has no TCP address');
  return {
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of open) socket.destroy();
        for (const socket of waiting) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
