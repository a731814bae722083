import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { assertOneLineError, runCli } from '../helpers/cli.js';
import { colourDataset, tmpDir, writeCorrupt, writeImageFolder } from '../helpers/data.js';

const TINY_MODEL = JSON.stringify({ image_size: 8, patch_size: 4, hidden_size: 8, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 16 });


t.test('train on a folder, then eval and export its checkpoint', async (t) => {
  const dir = await tmpDir();
  const data = path.join(dir, 'photos');
  await writeImageFolder(colourDataset(24, 8, 3), data);
  await writeCorrupt(path.join(data, 'class2', 'broken.png'));
  const model = path.join(dir, 'tiny.json');
  await writeFile(model, TINY_MODEL);
  const out = path.join(dir, 'run');
  const r = await runCli(['train', '--data', data, '--model', model, '--epochs', '2', '--batch-size', '8', '--lr', '0.003', '--device', 'cpu', '--out', out]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stderr, /warning: skipping .*broken\.png: cannot decode/);
  t.match(r.stderr, /epoch 2\/2: train loss [\d.]+ acc [\d.]+%, val loss [\d.]+ acc [\d.]+%/);
  t.ok(existsSync(path.join(out, 'model', 'model.onnx')));

  const e = await runCli(['eval', '--model', path.join(out, 'model'), '--data', data, '--device', 'cpu']);
  t.equal(e.code, 0, e.stderr);
  t.match(e.stdout, /accuracy [\d.]+% on 24 images/);
  t.match(e.stdout, /confusion matrix \(rows: true class, columns: predicted\)/);
  t.match(e.stdout, /class1\s+[\d.]+%/);

  const x = await runCli(['export', '--checkpoint', path.join(out, 'checkpoint.safetensors'), '--out', path.join(dir, 'exported')]);
  t.equal(x.code, 0, x.stderr);
  t.match(x.stdout, /exported \d+ parameters from .*checkpoint\.safetensors/);

  // Resume with a different model config is refused; more epochs are allowed.
  const other = path.join(dir, 'other.json');
  await writeFile(other, JSON.stringify({ ...JSON.parse(TINY_MODEL), hidden_size: 12 }));
  const bad = await runCli(['train', '--resume', '--out', out, '--model', other]);
  t.equal(bad.code, 1);
  assertOneLineError(t, bad.stderr, /--model .* does not match the checkpoint's .*a resumed run keeps its settings/);
  const lr = await runCli(['train', '--resume', '--out', out, '--lr', '0.1']);
  t.equal(lr.code, 1);
  assertOneLineError(t, lr.stderr, /--lr 0\.1 does not match the checkpoint's 0\.003/);
  const more = await runCli(['train', '--resume', '--out', out, '--epochs', '3', '--device', 'cpu']);
  t.equal(more.code, 0, more.stderr);
  t.match(more.stderr, /resuming from step 4 \(epoch 2 done\)/);
  t.match(more.stderr, /epoch 3\/3/);

  const again = await runCli(['train', '--data', data, '--model', model, '--out', out]);
  t.equal(again.code, 1);
  assertOneLineError(t, again.stderr, /already holds a run; pass --resume/);

  // A checkpoint exported with a config that does not match it.
  const mismatch = await runCli(['export', '--checkpoint', path.join(out, 'checkpoint.safetensors'), '--config', other, '--out', path.join(dir, 'x')]);
  t.equal(mismatch.code, 1);
  assertOneLineError(t, mismatch.stderr, /tensor '.*' has shape \[.*\], expected \[.*\]/);
});

t.test('bad data and config are one-line errors', async (t) => {
  const dir = await tmpDir();
  const model = path.join(dir, 'tiny.json');
  await writeFile(model, TINY_MODEL);
  const base = ['train', '--model', model, '--device', 'cpu', '--out', path.join(dir, 'run')];

  let r = await runCli([...base, '--data', path.join(dir, 'missing')]);
  t.equal(r.code, 1);
  assertOneLineError(t, r.stderr, /data folder .*missing does not exist or is not a folder/);

  await mkdir(path.join(dir, 'empty'));
  r = await runCli([...base, '--data', path.join(dir, 'empty')]);
  t.equal(r.code, 1);
  assertOneLineError(t, r.stderr, /has no class folders/);

  await mkdir(path.join(dir, 'noimg', 'dogs'), { recursive: true });
  r = await runCli([...base, '--data', path.join(dir, 'noimg')]);
  t.equal(r.code, 1);
  assertOneLineError(t, r.stderr, /class folder .*dogs has no images/);

  const corrupt = path.join(dir, 'c');
  await writeImageFolder(colourDataset(4, 8, 2), corrupt);
  await writeCorrupt(path.join(corrupt, 'class0', 'bad.jpg'));
  r = await runCli([...base, '--data', corrupt, '--on-bad-image', 'fail']);
  t.equal(r.code, 1);
  assertOneLineError(t, r.stderr, /bad\.jpg: cannot decode/);

  r = await runCli([...base, '--data', corrupt, '--lr', 'fast']);
  t.equal(r.code, 1);
  assertOneLineError(t, r.stderr, /'lr' must be a number in \[0, Infinity\], got "fast"/);

  const recipe = path.join(dir, 'r.json');
  await writeFile(recipe, JSON.stringify({ epochz: 3 }));
  r = await runCli([...base, '--recipe', recipe]);
  t.equal(r.code, 1);
  assertOneLineError(t, r.stderr, /unknown key 'epochz'/);

  r = await runCli([...base, '--recipe', 'fastest']);
  t.equal(r.code, 2);
  assertOneLineError(t, r.stderr, /unknown recipe 'fastest' \(known: cifar10, seed/);

  await writeFile(model, JSON.stringify({ image_size: 8, patch_size: 4, hidden_size: 8, num_classes: 5 }));
  r = await runCli([...base, '--data', corrupt]);
  t.equal(r.code, 1);
  assertOneLineError(t, r.stderr, /num_classes is 5 but the data has 2 classes/);

  r = await runCli(['train', '--resume', '--out', path.join(dir, 'nothing-here')]);
  t.equal(r.code, 1);
  assertOneLineError(t, r.stderr, /nothing to resume: .*checkpoint\.safetensors does not exist/);
});
