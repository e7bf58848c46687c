/**
 * Starts docorch services as real child processes for tests (from TypeScript source through
 * tsx, so no build is needed; or compiled, as `npm start` and the images run them), bound to
 * 127.0.0.1 on a free port.
 */
import { recorderNodeArgs } from './contract/recorder.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** Repository root (this file is packages/testkit/src/services.ts or dist/services.js). */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** A running service process. */
export interface ServiceProcess {
  child: ChildProcess;
  baseUrl: string;
  /** Output lines seen so far (stdout and stderr). */
  output: string[];
  /** True once the process has exited. */
  exited(): boolean;
  /** SIGTERM, then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
  /** Sends a signal (SIGKILL, SIGSTOP, SIGCONT, ...). */
  signal(signal: NodeJS.Signals): void;
  /** Resolves when the process has exited. */
  exitedPromise: Promise<void>;
}

/** Options of {@link startService}. */
export interface StartServiceOptions {
  /** Service folder name under services/, e.g. `api`. */
  service: string;
  env: NodeJS.ProcessEnv;
  /** Path polled until it answers 200. @defaultValue '/healthz' */
  healthPath?: string;
  /** @defaultValue 60000 */
  startTimeoutMs?: number;
  /** Env variable naming the HTTP port the service listens on. @defaultValue 'PORT' */
  portEnv?: 'PORT' | 'WORKER_PORT';
  /**
   * Run `services/<name>/dist/main.js` (needs `pnpm build`), as `npm start` and the images do:
   * for benchmarks, where the tsx loader's own memory and work would be measured too.
   * @defaultValue {@link servicesCompiledByDefault}: true under `npm test`, which builds first;
   *   else false (the TypeScript source through tsx, no build needed)
   */
  compiled?: boolean;
}

/**
 * Whether services start compiled when a caller does not say: `DOCORCH_TEST_SERVICES=compiled`,
 * which `npm test` sets right after its build. Each source start costs about 1.2 s of CPU in the
 * tsx loader (and its PDF threads the same), which a whole run of the suite on two cores felt.
 * A bare `vitest run` leaves it unset and runs the source as edited, with no build.
 */
export function servicesCompiledByDefault(): boolean {
  return process.env.DOCORCH_TEST_SERVICES === 'compiled';
}

/**
 * Node arguments that run an entry of this repository: its compiled twin when
 * {@link servicesCompiledByDefault} (under `npm test`), else the TypeScript source through tsx.
 * @param source the entry's source, relative to the repository root (e.g. `packages/cli/src/main.ts`)
 * @param compiled its compiled file, likewise (e.g. `packages/cli/dist/main.js`)
 */
export function entryArgs(source: string, compiled: string): string[] {
  return servicesCompiledByDefault() ? [path.join(repoRoot, compiled)] : [...SOURCE_NODE_ARGS, path.join(repoRoot, source)];
}

/**
 * Node flags that run this repository's TypeScript source: its source export condition, the tsx
 * loader. The loader by path, so that an entry started in another folder (the command line in a
 * user's folder) finds it too.
 */
const SOURCE_NODE_ARGS = ['--conditions=docorch-source', '--import', pathToFileURL(path.join(repoRoot, 'node_modules/tsx/dist/loader.mjs')).href] as const;

/**
 * How a service is started: its compiled `dist/main.js` (as `npm start` and the images run it),
 * or `src/main.ts` through the tsx loader (no build needed). Under the contract test, API
 * processes also record their responses (contract/recorder.ts).
 */
export function serviceEntry(service: string, compiled: boolean): { script: string; nodeArgs: string[] } {
  const recorder = recorderNodeArgs(service, !compiled);
  return compiled
    ? { script: path.join(repoRoot, 'services', service, 'dist/main.js'), nodeArgs: recorder }
    : { script: path.join(repoRoot, 'services', service, 'src/main.ts'), nodeArgs: [...SOURCE_NODE_ARGS, ...recorder] };
}

/** Starts `services/<name>/src/main.ts` (or its compiled `dist/main.js`) and waits until its health path answers. */
export async function startService(options: StartServiceOptions): Promise<ServiceProcess> {
  const portEnv = options.portEnv ?? 'PORT';
  const port = Number(options.env[portEnv] ?? (await freePort()));
  const { script, nodeArgs } = serviceEntry(options.service, options.compiled ?? servicesCompiledByDefault());
  const child = spawn(
    process.execPath,
    [...nodeArgs, script],
    { cwd: repoRoot, env: { ...process.env, ...options.env, [portEnv]: String(port), HOST: '127.0.0.1' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const output: string[] = [];
  const collect = (buf: Buffer) => {
    for (const line of buf.toString('utf8').split('\n')) if (line) output.push(line);
    if (output.length > 20_000) output.splice(0, output.length - 20_000);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => ((exited = true), resolve())));
  const baseUrl = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + (options.startTimeoutMs ?? 60_000);
  for (;;) {
    if (exited) throw new Error(`${options.service} exited during start:\n${output.slice(-30).join('\n')}`);
    try {
      const res = await fetch(`${baseUrl}${options.healthPath ?? '/healthz'}`, { signal: AbortSignal.timeout(1_000) });
      if (res.ok) break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${options.service} did not become healthy:\n${output.slice(-30).join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  return {
    child,
    baseUrl,
    output,
    exited: () => exited,
    exitedPromise: exit,
    signal: (sig) => {
      child.kill(sig);
    },
    async stop(graceMs = 10_000) {
      if (exited) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exit;
      clearTimeout(timer);
    },
  };
}
