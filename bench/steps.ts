// Whole training steps as the trainer runs them, timed: the batch prepared by the worker while the
// previous step runs, forward + loss + gradients in one ONNX Runtime call, then AdamW. Shared by
// bench:train and bench:finetune.

import { readFileSync } from 'node:fs';
import { BatchLoader } from '../trainer/data/loader.js';
import type { ImageDataset } from '../trainer/data/dataset.js';
import { Rng } from '../trainer/nn/random.js';
import { AdamW } from '../trainer/train/optim.js';
import type { StepRunner } from '../trainer/train/step.js';
import { recipeFile } from '../trainer/train/recipes.js';
import { SEED_CONFIG, type ViTConfig, parseViTConfig } from '../trainer/vit/config.js';

/** A bench's architecture: a recipe's (by name or file) model and batch size, or the seed ViT at 256. */
export function benchArchitecture(recipeName: string | null | undefined): {
  recipe: Record<string, unknown> | null;
  config: ViTConfig;
  batch: number;
} {
  const recipe = recipeName
    ? (JSON.parse(readFileSync(recipeFile(recipeName) ?? recipeName, 'utf8')) as { model?: Record<string, unknown>; batch_size?: number })
    : null;
  return { recipe, config: recipe ? parseViTConfig(recipe.model ?? {}, recipeName!) : SEED_CONFIG, batch: recipe?.batch_size ?? 256 };
}

export interface TimedSteps {
  runner: StepRunner;
  data: ImageDataset;
  loader: ConstructorParameters<typeof BatchLoader>[1];
  batch: number;
  warmup: number;
  steps: number;
  lr: number;
  weightDecay: number;
}

/** Seconds for `steps` steps after `warmup` untimed ones (the loader is closed after). */
export async function timeSteps(o: TimedSteps): Promise<number> {
  const loader = new BatchLoader(o.data, o.loader);
  const optimizer = new AdamW({ weightDecay: o.weightDecay, betas: [0.9, 0.999], eps: 1e-8 });
  const params = o.runner.params.map((p) => ({ name: p.name, data: p.data, decay: true }));
  const indices = (s: number) => Uint32Array.from({ length: o.batch }, (_, i) => (s * o.batch + i) % o.data.count);
  const rng = new Rng(1);
  let pending = loader.request(indices(0), new Rng(0).state);
  let start = 0;
  for (let s = 0; s < o.warmup + o.steps; s++) {
    if (s === o.warmup) start = performance.now();
    const b = await pending;
    pending = loader.request(indices(s + 1), new Rng(s + 1).state);
    const r = await o.runner.step(b.pixels, b.targets, b.size, rng);
    optimizer.step(params, r.grads, o.lr);
  }
  const seconds = (performance.now() - start) / 1000;
  await pending;
  await loader.close();
  return seconds;
}
