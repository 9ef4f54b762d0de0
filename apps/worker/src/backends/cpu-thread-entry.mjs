// Plain-JS entry of the cpu backend's worker thread: registers the TypeScript loader in this
// thread (a thread does not inherit the main thread's loader hooks everywhere), then loads it.
import { register } from 'tsx/esm/api';

register();
await import('./cpu-thread.ts');
