/**
 * The relay in front of DynamoDB Local (emulators/tcp-relay.ts): a burst of connections far
 * above the upstream connects it allows at once is carried through, byte for byte, and close()
 * ends what is open.
 */
import http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTcpRelay, type TcpRelay } from '../src/emulators/tcp-relay.js';

describe('tcp relay', () => {
  let upstream: http.Server;
  let relay: TcpRelay;

  beforeAll(async () => {
    upstream = http.createServer((req, res) => {
      const body: Buffer[] = [];
      req.on('data', (c: Buffer) => body.push(c));
      req.on('end', () => res.end(`echo:${Buffer.concat(body).toString()}`));
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    relay = await startTcpRelay({ port: 0, upstreamPort: (upstream.address() as net.AddressInfo).port, maxPendingConnects: 2 });
  });

  afterAll(async () => {
    await relay.close();
    await new Promise<void>((resolve) => upstream.close(() => resolve()));
  });

  it('carries 300 simultaneous connections through 2 upstream connects at a time', async () => {
    const agent = new http.Agent({ keepAlive: false });
    const answers = await Promise.all(
      Array.from({ length: 300 }, async (_, i) => {
        const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
          const req = http.request({ host: '127.0.0.1', port: relay.port, method: 'POST', agent }, resolve);
          req.on('error', reject);
          req.end(`request ${i}`);
        });
        const chunks: Buffer[] = [];
        for await (const c of res) chunks.push(c as Buffer);
        return Buffer.concat(chunks).toString();
      }),
    );
    expect(answers).toEqual(Array.from({ length: 300 }, (_, i) => `echo:request ${i}`));
  });

  it('keeps a connection for several requests (keep-alive passes through)', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const ports = new Set<number>();
    for (let i = 0; i < 5; i++) {
      await new Promise<void>((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port: relay.port, agent }, (res) => {
          ports.add(req.socket?.localPort ?? -1);
          res.resume();
          res.on('end', resolve);
        });
        req.on('error', reject);
        req.end();
      });
    }
    agent.destroy();
    expect(ports.size).toBe(1);
  });
});
