export { createStreamHandler, jobReadyIn, type StreamHandler, type StreamHandlerOptions } from './handler.js';
export { StreamPoller, type StreamPollerOptions } from './local-poller.js';
