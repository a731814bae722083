// Worker threads that compute for long stretches (inference batches, heatmap draws) run at a lower
// scheduling priority than the event loop's thread. On a machine whose cores they keep busy, the
// event loop then gets its turn as soon as it has work (a /healthz probe, a request to parse) instead
// of waiting behind a batch for the kernel's time slice. Linux keeps a nice value per thread, and a
// thread starts with its creator's: ONNX Runtime's intra-op threads, started by a worker after the
// call, run at the worker's. Elsewhere this does nothing.

import { readFileSync } from 'node:fs';
import os from 'node:os';
import { isMainThread } from 'node:worker_threads';

/** The kernel's id of the calling thread (Linux), or null. */
export function threadId(): number | null {
  if (process.platform !== 'linux') return null;
  try {
    const tid = Number.parseInt(readFileSync('/proc/thread-self/stat', 'utf8'), 10);
    return Number.isInteger(tid) && tid > 0 ? tid : null;
  } catch {
    return null;
  }
}

/**
 * Raises the calling worker thread's nice value to `nice` (0-19; a thread already nicer keeps its
 * own, and the main thread is never changed). Returns the value the thread runs at afterwards, or
 * null where it was not asked or cannot be set (nice 0, the main thread, no per-thread priority, or
 * the kernel refused).
 */
export function lowerThreadPriority(nice: number): number | null {
  if (!(nice > 0) || isMainThread) return null;
  const tid = threadId();
  if (tid === null || tid === process.pid) return null;
  try {
    if (os.getPriority(tid) < nice) os.setPriority(tid, Math.min(19, Math.round(nice)));
    return os.getPriority(tid);
  } catch {
    return null;
  }
}
