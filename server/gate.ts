// At most `limit` tasks at once, the rest wait in order; beyond `maxWaiting` waiters a new task is
// refused with 503. The server decodes images through one: sharp runs each decode on a libuv thread
// with libvips threads of its own, and decodes beyond the cores starve the event loop of CPU.
// The default, half the cores, trades a little throughput for /healthz's latency (docs/service.md,
// Images; `npm run bench:serve -- --image-size 300 --image-format jpeg --decoders N`).

import { Errors } from './errors.js';

/** Calls `expire` at `deadline` (performance.now() time); no timer for an infinite one. The caller
 *  clears it (clearTimeout) when the work ends first. */
export function atDeadline(deadline: number, expire: () => void): ReturnType<typeof setTimeout> | undefined {
  return Number.isFinite(deadline) ? setTimeout(expire, Math.max(0, deadline - performance.now())) : undefined;
}

export class Gate {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    readonly limit: number,
    readonly maxWaiting: number,
    /** What waits, for the 503's message. */
    private readonly waits = 'images are waiting to be decoded',
  ) {}

  get running(): number {
    return this.active;
  }

  get queued(): number {
    return this.waiting.length;
  }

  /** Runs `task` when a slot is free; one that has not got a slot by `deadline` (performance.now()
   *  time) is answered 504 and leaves the queue. */
  async run<T>(task: () => Promise<T>, deadline = Infinity): Promise<T> {
    if (this.active >= this.limit) {
      if (this.waiting.length >= this.maxWaiting)
        throw Errors.overloaded(`${this.waiting.length} ${this.waits}; retry shortly`, { 'retry-after': '1' });
      await new Promise<void>((resolve, reject) => {
        const admit = () => {
          clearTimeout(timer);
          resolve();
        };
        const timer = atDeadline(deadline, () => {
          const i = this.waiting.indexOf(admit);
          if (i >= 0) this.waiting.splice(i, 1);
          reject(Errors.timeout(`no answer in time: still waiting with ${this.waiting.length} others while ${this.waits}`));
        });
        this.waiting.push(admit);
      });
    } else this.active++;
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      if (next)
        next(); // the slot passes on
      else this.active--;
    }
  }
}
