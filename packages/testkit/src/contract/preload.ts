// Loaded with `node --import` into API processes under test (see recorder.ts).
import { recordResponses } from './recorder.js';

if (process.env.DOCORCH_RESPONSE_LOG) recordResponses(process.env.DOCORCH_RESPONSE_LOG);
