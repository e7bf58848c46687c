/**
 * Locates a worker-thread entry file next to the calling module, for both ways core runs:
 * compiled (`dist/*.js`, plain Node) and from source (`src/*.ts` under vitest or tsx), where the
 * thread needs the tsx loader and the `docorch-source` export condition (not plain `source`, which some published packages point at their own TypeScript) to import TypeScript.
 */
import { fileURLToPath } from 'node:url';

/** Where a thread's entry file is and how to start it. */
export interface ThreadScript {
  /** Absolute path of the entry file (.js or .ts). */
  filename: string;
  /** execArgv for the thread: empty for compiled code, the tsx loader for source. */
  execArgv: string[];
}

/**
 * @param callerUrl - `import.meta.url` of the module that owns the thread.
 * @param basename - entry file name without extension, relative to the caller, e.g. `./extract-thread`.
 */
export function threadScript(callerUrl: string, basename: string): ThreadScript {
  const fromSource = callerUrl.endsWith('.ts');
  const filename = fileURLToPath(new URL(`${basename}${fromSource ? '.ts' : '.js'}`, callerUrl));
  return {
    filename,
    execArgv: fromSource ? ['--conditions=docorch-source', '--import', 'tsx'] : [],
  };
}
