// The inference side of the service on its own: worker threads that own the ONNX Runtime sessions of
// the models, and the batcher in front of them. The service starts it for its routes; vitrine predict
// starts it in its own process for a folder of images (no HTTP between).

import { type BatchObserver, Batcher, type BatcherOptions } from './batcher.js';
import type { ServedModel } from './models.js';
import { WorkerPool } from './pool.js';
import { type Device, checkDevice, mayUseWebGpu } from '../../runtime/ort.js';
import type { WorkerModel } from './inference-protocol.js';
import { imageSpec } from '../../runtime/pixels.js';

export interface InferenceOptions extends BatcherOptions {
  device: Device;
  threads: number;
  workers: number;
  /** The workers' nice value (0: the event loop's). */
  workerNice: number;
}

export interface Inference {
  pool: WorkerPool;
  batcher: Batcher;
  /** The models the workers opened (those they could not are left out, and logged with the reason). */
  models: ServedModel[];
  /** Waits for the queued work, then stops the workers. */
  close(): Promise<void>;
}

function explanationOf(
  file: string,
  lightFile: string | null | undefined,
  r: NonNullable<ServedModel['config']['relevance']>,
): NonNullable<WorkerModel['explanation']> {
  return {
    file,
    ...(lightFile ? { lightFile } : {}),
    classInput: r.class_input,
    gradientOutputs: r.gradient_outputs,
    ...(r.input_gradient_output ? { inputGradientOutput: r.input_gradient_output } : {}),
    ...(r.top_class !== undefined ? { topClass: r.top_class } : {}),
  };
}

/** What the workers need of a served model's version. */
export function workerModelOf(m: ServedModel): WorkerModel {
  return {
    name: m.name,
    key: m.key,
    file: m.file,
    inputName: m.config.input_name,
    logitsOutput: m.config.logits_output,
    attentionOutputs: m.grid ? m.config.attention_outputs : [],
    ...(m.grid && m.config.rollout_output ? { rolloutOutput: m.config.rollout_output } : {}),
    inputDims: [m.config.mean.length, m.config.image_size[0], m.config.image_size[1]],
    normalization: imageSpec(m.config),
    classes: m.config.labels.length,
    prefixTokens: m.config.prefix_tokens ?? 1,
    ...(m.grid ? { grid: m.grid } : {}),
    ...(m.explanationFile && m.config.relevance
      ? { explanation: explanationOf(m.explanationFile, m.lightExplanationFile, m.config.relevance) }
      : {}),
  };
}

const NO_OBSERVER: BatchObserver = { batch: () => {}, depth: () => {} };

export async function startInference(
  models: readonly ServedModel[],
  o: InferenceOptions,
  log: { info(m: string): void; error(m: string): void },
  observer: BatchObserver = NO_OBSERVER,
): Promise<Inference> {
  checkDevice(o.device);
  let workers = o.workers;
  if (workers > 1 && mayUseWebGpu(o.device)) {
    log.info(
      `device ${o.device}: one inference worker instead of ${workers}: ONNX ` +
        `Runtime's WebGPU context is one per process and cannot be used by two ` +
        `threads at once (a GPU runs one batch at a time anyway; --max-batch ` +
        `sets how large)`,
    );
    workers = 1;
  }
  const pool = new WorkerPool(
    {
      device: o.device,
      threads: o.threads,
      nice: o.workerNice,
      models: models.map(workerModelOf),
    },
    workers,
    log,
  );
  try {
    await pool.start();
  } catch (err) {
    await pool.close();
    throw err;
  }
  // A model the workers could not open is left out, with the reason; the others are served.
  for (const [name, why] of Object.entries(pool.skipped)) log.error(`skipping model ${name}: ${why}`);
  const opened = models.filter((m) => !(m.name in pool.skipped));
  const batcher = new Batcher(pool, o, observer);
  return {
    pool,
    batcher,
    models: opened,
    close: async () => {
      await batcher.drained();
      batcher.close();
      await pool.close();
    },
  };
}
