/** The local AWS emulators: s3rver, DynamoDB Local and kinesalite, all on 127.0.0.1. */
export { startEmulators } from './start-emulators.js';
export {
  EMULATOR_CREDENTIALS,
  emulatorEnv,
  type EmulatorEndpoints,
  type EmulatorEnv,
  type EmulatorEnvName,
  type EmulatorPorts,
  type KinesaliteTuning,
  type RunningEmulators,
  type StartEmulatorsOptions,
} from './options.js';
export { KINESALITE_DEFAULTS } from './kinesis.js';
export {
  createIsolatedResources,
  uniqueNames,
  type CreateIsolatedResourcesOptions,
  type IsolatedResources,
} from './isolated-resources.js';
