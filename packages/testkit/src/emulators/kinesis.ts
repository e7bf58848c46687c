/**
 * kinesalite (Kinesis) on 127.0.0.1. Its CLI has no host option (it binds every interface), so we
 * create its server from code and bind it ourselves.
 */
import kinesalite from 'kinesalite';
import type { KinesaliteTuning } from './options.js';
import { closeHttpServer, KEEP_ALIVE_TIMEOUT_MS, listen, LOOPBACK } from './net.js';
import type { StartedEmulator } from './started-emulator.js';

/** kinesalite's timings when {@link KinesaliteTuning} leaves them out (its own defaults are 500 ms and 10 shards). */
export const KINESALITE_DEFAULTS: Required<KinesaliteTuning> = {
  createStreamMs: 10,
  deleteStreamMs: 10,
  updateStreamMs: 10,
  shardLimit: 10_000,
};

/** Options of {@link startKinesalite}. */
export interface KinesaliteOptions {
  /** Port, 0 for a free one. */
  port: number;
  /** LevelDB directory; in memory when undefined. */
  path: string | undefined;
  tuning: Required<KinesaliteTuning>;
  /** Interface to bind. @defaultValue '127.0.0.1' */
  host?: string;
}

/** `tuning` with kinesalite's defaults filled in. */
export function resolveKinesaliteTuning(tuning: KinesaliteTuning = {}): Required<KinesaliteTuning> {
  return {
    createStreamMs: tuning.createStreamMs ?? KINESALITE_DEFAULTS.createStreamMs,
    deleteStreamMs: tuning.deleteStreamMs ?? KINESALITE_DEFAULTS.deleteStreamMs,
    updateStreamMs: tuning.updateStreamMs ?? KINESALITE_DEFAULTS.updateStreamMs,
    shardLimit: tuning.shardLimit ?? KINESALITE_DEFAULTS.shardLimit,
  };
}

/** Starts kinesalite. Clients must speak HTTP/1.1 (see core's createAwsClients). */
export async function startKinesalite(options: KinesaliteOptions): Promise<StartedEmulator> {
  const server = kinesalite({
    ...options.tuning,
    ...(options.path === undefined ? {} : { path: options.path }),
  });
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  const port = await listen(server, options.port, options.host);
  // kinesalite's close() closes the LevelDB store first, so data written so far is on disk.
  return { endpoint: `http://${LOOPBACK}:${port}`, close: () => closeHttpServer(server) };
}
