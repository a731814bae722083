// Prepares batches in a worker thread so that the next batch is ready when the current training step
// ends (ONNX Runtime's run blocks the main thread meanwhile). The images sit in shared memory; each
// request names the image indices and the state of the generator that draws the augmentations, so a
// batch depends on nothing but its request.

import type { ImageDataset } from './dataset.js';
import type { BatchOptions } from './augment.js';
import { siblingUrl, startWorker } from '../../runtime/worker.js';
import { Pending } from '../../runtime/worker.js';
import type { BatchReply, BatchRequest } from './batch-protocol.js';
import type { Worker } from 'node:worker_threads';

export interface Batch {
  pixels: Float32Array; // (n, C, H, W)
  targets: Float32Array; // (n, classes)
  size: number;
}

/** What the batch worker is started with. */
export interface BatchWorkerData {
  data: ImageDataset;
  options: BatchOptions;
}

export class BatchLoader {
  private readonly worker: Worker;
  private readonly waiting = new Pending<Batch>();
  private failure: Error | null = null;

  constructor(data: ImageDataset, options: BatchOptions) {
    const shared = new Uint8Array(new SharedArrayBuffer(data.images.length));
    shared.set(data.images);
    const labels = new Uint16Array(new SharedArrayBuffer(data.labels.byteLength));
    labels.set(data.labels);
    this.worker = startWorker(siblingUrl(import.meta.url, 'batch-worker'), {
      workerData: { data: { ...data, images: shared, labels }, options } satisfies BatchWorkerData,
    });
    this.worker.on('message', (m: BatchReply) => {
      if ('error' in m) this.waiting.reject(m.id, new Error(`batch worker: ${m.error}`));
      else this.waiting.resolve(m.id, { pixels: m.pixels, targets: m.targets, size: m.size });
    });
    this.worker.on('error', (err) => this.fail(err));
    this.worker.on('exit', (code) => this.fail(new Error(`batch worker exited (${code})`)));
  }

  private fail(err: Error): void {
    this.failure ??= err;
    this.waiting.rejectAll(this.failure);
  }

  /** The batch of the images at `indices`, augmented by draws from `rngState`; `flips` (one per
   *  index, 1 = mirrored) decides the flips instead of a draw. */
  request(indices: Uint32Array, rngState: number[], flips?: Uint8Array): Promise<Batch> {
    if (this.failure) return Promise.reject(this.failure);
    const { id, reply } = this.waiting.open();
    this.worker.postMessage({ id, indices, rngState, ...(flips ? { flips } : {}) } satisfies BatchRequest);
    return reply;
  }

  async close(): Promise<void> {
    this.failure ??= new Error('batch loader closed');
    await this.worker.terminate();
  }
}
