export { createApp } from './app.js';
export { jobView } from './routes/documents.js';
export { problemOf, sendProblem, type Problem } from './problem.js';
export { ApiLifecycle, type ApiState } from './lifecycle.js';
