// The batch loader's worker: fills one batch per request (see loader.ts).

import { parentPort, workerData } from 'node:worker_threads';
import { fillBatch } from './augment.js';
import type { BatchWorkerData } from './loader.js';
import type { BatchReply, BatchRequest } from './batch-protocol.js';
import { Rng } from '../nn/random.js';

const { data, options } = workerData as BatchWorkerData;
const per = data.channels * data.height * data.width;

parentPort!.on('message', (req: BatchRequest) => {
  try {
    const n = req.indices.length;
    const pixels = new Float32Array(n * per);
    const targets = new Float32Array(n * options.numClasses);
    fillBatch(data, req.indices, options, new Rng(req.rngState), pixels, targets, req.flips);
    parentPort!.postMessage({ id: req.id, pixels, targets, size: n } satisfies BatchReply, [pixels.buffer, targets.buffer]);
  } catch (err) {
    parentPort!.postMessage({ id: req.id, error: (err as Error).message } satisfies BatchReply);
  }
});
