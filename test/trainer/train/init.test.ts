// Fine-tuning from a checkpoint (train --init): the head is kept when the labels are the checkpoint's
// and made anew when they differ, a frozen encoder does not move while the classifier learns, it thaws
// when freeze_epochs end, layer-wise decay scales the rate per block, and a resumed fine-tune ends bit
// for bit as an uninterrupted one.

import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import t from 'tap';
import { exportModel } from '../../../trainer/export.js';
import { readSafetensors } from '../../../trainer/io/safetensors.js';
import { DEFAULT_TRAIN, type TrainConfig } from '../../../trainer/train/config.js';
import type { RunData } from '../../../trainer/train/data.js';
import { layerDecayScales, train } from '../../../trainer/train/loop.js';
import { ProgressBar } from '../../../trainer/train/report.js';
import { parseViTConfig } from '../../../trainer/vit/config.js';
import { type InitSource, initConfig, readInit } from '../../../trainer/vit/init.js';
import { ViT } from '../../../trainer/vit/model.js';
import { colourDataset } from '../../helpers/data.js';
import { TINY } from '../../helpers/vit.js';

const quiet = () => new ProgressBar(new Writable({ write: (_c, _e, cb) => cb() }));
const root = mkdtempSync(path.join(os.tmpdir(), 'vitrine-init-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));

/** transformers' DeiT, tiny: exact GELU, a final norm, the distillation token and its head. */
const DEIT = parseViTConfig({
  ...TINY,
  hidden_act: 'gelu',
  final_layernorm: true,
  distillation_token: true,
  distillation_classifier: true,
  layer_norm_eps: 1e-12,
});
const data = (): RunData => {
  const d = colourDataset(48, 8, 3);
  return {
    train: d,
    eval: colourDataset(12, 8, 3, 99),
    evalName: 'test',
    classes: [...d.classes],
    source: 'colours',
    evalDescription: 'generated images',
    split: 'cifar10',
  };
};
const config = (over: Partial<TrainConfig> = {}): TrainConfig => ({
  ...DEFAULT_TRAIN,
  device: 'cpu',
  threads: 1,
  epochs: 3,
  batch_size: 8,
  lr: 0.003,
  schedule: 'cosine',
  warmup_epochs: 1,
  seed: 5,
  ...over,
});

async function checkpointFolder(name: string, labels: string[]): Promise<InitSource> {
  const dir = path.join(root, name);
  await exportModel(new ViT({ ...DEIT, num_classes: labels.length }, 11), labels, dir);
  return readInit(dir);
}

async function weightsOf(out: string): Promise<Map<string, Float32Array>> {
  const { tensors } = await readSafetensors(path.join(out, 'checkpoint.safetensors'));
  return new Map([...tensors].filter(([k]) => !k.startsWith('optimizer.')).map(([k, v]) => [k, v.data]));
}
const same = (a: Float32Array, b: Float32Array) => a.length === b.length && a.every((x, i) => Object.is(x, b[i]));
const isHead = (k: string) => /^(classifier|distillation_classifier)\./.test(k);

async function run(init: InitSource, over: Partial<TrainConfig>, out: string, stopAt = 0) {
  const lines: string[] = [];
  const stop = { requested: false };
  const progress = quiet();
  let steps = 0;
  const update = progress.update.bind(progress);
  progress.update = (p) => {
    if (++steps === stopAt) stop.requested = true;
    update(p);
  };
  const vit = initConfig(init, 3);
  const r = await train({ config: config(over), vit, data: data(), out, resume: false, log: (l) => lines.push(l), progress, stop, init });
  return { r, lines };
}

t.test('the same labels keep the head; a frozen encoder stays as loaded while the heads learn', async (t) => {
  const init = await checkpointFolder('same', ['class0', 'class1', 'class2']);
  const out = path.join(root, 'frozen');
  const { lines } = await run(init, { freeze: 'encoder' }, out);
  t.match(lines.join('\n'), /kept the classifier: the checkpoint's classes are the data's/);
  t.match(
    lines.join('\n'),
    new RegExp(
      /the encoder is frozen for the whole run \(a linear probe\): only classifier\.weight, /.source +
        /classifier\.bias, distillation_classifier\.weight, distillation_classifier\.bias train/.source,
    ),
  );
  const after = await weightsOf(out);
  const names = [...after.keys()];
  t.ok(names.includes('embedding.distillation_token') && names.includes('layernorm.weight'), 'the DeiT parameters are trained and saved');
  const frozen = names.filter((k) => !isHead(k));
  t.ok(frozen.length > 20, `${frozen.length} encoder tensors`);
  t.same(
    frozen.filter((k) => !same(after.get(k)!, init.weights.get(k)!.data)),
    [],
    'no encoder tensor moved',
  );
  t.same(
    names.filter(isHead).filter((k) => same(after.get(k)!, init.weights.get(k)!.data)),
    [],
    'every head tensor moved',
  );
});

t.test('other labels: new heads; after freeze_epochs the encoder thaws', async (t) => {
  const init = await checkpointFolder('other', ['x', 'y', 'z']);
  const out = path.join(root, 'thawed');
  const { lines } = await run(init, { freeze: 'encoder', freeze_epochs: 1 }, out);
  t.match(lines.join('\n'), /new classifiers for the 3 classes \(class0, class1, class2\): the checkpoint has its 3 classes \(x, y, z\)/);
  t.match(lines.join('\n'), /frozen for the first 1 epoch/);
  const after = await weightsOf(out);
  t.notOk(
    same(after.get('encoder.blocks.0.mlp.dense_1.weight')!, init.weights.get('encoder.blocks.0.mlp.dense_1.weight')!.data),
    'the encoder trained after the first epoch',
  );
  // the fresh head is the seeded model's own, not the checkpoint's
  const fresh = new ViT(initConfig(init, 3), 5).stateDict().get('classifier.weight')!.data;
  t.notOk(same(fresh, init.weights.get('classifier.weight')!.data), "the run's seeded head differs from the checkpoint's");
});

t.test('layer-wise decay: the last block at decay x lr, each earlier one a factor lower, the heads at lr', async (t) => {
  const s = layerDecayScales(4, 0.5);
  t.equal(s('classifier.weight'), 1);
  t.equal(s('layernorm.bias'), 1);
  t.equal(s('encoder.blocks.3.mlp.dense_1.weight'), 0.5);
  t.equal(s('encoder.blocks.0.attention.heads.0.query.weight'), 0.5 ** 4);
  t.equal(s('embedding.position_embeddings'), 0.5 ** 5);
  t.equal(layerDecayScales(4, 1)('embedding.cls_token'), 1, 'off at 1');
});

t.test('a fine-tune stopped mid-run and resumed ends bit for bit as an uninterrupted one', async (t) => {
  const init = await checkpointFolder('resume', ['x', 'y', 'z']);
  const over: Partial<TrainConfig> = { freeze: 'encoder', freeze_epochs: 1, layer_decay: 0.7, ema_decay: 0.9 };
  const straight = path.join(root, 'straight');
  await run(init, over, straight);
  const resumed = path.join(root, 'resumed');
  const first = await run(init, over, resumed, 8); // 6 steps an epoch: stopped in the second epoch, thawed
  t.ok(first.r.interrupted, 'the first sitting was interrupted');
  const second = await train({
    config: config(over),
    vit: initConfig(init, 3),
    data: data(),
    out: resumed,
    resume: true,
    log: () => {},
    progress: quiet(),
    stop: { requested: false },
  });
  t.notOk(second.interrupted);
  const a = await readSafetensors(path.join(straight, 'checkpoint.safetensors'));
  const b = await readSafetensors(path.join(resumed, 'checkpoint.safetensors'));
  t.same([...a.tensors.keys()].sort(), [...b.tensors.keys()].sort(), 'the same tensors, optimizer state included');
  t.ok(
    [...a.tensors.keys()].some((k) => k.startsWith('optimizer.skipped_steps.')),
    'the frozen steps are in the optimizer state',
  );
  t.same(
    [...a.tensors].filter(([k, v]) => !same(v.data, b.tensors.get(k)!.data)).map(([k]) => k),
    [],
    'every value equal',
  );
});

t.test(
  "AdamW: a parameter frozen for some steps, then thawed, takes the first step a fresh optimizer would (torch's per-parameter step count)",
  async (t) => {
    const { AdamW } = await import('../../../trainer/train/optim.js');
    const o = { weightDecay: 0.01, betas: [0.9, 0.999] as [number, number], eps: 1e-8 };
    const thawed = new AdamW(o);
    const p = { name: 'w', data: Float32Array.of(1, -2), decay: true, lrScale: 0 };
    const other = { name: 'b', data: Float32Array.of(0.5), decay: false };
    const g = Float32Array.of(0.3, -0.1);
    for (let i = 0; i < 3; i++) thawed.step([p, other], [g, Float32Array.of(1)], 0.01);
    t.same([...p.data], [1, -2], 'frozen: not moved');
    p.lrScale = 0.5;
    thawed.step([p, other], [g, Float32Array.of(1)], 0.02);
    const fresh = new AdamW(o);
    const q = { name: 'w', data: Float32Array.of(1, -2), decay: true };
    fresh.step([q], [g], 0.01); // 0.02 x 0.5
    t.same([...p.data], [...q.data], 'its first update is a fresh first update, at its share of the rate');
    const restored = new AdamW(o);
    restored.loadState(thawed.state(), thawed.steps);
    t.same([...restored.state().keys()].sort(), [...thawed.state().keys()].sort(), 'the skipped steps are in the saved state');
  },
);
