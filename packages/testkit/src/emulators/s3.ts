/**
 * s3rver (S3) on 127.0.0.1. Runs inside the emulator host only: its ListObjectsV2 paging needs
 * OpenSSL's legacy provider (see emulator-host.ts).
 */
import http from 'node:http';
import S3rver from 's3rver';
import { closeHttpServer, KEEP_ALIVE_TIMEOUT_MS, listen, LOOPBACK } from './net.js';
import type { StartedEmulator } from './started-emulator.js';

/** Options of {@link startS3rver}. */
export interface S3rverOptions {
  /** Port, 0 for a free one. */
  port: number;
  /** Directory s3rver keeps buckets and objects in (it has no in-memory store). */
  directory: string;
  /** Log every request to stdout. */
  verbose: boolean;
  /** Interface to bind. @defaultValue '127.0.0.1' */
  host?: string;
}

/** Starts s3rver; it verifies SigV4 signatures against the key pair S3RVER/S3RVER. */
export async function startS3rver(options: S3rverOptions): Promise<StartedEmulator> {
  // We create and bind the HTTP server ourselves: s3rver's run() never settles when listen fails.
  // vhostBuckets off: in compose the host name `s3` would otherwise be read as a bucket name.
  const s3rver = new S3rver({ directory: options.directory, silent: !options.verbose, vhostBuckets: false });
  const server = http.createServer(s3rver.callback());
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  const port = await listen(server, options.port, options.host);
  return { endpoint: `http://${LOOPBACK}:${port}`, close: () => closeHttpServer(server) };
}
