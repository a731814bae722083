import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import t from 'tap';
import { readSafetensors } from '../../../trainer/io/safetensors.js';
import { DEFAULT_TRAIN, type TrainConfig } from '../../../trainer/train/config.js';
import type { RunData } from '../../../trainer/train/data.js';
import { train } from '../../../trainer/train/loop.js';
import { ProgressBar } from '../../../trainer/train/report.js';
import { colourDataset, tmpDir } from '../../helpers/data.js';
import { TINY, TINY_CONV } from '../../helpers/vit.js';
import { parseViTConfig } from '../../../trainer/vit/config.js';

const quiet = () => new ProgressBar(new Writable({ write: (_c, _e, cb) => cb() }));

function runData(): RunData {
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
}

const config = (over: Partial<TrainConfig> = {}): TrainConfig => ({
  ...DEFAULT_TRAIN,
  device: 'cpu',
  threads: 1,
  epochs: 4,
  batch_size: 8,
  lr: 0.003,
  weight_decay: 0.01,
  schedule: 'cosine',
  warmup_epochs: 1,
  crop_padding: 1,
  flip: true,
  label_smoothing: 0.1,
  seed: 3,
  ...over,
});

async function params(dir: string): Promise<Map<string, Float32Array>> {
  const { tensors } = await readSafetensors(path.join(dir, 'checkpoint.safetensors'));
  return new Map([...tensors].map(([k, v]) => [k, v.data]));
}

/** A run stopped after `step` steps, as Ctrl-C stops one. */
async function trainStoppedAt(step: number, c: TrainConfig, data: RunData, out: string, vit = TINY) {
  const stop = { requested: false };
  let steps = 0;
  const progress = quiet();
  const update = progress.update.bind(progress);
  progress.update = (p) => {
    if (++steps === step) stop.requested = true;
    update(p);
  };
  return train({ config: c, vit, data, out, resume: false, log: () => {}, progress, stop });
}

/** Every value of every tensor identical, bit for bit. */
function bitEqual(a: Map<string, ArrayLike<number>>, b: Map<string, ArrayLike<number>>): boolean {
  for (const [k, v] of a) if (!Array.from(v).every((x, i) => Object.is(x, b.get(k)![i]))) return false;
  return true;
}

t.test('a tiny ViT learns a separable problem; metrics, curves, checkpoint and model are written', async (t) => {
  const out = await tmpDir();
  const r = await train({
    config: config({ epochs: 6 }),
    vit: TINY,
    data: runData(),
    out,
    resume: false,
    log: () => {},
    progress: quiet(),
    stop: { requested: false },
  });
  const h = r.state.history;
  t.equal(h.length, 6);
  t.ok(h[5].train_loss < 0.75 * h[0].train_loss, `train loss fell from ${h[0].train_loss.toFixed(3)} to ${h[5].train_loss.toFixed(3)}`);
  t.ok(h[5].test_accuracy! > 0.9, `test accuracy ${h[5].test_accuracy}`);
  const lines = (await readFile(path.join(out, 'metrics.jsonl'), 'utf8')).trim().split('\n');
  t.equal(lines.length, 6);
  t.same(Object.keys(JSON.parse(lines[0])).sort(), [
    'elapsed_s',
    'epoch',
    'epoch_s',
    'images_per_s',
    'lr',
    'step',
    'test_accuracy',
    'test_loss',
    'train_accuracy',
    'train_loss',
  ]);
  t.match(await readFile(path.join(out, 'curves.svg'), 'utf8'), /<svg[\s\S]*test accuracy[\s\S]*<\/svg>/);
  for (const f of [
    'checkpoint.safetensors',
    'checkpoint.json',
    'weights.safetensors',
    'best.safetensors',
    'model/onnx/model.onnx',
    'model/config.json',
    'model/preprocessor_config.json',
  ])
    t.ok(existsSync(path.join(out, f)), f);
  // the best epoch's weights say which epoch they are
  const best = await readSafetensors(path.join(out, 'best.safetensors'));
  const bestEpoch = h.reduce((b, x) => (x.test_accuracy! > b.test_accuracy! ? x : b));
  t.equal(best.metadata.epoch, String(bestEpoch.epoch));
  t.equal(
    JSON.parse(await readFile(path.join(out, 'model', 'config.json'), 'utf8')).training.val_ratio,
    0.1,
    'the model records its training split',
  );
});

t.test('the architecture options train too: a conv tokenizer, and shifted patches with locality self-attention', async (t) => {
  for (const [kind, vit] of [
    ['conv tokenizer', TINY_CONV],
    ['SPT + LSA', parseViTConfig({ ...TINY, shifted_patch_tokenization: true, locality_self_attention: true })],
  ] as const) {
    const data = runData();
    const out = await tmpDir();
    const r = await train({
      config: config({ epochs: 6 }),
      vit,
      data,
      out,
      resume: false,
      log: () => {},
      progress: quiet(),
      stop: { requested: false },
    });
    const h = r.state.history;
    t.ok(
      h[5].train_loss < 0.8 * h[0].train_loss,
      `${kind}: train loss fell from ${h[0].train_loss.toFixed(3)} to ${h[5].train_loss.toFixed(3)}`,
    );
    t.ok(h[5].test_accuracy! > 0.8, `${kind}: test accuracy ${h[5].test_accuracy}`);
    const exported = JSON.parse(await readFile(path.join(out, 'model', 'config.json'), 'utf8'));
    t.ok(existsSync(path.join(out, 'model', 'onnx', 'model.onnx')), `${kind}: model.onnx written`);
    t.match(
      exported.vit,
      kind === 'conv tokenizer' ? { tokenizer_layers: 2 } : { shifted_patch_tokenization: true, locality_self_attention: true },
      `${kind}: config.json keeps the options`,
    );
  }
});

t.test('a run stopped mid-epoch and resumed ends with exactly the parameters of an uninterrupted run', async (t) => {
  const data = runData();
  const straight = await tmpDir();
  await train({
    config: config(),
    vit: TINY,
    data,
    out: straight,
    resume: false,
    log: () => {},
    progress: quiet(),
    stop: { requested: false },
  });

  const resumed = await tmpDir();
  // Stop after step 9 (epoch 2 of 4, mid-epoch: 6 steps an epoch), as Ctrl-C does.
  const first = await trainStoppedAt(9, config(), data, resumed);
  t.ok(first.interrupted, 'the first run was interrupted');
  t.equal(first.state.step, 9);
  const second = await train({
    config: config(),
    vit: TINY,
    data,
    out: resumed,
    resume: true,
    log: () => {},
    progress: quiet(),
    stop: { requested: false },
  });
  t.notOk(second.interrupted);
  t.equal(second.state.step, 24);

  const a = await params(straight);
  const b = await params(resumed);
  t.same([...a.keys()].sort(), [...b.keys()].sort(), 'same tensors (weights and optimizer state)');
  t.ok(bitEqual(a, b), 'every weight and optimizer value is bit-for-bit equal');
  t.same(
    second.state.history.map((m) => m.train_loss),
    (
      await train({
        config: config(),
        vit: TINY,
        data,
        out: await tmpDir(),
        resume: false,
        log: () => {},
        progress: quiet(),
        stop: { requested: false },
      })
    ).state.history.map((m) => m.train_loss),
    'the same per-epoch training losses',
  );
});

t.test('a loss that becomes NaN stops the run with a clear message and saves nothing', async (t) => {
  const out = await tmpDir();
  await t.rejects(
    train({
      config: config({ lr: 1e30, warmup_epochs: 0, schedule: 'constant' }),
      vit: TINY,
      data: runData(),
      out,
      resume: false,
      log: () => {},
      progress: quiet(),
      stop: { requested: false },
    }),
    /the loss became NaN at step \d+ \(epoch 1\); stopped without saving/,
  );
  t.notOk(existsSync(path.join(out, 'checkpoint.safetensors')), 'no checkpoint written from a diverged state');
});

t.test('with augmentation policies, erasing, Mixup/CutMix and a weight average, a resumed run still ends bit for bit', async (t) => {
  const data = runData();
  const extra = { auto_augment: 'randaugment' as const, random_erasing: 0.5, mixup_alpha: 0.4, cutmix_alpha: 1, ema_decay: 0.9 };
  const lines: string[] = [];
  const straight = await tmpDir();
  const s = await train({
    config: config(extra),
    vit: TINY,
    data,
    out: straight,
    resume: false,
    log: (l) => lines.push(l),
    progress: quiet(),
    stop: { requested: false },
  });
  t.ok(
    s.state.history.every((m) => typeof m.ema_test_accuracy === 'number' && typeof m.ema_test_loss === 'number'),
    'the average is evaluated every epoch',
  );

  const resumed = await tmpDir();
  const first = await trainStoppedAt(9, config(extra), data, resumed);
  t.ok(first.interrupted && first.state.step === 9, 'the first run was interrupted at step 9');
  const second = await train({
    config: config(extra),
    vit: TINY,
    data,
    out: resumed,
    resume: true,
    log: () => {},
    progress: quiet(),
    stop: { requested: false },
  });
  const a = await params(straight);
  const b = await params(resumed);
  t.ok(
    [...a.keys()].some((k) => k.startsWith('optimizer.ema.')),
    'the checkpoint holds the average',
  );
  t.same([...a.keys()].sort(), [...b.keys()].sort());
  t.ok(bitEqual(a, b), 'weights, optimizer state and the average are bit-for-bit equal');
  t.same(
    second.state.history.map((m) => [m.train_loss, m.ema_test_accuracy]),
    s.state.history.map((m) => [m.train_loss, m.ema_test_accuracy]),
    'the same metrics',
  );
  // the export is the better of the two on the held-out images at the end
  const last = s.state.history.at(-1)!;
  const averaged = last.ema_test_accuracy! > last.test_accuracy!;
  t.equal(
    lines.some((l) => l.startsWith('exporting the average of the weights')),
    averaged,
    'the average is exported exactly when it does better',
  );
  // and model/ holds those weights: the average's, or the last ones
  const { decodeModel, readTensor } = await import('../../../trainer/autograd/onnx-proto.js');
  const exported = decodeModel(await readFile(path.join(straight, 'model', 'onnx', 'model.onnx'))).graph!.initializer!;
  const names = [...a.keys()].filter((k) => a.has(`optimizer.ema.${k}`));
  t.ok(names.length > 5, `${names.length} averaged parameters`);
  const source = (k: string) => a.get(averaged ? `optimizer.ema.${k}` : k)!;
  const other = (k: string) => a.get(averaged ? k : `optimizer.ema.${k}`)!;
  const held = names.map((k) => readTensor(exported.find((i) => i.name === k)!, '.').data as Float32Array);
  t.ok(
    names.every((k, i) => bitEqual(new Map([[k, held[i]]]), new Map([[k, source(k)]]))),
    `model/ holds the ${averaged ? 'average' : 'last weights'}, bit for bit`,
  );
  t.notOk(
    names.every((k, i) => bitEqual(new Map([[k, held[i]]]), new Map([[k, other(k)]]))),
    'and not the other set',
  );
});

t.test('the budget keys (whitening start, alternating flips, a horizon for the average) train, and resume bit for bit', async (t) => {
  const data = runData();
  const extra = { whiten_init: true, alternate_flip: true, ema_horizon: 0.25 };
  const lines: string[] = [];
  const straight = await tmpDir();
  const s = await train({
    config: config(extra),
    vit: TINY_CONV,
    data,
    out: straight,
    resume: false,
    log: (l) => lines.push(l),
    progress: quiet(),
    stop: { requested: false },
  });
  t.ok(
    lines.some((l) =>
      /^whiten_init: the tokenizer's first convolution starts as 2 whitening directions of the training images' 3x3 patches/.test(l),
    ),
    'whitened',
  );
  t.ok(lines.includes("the weight average spans 25.0% of the run's 24 steps: decay 0.833333"), 'the decay from the horizon: 1 - 1/6');
  t.ok(
    s.state.history.every((m) => typeof m.ema_test_accuracy === 'number'),
    'the average is evaluated every epoch',
  );
  const again = await tmpDir();
  t.ok((await trainStoppedAt(9, config(extra), data, again, TINY_CONV)).interrupted, 'the first run was interrupted');
  await train({
    config: config(extra),
    vit: TINY_CONV,
    data,
    out: again,
    resume: true,
    log: () => {},
    progress: quiet(),
    stop: { requested: false },
  });
  t.ok(bitEqual(await params(straight), await params(again)), 'a run stopped at step 9 and resumed ends bit for bit as the straight one');

  // at a rate of 0 nothing moves: the average must be the (whitened) starting weights themselves
  const still = await tmpDir();
  await train({
    config: config({ ...extra, lr: 0, warmup_epochs: 0, schedule: 'constant', epochs: 1 }),
    vit: TINY_CONV,
    data,
    out: still,
    resume: false,
    log: () => {},
    progress: quiet(),
    stop: { requested: false },
  });
  const p = await params(still);
  const conv = [...p.keys()].find((k) => /^embedding\..*conv_layers\.0\.weight$/.test(k))!;
  const [w, avg] = [p.get(conv)!, p.get(`optimizer.ema.${conv}`)!];
  t.ok(
    w.every((v, i) => Math.abs(v - avg[i]) <= 1e-6 * Math.max(1, Math.abs(v))),
    `the average of ${conv} starts from the whitened filters`,
  );
  const elsewhere = await tmpDir();
  const refuse = (over: Partial<TrainConfig>, vit = TINY_CONV) =>
    train({ config: config(over), vit, data, out: elsewhere, resume: false, log: () => {}, progress: quiet(), stop: { requested: false } });
  await t.rejects(
    refuse({ whiten_init: true }, TINY),
    /whiten_init: the model has no convolutional tokenizer to start \(tokenizer_layers is 0\)/,
  );
  await t.rejects(refuse({ alternate_flip: true, flip: false }), /alternate_flip decides how images are flipped: it needs flip/);
  await t.rejects(refuse({ ema_decay: 0.9, ema_horizon: 0.1 }), /both set the weight average's decay: set one/);
  await t.rejects(
    refuse({ whiten_init: true, init: 'models/cct-cifar10' }),
    /whiten_init starts a fresh tokenizer; it does not go with init \(models\/cct-cifar10\)/,
  );
});
