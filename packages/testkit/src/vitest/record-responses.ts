// vitest setupFiles: in a test worker, record the responses of in-process API servers (those
// passed to recordServer) for the contract test (contract/recorder.ts).
import { recordResponses } from '../contract/recorder.js';

if (process.env.DOCORCH_RESPONSE_LOG) recordResponses(process.env.DOCORCH_RESPONSE_LOG, true);
