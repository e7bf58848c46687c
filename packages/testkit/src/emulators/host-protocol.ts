/** Messages between {@link startEmulators} (parent) and the emulator host (child) over Node IPC. */
import type { EmulatorEndpoints, EmulatorPorts, KinesaliteTuning } from './options.js';

/** Parent -> host: start the emulators. */
export interface StartMessage {
  type: 'start';
  /** Absolute data directory, or undefined for in-memory stores and a temporary s3rver directory. */
  dataDir: string | undefined;
  ports: Partial<EmulatorPorts>;
  kinesis: Required<KinesaliteTuning>;
  startTimeoutMs: number;
  verbose: boolean;
}

/** Parent -> host: stop everything and exit. */
export interface StopMessage {
  type: 'stop';
}

export type ParentMessage = StartMessage | StopMessage;

/** Host -> parent. */
export type HostMessage =
  | { type: 'ready'; endpoints: EmulatorEndpoints }
  | { type: 'failed'; message: string };
