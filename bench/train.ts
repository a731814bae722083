// Training throughput of the seed ViT at batch 256 on ONNX Runtime (CPU): whole steps as the trainer
// runs them (batch prepared in the worker, forward + loss + gradients, AdamW), the forward alone in
// the same run, and, where python3 with torch is installed, the seed's PyTorch model trained the same
// way (bench/torch_train.py). One JSON line per measurement.
//   npm run bench:train [-- --steps 12] [--recipe cct-cifar10 [--augment recipe]] [--no-spin] [--no-anchor] [--device cpu|webgpu|cuda|auto]

import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeDataset } from '../trainer/data/dataset.js';
import { Rng } from '../trainer/nn/random.js';
import { benchArchitecture, timeSteps } from './steps.js';
import { StepRunner } from '../trainer/train/step.js';
import { DEFAULT_TRAIN, mergeTrainConfig } from '../trainer/train/config.js';
import { augmentOptions } from '../trainer/train/loop.js';
import { ViT } from '../trainer/vit/model.js';
import { DEVICES, type Device } from '../runtime/ort.js';
import { Results, type Row, benchFlags } from './common.js';

const flags = benchFlags(
  'npm run bench:train [-- --steps 12] [--recipe cct-cifar10 [--augment recipe]] [--no-spin] [--no-anchor] [--device cpu|webgpu|cuda|auto]',
  {
    steps: { type: 'string', default: '12' },
    recipe: { type: 'string' },
    augment: { type: 'string' },
    'no-spin': { type: 'boolean', default: false },
    'no-anchor': { type: 'boolean', default: false },
    device: { type: 'string', default: 'cpu' },
  },
);
const steps = Number(flags.steps) || 12;
// --recipe <name>: that recipe's architecture and batch size (e.g. cct-cifar10, whose convolutional
// tokenizer's gradients dominate its step) instead of the seed ViT at 256; the PyTorch anchor is the
// same architecture (bench/torch_train.py --config), for the seed and the convolutional tokenizer.
const recipeName = flags.recipe ?? null;
const { recipe, config, batch } = benchArchitecture(recipeName);
const cores = os.cpus().length;

// Random images stand in for CIFAR-10: the arithmetic does not depend on the pixels.
const rng = new Rng(1);
const count = batch * 4;
const data = makeDataset(
  Uint8Array.from({ length: count * 3072 }, () => rng.int(256)),
  Uint16Array.from({ length: count }, () => rng.int(10)),
  { channels: 3, height: 32, width: 32 },
  ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
);
// --augment recipe: the batches augmented as the recipe trains (RandAugment and the rest, in the batch
// worker beside the step) rather than crops and flips alone, as the PyTorch anchor does them.
// --no-spin: ONNX Runtime's threads sleep between operators rather than spin.
const recipeAugment = flags.augment === 'recipe';
if (recipeAugment && !recipe) throw new Error('--augment recipe needs --recipe');
const spin = !flags['no-spin'];
const augment = recipeAugment
  ? augmentOptions(mergeTrainConfig({ ...DEFAULT_TRAIN }, recipe!, recipeName!))
  : { cropPadding: 4, flip: true };
const model = new ViT(config, 0);
const device = flags.device as Device;
if (!DEVICES.includes(device)) throw new Error(`--device must be one of ${DEVICES.join(', ')}`);
const runner = new StepRunner(model, { device, threads: 0, spin, log: (l) => console.error(l) });
const trainS = await timeSteps({
  runner,
  data,
  batch,
  warmup: 3,
  steps,
  lr: 0.001,
  weightDecay: 0.01,
  loader: { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], numClasses: 10, labelSmoothing: 0.1, augment },
});
const results = new Results(
  'train',
  `Training steps of ${recipeName ?? 'the seed ViT'} (batch prepared, ` +
    `forward + loss + gradients, AdamW), the forward alone, and PyTorch's ` +
    `where installed`,
);
results.add({
  measure: 'train step',
  runner: `onnxruntime-${runner.provider}`,
  model: recipeName ?? 'seed',
  parameters: model.parameterCount(),
  batch,
  images_per_s: Math.round((steps * batch) / trainS),
  ms_per_step: +((trainS / steps) * 1000).toFixed(1),
  steps,
  cores,
  augment: recipeAugment ? 'recipe' : 'crop+flip',
  spin,
});

const pixels = Float32Array.from({ length: batch * 3072 }, () => rng.normal());
for (let i = 0; i < 2; i++) await runner.logits(pixels, batch);
const f0 = performance.now();
const fwd = Math.max(4, steps);
for (let i = 0; i < fwd; i++) await runner.logits(pixels, batch);
const fwdS = (performance.now() - f0) / 1000;
results.add({
  measure: 'forward',
  runner: `onnxruntime-${runner.provider}`,
  model: recipeName ?? 'seed',
  batch,
  images_per_s: Math.round((fwd * batch) / fwdS),
  cores,
});

// PyTorch, where it is installed (Debian's python3-torch); not a dependency of the project. As an
// anchor it must run at its best: with OpenBLAS (Debian's libopenblas0-pthread; without it PyTorch
// here is ~8x slower) and without the machine's OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE overrides, which
// slow it ~1.4x; they are removed for that process only. Its JSON lines name the BLAS it loaded.
const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'torch_train.py');
const torchEnv = { ...process.env };
delete torchEnv.OPENBLAS_CORETYPE;
delete torchEnv.OPENBLAS_L2_SIZE;
// The anchor has the seed's blocks and the convolutional tokenizer; other options have no PyTorch twin here.
const twin =
  !config.shifted_patch_tokenization &&
  !config.locality_self_attention &&
  config.hidden_act === 'gelu_new' &&
  !config.final_layernorm &&
  !config.distillation_token;
if (!twin) console.error('no PyTorch anchor for this architecture (bench/torch_train.py has the seed ViT and the convolutional tokenizer)');
// --no-anchor: ONNX Runtime only (an experiment on our side; no figure against PyTorch).
const anchor = twin && !flags['no-anchor'];
for (const python of anchor ? ['/usr/bin/python3', 'python3'] : []) {
  const probe = spawnSync(python, ['-c', 'import torch'], { stdio: 'ignore' });
  if (probe.status !== 0) continue;
  const r = spawnSync(
    python,
    [script, '--steps', String(steps), '--batch', String(batch), '--config', JSON.stringify(recipe?.model ?? {})],
    { encoding: 'utf8', env: torchEnv },
  );
  for (const line of r.stdout.split('\n').filter(Boolean)) {
    const { bench, ...row } = JSON.parse(line) as Row;
    results.add({ measure: `pytorch ${bench}`, ...row });
  }
  if (r.status !== 0) console.error(r.stderr);
  if (r.stdout.includes('"openblas":false'))
    console.error('warning: PyTorch ran without OpenBLAS (apt-get install libopenblas0-pthread): this anchor is far below its best');
  break;
}
results.save();
