/** One emulator running inside the emulator host. */
export interface StartedEmulator {
  /** Base URL, `http://127.0.0.1:<port>`. */
  endpoint: string;
  /** Stops it (and flushes its store to disk when it persists). */
  close(): Promise<void>;
}
