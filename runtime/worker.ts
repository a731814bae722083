// Starts a worker thread from a module next to the caller. Built code runs the .js file; the sources,
// run through tsx in tests and benchmarks, run the .ts file with tsx registered inside the worker
// (workers do not inherit the parent's loader hooks).

import { Worker, type WorkerOptions } from 'node:worker_threads';

/** `siblingUrl(import.meta.url, 'batch-worker')` -> the worker file beside the caller, same extension. */
export function siblingUrl(callerUrl: string, name: string): URL {
  const ext = callerUrl.endsWith('.ts') ? '.ts' : '.js';
  return new URL(`./${name}${ext}`, callerUrl);
}

export function startWorker(url: URL, options: WorkerOptions = {}): Worker {
  if (!url.pathname.endsWith('.ts')) return new Worker(url, options);
  const tsx = import.meta.resolve('tsx/esm/api');
  const code = `import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(url.href)}); });`;
  return new Worker(code, { ...options, eval: true });
}
