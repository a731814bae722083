// The inference worker pool: N worker threads, each with its sessions. A worker that dies is
// replaced (with the versions loaded now); the requests it was running fail with a 500 and the
// service stays up. Versions are loaded into every worker and unloaded from every worker while
// serving (load, unload).

import { EventEmitter } from 'node:events';
import type { Worker } from 'node:worker_threads';
import { Pending, siblingUrl, startWorker } from '../../runtime/worker.js';
import type { GpuAdapter } from '../../runtime/gpu.js';
import { Errors } from '../errors.js';
import {
  CRASH,
  type InferenceMessage,
  type RunReply,
  type RunRequest,
  type WorkerCommand,
  type WorkerInit,
  type WorkerModel,
} from './inference-protocol.js';
import { ownsBuffer } from './worker-arrays.js';

type LoadReply = { provider: string; adapter: GpuAdapter | null };

interface Slot {
  index: number;
  worker: Worker;
  ready: boolean;
  busy: boolean;
  control: Int32Array;
  inflight: Pending<RunReply>;
  loads: Pending<LoadReply>;
  /** Ended by kill(): its runs have failed already and anything it still sends is ignored. */
  killed: boolean;
}

export class WorkerPool extends EventEmitter {
  private readonly slots: Slot[] = [];
  private closing = false;
  /** Messages the workers logged: each said once, not once per worker. */
  private readonly logged = new Set<string>();
  providers: Record<string, string> = {};
  /** The GPU each model's sessions run on (WebGPU), null on the CPU and CUDA. */
  adapters: Record<string, GpuAdapter | null> = {};

  /** What a model runs on, as /models, /readyz and the metrics say it. */
  deviceOf(model: string): { provider: string; adapter: GpuAdapter | null } {
    return { provider: this.providers[model] ?? 'unknown', adapter: this.adapters[model] ?? null };
  }
  /** Models the workers could not open, with the reason (the others are served). */
  skipped: Record<string, string> = {};
  restarts = 0;
  /** The versions every worker holds: a worker that starts gets these. */
  private models: WorkerModel[];

  constructor(
    private readonly init: WorkerInit,
    readonly size: number,
    private readonly log: { info: (m: string) => void; error: (m: string) => void },
  ) {
    super();
    this.models = [...init.models];
  }

  /** Starts every worker; resolves when all are ready, rejects with the first start failure. */
  async start(): Promise<void> {
    await Promise.all(Array.from({ length: this.size }, (_, i) => this.spawn(i)));
  }

  private spawn(index: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const control = new Int32Array(new SharedArrayBuffer(4));
      const models = [...this.models];
      const worker = startWorker(siblingUrl(import.meta.url, 'inference-worker'), {
        workerData: { ...this.init, models, control: control.buffer },
      });
      const inflight = new Pending<RunReply>();
      const slot: Slot = { index, worker, ready: false, busy: false, control, inflight, loads: new Pending<LoadReply>(), killed: false };
      this.slots[index] = slot;
      worker.on('message', (m: InferenceMessage) => {
        if (m.type === 'ready') {
          this.providers = { ...this.providers, ...m.providers };
          this.adapters = { ...this.adapters, ...m.adapters };
          if (this.restarts === 0) this.skipped = m.skipped;
          // versions loaded or unloaded while this worker started: it catches up before it takes work
          this.catchUp(slot, models).then(() => {
            slot.ready = true;
            resolve();
            this.emit('free');
          }, reject);
        } else if (m.type === 'loaded') slot.loads.resolve(m.id, { provider: m.provider, adapter: m.adapter });
        else if (m.type === 'load-failed') slot.loads.reject(m.id, new Error(m.message));
        else if (m.type === 'log') {
          if (!this.logged.has(m.message)) this.log.info(m.message);
          this.logged.add(m.message);
        } else if (m.type === 'fatal') {
          reject(new Error(m.message));
          void worker.terminate();
        } else if (!slot.killed) {
          slot.busy = false;
          if (m.type === 'error') slot.inflight.reject(m.id, Errors.internal(`inference failed: ${m.message}`));
          else slot.inflight.resolve(m.id, m);
          this.emit('free');
        }
      });
      worker.on('error', (err) => this.log.error(`inference worker ${index} failed: ${err.message}`));
      worker.on('exit', (code) => {
        const wasReady = slot.ready || slot.killed;
        slot.ready = false;
        this.failInflight(slot);
        if (!wasReady) reject(new Error(`inference worker ${index} exited (${code}) before it was ready`));
        if (this.closing || this.slots[index] !== slot) return;
        this.restarts++;
        this.log.error(`inference worker ${index} exited (${code}); starting a new one`);
        this.emit('lost', index);
        setTimeout(
          () => {
            if (!this.closing)
              this.spawn(index).catch((err: Error) => this.log.error(`inference worker ${index} could not restart: ${err.message}`));
          },
          wasReady ? 0 : 1000,
        ).unref();
      });
    });
  }

  get readyCount(): number {
    return this.slots.filter((s) => s?.ready).length;
  }

  get ready(): boolean {
    return !this.closing && this.readyCount === this.size;
  }

  /** A worker with nothing to do, if any. */
  idle(): Slot | null {
    return this.slots.find((s) => s?.ready && !s.busy) ?? null;
  }

  /** How many workers have nothing to do. */
  idleCount(): number {
    return this.slots.filter((s) => s?.ready && !s.busy).length;
  }

  run(slot: Slot, req: Omit<RunRequest, 'type' | 'id'>): Promise<RunReply> {
    const { id, reply } = slot.inflight.open();
    slot.busy = true;
    // the images are copied to the worker (a kept result holds on to its own); a view into a larger
    // buffer (a Buffer from Node's pool) is copied out first, or the whole buffer would go with it
    const images = req.images.map((a) => (ownsBuffer(a) ? a : a instanceof Float32Array ? a.slice() : new Uint8Array(a)));
    slot.worker.postMessage({ type: 'run', id, ...req, images } satisfies RunRequest);
    return reply;
  }

  /** Opens a version's sessions in every worker; rejects with the first worker's reason (the version
   *  is then unloaded from the others). */
  async load(model: WorkerModel): Promise<LoadReply> {
    this.models.push(model);
    const slots = this.slots.filter((s) => s?.ready && !s.killed);
    const replies = await Promise.allSettled(slots.map((s) => this.loadInto(s, model)));
    const failed = replies.find((r) => r.status === 'rejected');
    if (failed) {
      this.unload(model.key);
      throw (failed as PromiseRejectedResult).reason;
    }
    const reply = (replies[0] as PromiseFulfilledResult<LoadReply> | undefined)?.value ?? { provider: 'unknown', adapter: null };
    this.providers[model.name] = reply.provider;
    this.adapters[model.name] = reply.adapter;
    return reply;
  }

  /** Releases a version's sessions in every worker (the caller has nothing more queued for it). */
  unload(key: string): void {
    this.models = this.models.filter((m) => m.key !== key);
    for (const s of this.slots)
      if (s && !s.killed && s.worker.threadId !== -1) s.worker.postMessage({ type: 'unload', key } satisfies WorkerCommand);
  }

  private loadInto(slot: Slot, model: WorkerModel): Promise<LoadReply> {
    const { id, reply } = slot.loads.open();
    slot.worker.postMessage({ type: 'load', id, model } satisfies WorkerCommand);
    return reply;
  }

  /** A worker started with `had` loads what has been loaded since and drops what has been unloaded. */
  private async catchUp(slot: Slot, had: WorkerModel[]): Promise<void> {
    for (const m of had) if (!this.models.includes(m)) slot.worker.postMessage({ type: 'unload', key: m.key } satisfies WorkerCommand);
    for (const m of this.models) if (!had.includes(m)) await this.loadInto(slot, m);
  }

  private failInflight(slot: Slot): void {
    slot.loads.rejectAll(new Error(`inference worker ${slot.index} stopped while loading`));
    slot.inflight.rejectAll(
      Errors.workerFailed('the inference worker stopped while running this request; it has been replaced, try again'),
    );
  }

  /**
   * Ends worker `index` as a crash would (for tests and drills): from this call on the pool treats it
   * as gone, so a run in progress fails with VIT_WORKER_FAILED whether or not the worker still gets to
   * answer it, and nothing more is sent to it; the worker leaves as soon as ONNX Runtime lets it (see
   * server/engine/inference-protocol.ts) and a new one takes its place.
   */
  async kill(index: number): Promise<void> {
    const slot = this.slots[index];
    if (!slot || slot.killed) return;
    slot.killed = true;
    slot.ready = false;
    Atomics.store(slot.control, 0, CRASH);
    this.failInflight(slot);
    await this.stop(slot, { type: 'crash' });
  }

  /** Stops every worker once its current run is done (terminated if it does not within graceMs). */
  async close(graceMs = 10_000): Promise<void> {
    this.closing = true;
    await Promise.all(this.slots.map((s) => s && this.stop(s, { type: 'stop' }, graceMs)));
  }

  private stop(slot: Slot, command: WorkerCommand, graceMs = 10_000): Promise<void> {
    return new Promise((resolve) => {
      if (slot.worker.threadId === -1) return resolve(); // already gone
      const timer = setTimeout(() => void slot.worker.terminate(), graceMs);
      slot.worker.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      slot.worker.postMessage(command);
    });
  }
}
