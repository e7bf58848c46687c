export { createWorkerService, type WorkerService, type WorkerServiceOptions } from './service.js';
