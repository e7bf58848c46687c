// Public API of the fake Gemini server (re-exported by @docorch/testkit).
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
} from './fake-gemini.js';
export { analyseChunk, analyseReduce, extractEntities, parseContent, sentimentOf, type FakeEntity, type FakePage } from './analysis.js';
export { conform, type SchemaNode } from './conform.js';
