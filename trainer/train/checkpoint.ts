// A checkpoint is one safetensors file: the model's weights under the seed's names, the optimizer's
// state under `optimizer.*`, and in its metadata the ViT config, the labels, the run's config and
// where the run stands (step, epoch, running sums, metrics so far). A small JSON beside it says the
// same for people. Both are written atomically, together.

import { existsSync } from 'node:fs';
import path from 'node:path';
import { writeFilesAtomic } from '../io/atomic.js';
import { type NamedTensor, encodeSafetensors, readSafetensors } from '../io/safetensors.js';
import { type ViTConfig, parseViTConfig } from '../vit/config.js';
import { weightsToSave } from '../vit/weights.js';
import type { ViT } from '../vit/model.js';
import { DEFAULT_TRAIN, type TrainConfig, mergeTrainConfig } from './config.js';
import type { EpochMetrics } from './report.js';
import type { TrainingRecord } from '../../runtime/model-config.js';

export const CHECKPOINT_FILE = 'checkpoint.safetensors';
export const CHECKPOINT_JSON = 'checkpoint.json';
export const OPTIMIZER_PREFIX = 'optimizer.';

export interface RunState {
  /** Updates done so far. */
  step: number;
  /** Completed epochs. */
  epoch: number;
  /** Running sums of the epoch in progress. */
  lossSum: number;
  correct: number;
  seen: number;
  elapsedS: number;
  history: EpochMetrics[];
}

export interface Checkpoint {
  vit: ViTConfig;
  train: TrainConfig;
  labels: string[];
  state: RunState;
  weights: Map<string, NamedTensor>;
  optimizer: Map<string, Float32Array>;
}

export async function saveCheckpoint(
  dir: string,
  model: ViT,
  optimizer: Map<string, Float32Array>,
  train: TrainConfig,
  labels: readonly string[],
  state: RunState,
): Promise<string> {
  const tensors = weightsToSave(model);
  for (const [name, data] of optimizer) tensors.set(name, { shape: [data.length], data });
  const run = { version: 1, ...state, config: train };
  const file = path.join(dir, CHECKPOINT_FILE);
  const summary = {
    step: state.step,
    epoch: state.epoch,
    elapsed_s: Math.round(state.elapsedS),
    last: state.history.at(-1) ?? null,
    saved_at: new Date().toISOString(),
  };
  await writeFilesAtomic([
    [
      file,
      encodeSafetensors(tensors, {
        format: 'pt',
        vit_config: JSON.stringify(model.config),
        labels: JSON.stringify(labels),
        vitrine_run: JSON.stringify(run),
      }),
    ],
    [path.join(dir, CHECKPOINT_JSON), JSON.stringify(summary, null, 2) + '\n'],
  ]);
  return file;
}

export async function loadCheckpoint(dir: string): Promise<Checkpoint> {
  const file = path.join(dir, CHECKPOINT_FILE);
  if (!existsSync(file)) throw new Error(`nothing to resume: ${file} does not exist`);
  const { tensors, metadata } = await readSafetensors(file);
  if (!metadata.vitrine_run || !metadata.vit_config) throw new Error(`${file}: not a vitrine training checkpoint (no run metadata)`);
  const run = JSON.parse(metadata.vitrine_run) as RunState & { config: TrainConfig };
  const weights = new Map<string, NamedTensor>();
  const optimizer = new Map<string, Float32Array>();
  for (const [name, t] of tensors) {
    if (name.startsWith(OPTIMIZER_PREFIX)) optimizer.set(name, t.data);
    else weights.set(name, t);
  }
  const { config, ...state } = run;
  // keys added since the checkpoint was written take their defaults (which change nothing)
  return {
    vit: parseViTConfig(JSON.parse(metadata.vit_config), `${file} (vit_config)`),
    train: mergeTrainConfig(DEFAULT_TRAIN, config, `${file} (vitrine_run)`),
    labels: JSON.parse(metadata.labels ?? '[]'),
    state: state as RunState,
    weights,
    optimizer,
  };
}

/** What a model trained by this run records (config.json's `training`, the weights' metadata), so that
 *  eval holds out the images the run held out, whichever file the model is exported from. */
export function trainingRecord(c: TrainConfig): TrainingRecord {
  return { data: c.data === 'cifar10' ? 'cifar10' : path.resolve(c.data), val_ratio: c.val_ratio, seed: c.seed };
}
