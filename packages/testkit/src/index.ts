export {};
export {
  generateBlankPagesPdf,
  generateBombPdf,
  generatePdf,
  writeLargePdf,
  writePdf,
  type BombKind,
  type GeneratePdfOptions,
  type GeneratedPdf,
} from './pdf/generate.js';
export {
  EMULATOR_CREDENTIALS,
  KINESALITE_DEFAULTS,
  createIsolatedResources,
  emulatorEnv,
  startEmulators,
  uniqueNames,
  type CreateIsolatedResourcesOptions,
  type EmulatorEndpoints,
  type EmulatorEnv,
  type EmulatorEnvName,
  type EmulatorPorts,
  type IsolatedResources,
  type KinesaliteTuning,
  type RunningEmulators,
  type StartEmulatorsOptions,
} from './emulators/index.js';
export type { ProvidedEmulators } from './vitest/global-setup.js';
export {
  entryArgs,
  freePort,
  repoRoot,
  servicesCompiledByDefault,
  startService,
  type ServiceProcess,
  type StartServiceOptions,
} from './services.js';
export { startPipeline, workerShards, type Pipeline, type StartPipelineOptions } from './pipeline.js';
export {
  maxInWindow,
  startFakeGemini,
  type FakeGemini,
  type FakeGeminiFailureMix,
  type FakeGeminiKnobs,
  type FakeGeminiOptions,
  type FakeGeminiRequest,
  type FakeGeminiTotals,
  type FakeLoggedOutcome,
  type FakeOutcome,
} from './fake-gemini/index.js';
export { runSoak, type SoakOptions, type SoakRound } from './soak.js';
export { recordResponses, recordServer, recorderNodeArgs, MAX_BODY_BYTES, type RecordedResponse } from './contract/recorder.js';
