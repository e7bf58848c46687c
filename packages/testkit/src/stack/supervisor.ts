/**
 * Runs the stack's service processes the way an orchestrator would: each as its own Node
 * process, restarted with backoff when it dies, stopped with SIGTERM (then SIGKILL) on shutdown.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Logger } from '@docorch/core';

/** One supervised process. */
export interface ServiceSpec {
  name: string;
  /** Script path run with the current Node. */
  script: string;
  env: NodeJS.ProcessEnv;
  /** Extra Node flags. */
  nodeArgs?: string[];
}

/** Supervises processes; `stop()` ends them all. */
export class Supervisor {
  private readonly children = new Map<string, ChildProcess>();
  private stopping = false;

  constructor(private readonly logger: Logger) {}

  start(spec: ServiceSpec, attempt = 0): void {
    const child = spawn(process.execPath, [...(spec.nodeArgs ?? []), spec.script], {
      env: spec.env,
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    this.children.set(spec.name, child);
    const startedAt = Date.now();
    child.on('exit', (code, signal) => {
      this.children.delete(spec.name);
      if (this.stopping) return;
      // A process that ran for a while gets a fresh backoff; a crash loop backs off to 30 s.
      const next = Date.now() - startedAt > 60_000 ? 0 : attempt + 1;
      const delay = Math.min(30_000, 500 * 2 ** next);
      this.logger.error({ service: spec.name, code, signal, restartInMs: delay }, 'service exited; restarting');
      setTimeout(() => {
        if (!this.stopping) this.start(spec, next);
      }, delay).unref();
    });
  }

  /** SIGTERM to every child, SIGKILL after `graceMs`. */
  async stop(graceMs = 30_000): Promise<void> {
    this.stopping = true;
    await Promise.all(
      [...this.children.values()].map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
            child.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            child.kill('SIGTERM');
          }),
      ),
    );
  }
}
