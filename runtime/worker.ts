// Starts a worker thread from a module next to the caller. Built code runs the .js file; the sources,
// run through tsx in tests and benchmarks, run the .ts file with tsx registered inside the worker
// (workers do not inherit the parent's loader hooks). And the one helper every owner of a worker uses
// to match replies to requests.

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

/** Requests waiting for their replies, matched by id; every one is settled once. */
export class Pending<R> {
  private next = 0;
  private readonly waiting = new Map<number, { resolve: (r: R) => void; reject: (e: Error) => void }>();

  /** A fresh id, and the promise its reply settles. */
  open(): { id: number; reply: Promise<R> } {
    const id = this.next++;
    const reply = new Promise<R>((resolve, reject) => this.waiting.set(id, { resolve, reject }));
    return { id, reply };
  }

  resolve(id: number, value: R): void {
    this.take(id)?.resolve(value);
  }

  reject(id: number, err: Error): void {
    this.take(id)?.reject(err);
  }

  /** Fails every request still waiting (the worker is gone). */
  rejectAll(err: Error): void {
    for (const w of this.waiting.values()) w.reject(err);
    this.waiting.clear();
  }

  private take(id: number) {
    const w = this.waiting.get(id);
    this.waiting.delete(id);
    return w;
  }
}
