export { runAdmin, type Io } from './admin.js';
