// Transfer, measured: does starting from a pretrained encoder beat training from scratch on a small
// folder? A seed-architecture ViT is pretrained on CIFAR-10's classes 0-4 (airplane … deer, 25,000
// images; the cifar10-ra recipe), then fine-tuned with `vitrine train --init <its model> --recipe
// finetune` on 100 training images of each of classes 5-9 (dog … truck), none of which it has seen.
// The same architecture is trained from scratch on those 500 images with the same recipe, epochs and
// batch (no freezing or layer decay; at the fine-tune's rate and at 4x it, the better one counted).
// Every run is evaluated on the 5,000 CIFAR-10 test images of classes 5-9 after its last epoch.
// Then the speed of a fine-tuning step at 224 px for a DeiT-tiny-sized model (5.7M parameters, 197
// tokens, random weights) against PyTorch's (bench/finetune/torch-step.py) in the same run.
//
//   npm run bench:finetune [-- --pretrain-epochs 30] [--epochs 40] [--speed-only] [--transfer-only]
//
// Runs go to data/bench/finetune/<name>/ with their logs (<name>.log); a run already finished is read
// back, an interrupted one resumed. JSON lines on stdout, one per measurement.

import { spawn, spawnSync } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeDataset } from '../trainer/data/dataset.js';
import { ensureCifar10 } from '../trainer/data/cifar10.js';
import { Rng } from '../trainer/nn/random.js';
import { timeSteps } from './steps.js';
import { StepRunner } from '../trainer/train/step.js';
import { parseViTConfig } from '../trainer/vit/config.js';
import { ViT } from '../trainer/vit/model.js';
import { transferFolders } from './finetune/folders.js';
import { benchArgs } from './common.js';
import { progressPrinter } from '../bin/cli-util.js';

const { num, flag } = benchArgs('npm run bench:finetune [-- --pretrain-epochs 30] [--epochs 40] [--speed-only] [--transfer-only]', {
  strings: ['batch', 'epochs', 'pretrain-epochs', 'steps'],
  booleans: ['speed-only', 'transfer-only'],
});

const here = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.join(here, '..');
const OUT = path.join(ROOT, 'data', 'bench', 'finetune');
const CLI = path.join(ROOT, 'dist', 'bin', 'vitrine.js');

interface Metrics {
  epoch: number;
  test_accuracy: number;
  elapsed_s: number;
}

/** Runs `vitrine train` into OUT/<name> (resuming it if it was interrupted) and returns its last epoch. */
async function trainRun(name: string, args: string[]): Promise<Metrics> {
  const dir = path.join(OUT, name);
  const metricsFile = path.join(dir, 'metrics.jsonl');
  const done = () => existsSync(path.join(dir, 'model', 'config.json')) && existsSync(metricsFile);
  if (!done()) {
    const resume = existsSync(path.join(dir, 'checkpoint.safetensors'));
    const argv = [CLI, 'train', ...(resume ? ['--resume', '--out', dir] : [...args, '--out', dir])];
    console.error(`${name}: vitrine ${argv.slice(1).join(' ')} (log: ${path.join(OUT, `${name}.log`)})`);
    const log = createWriteStream(path.join(OUT, `${name}.log`), { flags: 'a' });
    const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.pipe(log, { end: false });
    child.stderr.pipe(log, { end: false });
    const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? 1)));
    log.end();
    if (code !== 0) throw new Error(`${name}: vitrine train exited ${code}; see ${path.join(OUT, `${name}.log`)}`);
  }
  const lines = readFileSync(metricsFile, 'utf8').trim().split('\n');
  return JSON.parse(lines.at(-1)!) as Metrics;
}

async function transfer(): Promise<void> {
  const cifar = path.join(await ensureCifar10(path.join(ROOT, 'data', 'cifar10'), progressPrinter().progress));
  const { pretrain, target } = await transferFolders(cifar, OUT);
  const epochs = String(num('epochs', 40));
  const common = ['--data', target, '--recipe', 'finetune', '--epochs', epochs];
  const pre = await trainRun('pretrain', ['--recipe', 'cifar10-ra', '--data', pretrain, '--epochs', String(num('pretrain-epochs', 30))]);
  console.log(
    JSON.stringify({
      bench: 'finetune-pretrain',
      classes: 'airplane automobile bird cat deer',
      train_images: 25000,
      epochs: pre.epoch,
      test_accuracy: pre.test_accuracy,
      test_images: 5000,
      wall_s: pre.elapsed_s,
    }),
  );
  const tuned = await trainRun('finetuned', [...common, '--init', path.join(OUT, 'pretrain', 'model')]);
  const lr = 0.0005; // the finetune recipe's
  const scratch = [
    { name: 'scratch', lr, m: await trainRun('scratch', [...common, '--freeze', 'none', '--layer-decay', '1']) },
    {
      name: 'scratch-lr4x',
      lr: 4 * lr,
      m: await trainRun('scratch-lr4x', [...common, '--freeze', 'none', '--layer-decay', '1', '--lr', String(4 * lr)]),
    },
  ];
  for (const s of scratch)
    console.log(
      JSON.stringify({
        bench: 'finetune-scratch',
        run: s.name,
        lr: s.lr,
        train_images: 500,
        epochs: s.m.epoch,
        test_accuracy: s.m.test_accuracy,
        test_images: 5000,
        wall_s: s.m.elapsed_s,
      }),
    );
  const best = scratch.reduce((a, b) => (b.m.test_accuracy > a.m.test_accuracy ? b : a));
  console.log(
    JSON.stringify({
      bench: 'finetune-transfer',
      classes: 'dog frog horse ship truck',
      train_images: 500,
      epochs: tuned.epoch,
      finetuned_accuracy: tuned.test_accuracy,
      scratch_accuracy: best.m.test_accuracy,
      scratch_run: best.name,
      test_images: 5000,
      finetune_wall_s: tuned.elapsed_s,
    }),
  );
}

async function speed(): Promise<void> {
  const batch = num('batch', 32);
  const steps = num('steps', 5);
  const cores = os.cpus().length;
  // facebook/deit-tiny-patch16-224's architecture, as its config.json gives it (a ViTForImageClassification)
  const config = parseViTConfig({
    image_size: 224,
    patch_size: 16,
    hidden_size: 192,
    num_hidden_layers: 12,
    num_attention_heads: 3,
    intermediate_size: 768,
    hidden_act: 'gelu',
    layer_norm_eps: 1e-12,
    final_layernorm: true,
    num_classes: 1000,
    mean: [0.485, 0.456, 0.406],
    std: [0.229, 0.224, 0.225],
  });
  const rng = new Rng(1);
  const count = batch * 2;
  const pixels = 3 * 224 * 224;
  const data = makeDataset(
    Uint8Array.from({ length: count * pixels }, () => rng.int(256)),
    Uint16Array.from({ length: count }, () => rng.int(1000)),
    { channels: 3, height: 224, width: 224 },
    Array.from({ length: 1000 }, (_, i) => String(i)),
  );
  const model = new ViT(config, 0);
  const runner = new StepRunner(model, { device: 'cpu', threads: 0 });
  const s = await timeSteps({
    runner,
    data,
    batch,
    warmup: 2,
    steps,
    lr: 5e-4,
    weightDecay: 0.05,
    loader: { mean: config.mean, std: config.std, numClasses: 1000, labelSmoothing: 0.1, augment: { cropPadding: 0, flip: true } },
  });
  console.log(
    JSON.stringify({
      bench: 'finetune-step',
      runner: 'onnxruntime-cpu',
      model: 'deit-tiny-224',
      parameters: model.parameterCount(),
      batch,
      images_per_s: +((steps * batch) / s).toFixed(2),
      ms_per_step: +((s / steps) * 1000).toFixed(1),
      steps,
      cores,
    }),
  );

  // PyTorch at its best, as bench:train runs it (OpenBLAS, the machine's OpenBLAS overrides removed).
  const env = { ...process.env };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  for (const python of ['/usr/bin/python3', 'python3']) {
    if (spawnSync(python, ['-c', 'import torch'], { stdio: 'ignore' }).status !== 0) continue;
    const r = spawnSync(python, [path.join(here, 'finetune', 'torch-step.py'), '--steps', String(steps), '--batch', String(batch)], {
      encoding: 'utf8',
      env,
    });
    process.stdout.write(r.stdout);
    if (r.status !== 0) console.error(r.stderr);
    if (r.stdout.includes('"openblas": false'))
      console.error('warning: PyTorch ran without OpenBLAS (apt-get install libopenblas0-pthread): this anchor is far below its best');
    return;
  }
  console.error('no python3 with torch: the PyTorch anchor was not run');
}

if (!flag('speed-only')) await transfer();
if (!flag('transfer-only')) await speed();
