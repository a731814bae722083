import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { spawn } from 'node:child_process';
import { ROOT, assertOneLineError, runCli, serveOnFreePort } from '../helpers/cli.js';
import { colourDataset, tmpDir, writeCorrupt, writeImageFolder } from '../helpers/data.js';

const TINY_MODEL = JSON.stringify({
  image_size: 8,
  patch_size: 4,
  hidden_size: 8,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  intermediate_size: 16,
});

t.test('train on a folder, then eval and export its checkpoint', async (t) => {
  const dir = await tmpDir();
  const data = path.join(dir, 'photos');
  await writeImageFolder(colourDataset(24, 8, 3), data);
  await writeCorrupt(path.join(data, 'class2', 'broken.png'));
  const model = path.join(dir, 'tiny.json');
  await writeFile(model, TINY_MODEL);
  const out = path.join(dir, 'run');
  const r = await runCli([
    'train',
    '--data',
    data,
    '--model',
    model,
    '--epochs',
    '2',
    '--batch-size',
    '8',
    '--lr',
    '0.003',
    '--device',
    'cpu',
    '--out',
    out,
  ]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stderr, /warning: skipping .*broken\.png: cannot decode/);
  t.match(r.stderr, /epoch 2\/2: train loss [\d.]+ acc [\d.]+%, val loss [\d.]+ acc [\d.]+%/);
  t.ok(existsSync(path.join(out, 'model', 'onnx', 'model.onnx')));
  t.notMatch(r.stderr, /\b1 steps\b/, 'no "1 steps"');

  // the run ends with the command that serves what it made: run as printed, it serves the model as
  // 'run' (the run's folder name), with the page and its maps
  const said = /serve it \(as 'run', with the page and maps\): npx vitrine serve (\S+)/.exec(r.stderr);
  t.ok(said, `the serve command is printed: ${r.stderr.split('\n').slice(-4).join(' | ')}`);
  t.equal(path.resolve(said![1]), path.join(out, 'model'));
  const served = await serveOnFreePort([said![1]], { cwd: dir });
  t.teardown(() => served.child.kill('SIGTERM'));
  const models = (await (await fetch(`${served.base}/models`)).json()) as { default: string; models: { name: string }[] };
  t.same(
    models.models.map((m) => m.name),
    ['run'],
    'only the run is served, under its name',
  );
  t.equal(models.default, 'run');
  const form = new FormData();
  form.append('image', new Blob([await readFile(path.join(data, 'class1', (await readdir(path.join(data, 'class1')))[0]))]), 'x.png');
  const answer = (await (await fetch(`${served.base}/classify?attention=relevance`, { method: 'POST', body: form })).json()) as {
    model: string;
    attention: { method: string; grid: number[][] };
  };
  t.equal(answer.model, 'run');
  t.equal(answer.attention?.method, 'relevance', 'with its map');
  t.equal((await fetch(`${served.base}/`)).status, 200, 'and the page');
  served.child.kill('SIGTERM');
  await served.exited;

  const e = await runCli(['eval', '--model', path.join(out, 'model'), '--data', data, '--device', 'cpu']);
  t.equal(e.code, 0, e.stderr);
  // the run's seeded split held out one image per class: eval takes exactly those
  t.match(e.stdout, /on the images held out by the seeded split \(val_ratio 0\.1, seed 0\) \(3 images, cpu\)/);
  t.match(e.stdout, /accuracy [\d.]+% on 3 images/);
  t.match(e.stdout, /confusion matrix \(rows: true class, columns: predicted\)/);
  t.match(e.stdout, /class1\s+[\d.]+%/);

  const x = await runCli(['export', '--checkpoint', path.join(out, 'checkpoint.safetensors'), '--out', path.join(dir, 'exported')]);
  t.equal(x.code, 0, x.stderr);
  t.match(x.stdout, /exported \d+ parameters from .*checkpoint\.safetensors/);
  // an export from any of the run's weight files carries its data and split: eval holds out the same 3
  for (const [file, name] of [
    ['checkpoint.safetensors', 'exported'],
    ['best.safetensors', 'best'],
    ['weights.safetensors', 'last'],
  ]) {
    if (name !== 'exported')
      t.equal((await runCli(['export', '--checkpoint', path.join(out, file), '--out', path.join(dir, name)])).code, 0);
    const ev = await runCli(['eval', '--model', path.join(dir, name), '--data', data, '--device', 'cpu']);
    t.match(
      ev.stdout,
      /on the images held out by the seeded split \(val_ratio 0\.1, seed 0\) \(3 images, cpu\)/,
      `exported from ${file}: eval takes the held-out images`,
    );
  }

  // Resume with a different model config is refused; more epochs are allowed.
  const other = path.join(dir, 'other.json');
  await writeFile(other, JSON.stringify({ ...JSON.parse(TINY_MODEL), hidden_size: 12 }));
  const bad = await runCli(['train', '--resume', '--out', out, '--model', other]);
  t.equal(bad.code, 1);
  assertOneLineError(
    t,
    bad.stderr,
    /--model .*other\.json is not the checkpoint's model \(hidden_size 12 vs 8\); a resumed run keeps its settings/,
  );
  // the same path, edited since: its contents count, not its name
  await writeFile(model, JSON.stringify({ ...JSON.parse(TINY_MODEL), num_hidden_layers: 2 }));
  const edited = await runCli(['train', '--resume', '--out', out, '--model', model]);
  t.equal(edited.code, 1);
  assertOneLineError(t, edited.stderr, /--model .*tiny\.json is not the checkpoint's model \(num_hidden_layers 2 vs 1\)/);
  await writeFile(model, TINY_MODEL);
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
  const mismatch = await runCli([
    'export',
    '--checkpoint',
    path.join(out, 'checkpoint.safetensors'),
    '--config',
    other,
    '--out',
    path.join(dir, 'x'),
  ]);
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
});

t.test('a wrong flag or value exits 2, saying what is accepted', async (t) => {
  const dir = await tmpDir();
  const model = path.join(dir, 'tiny.json');
  await writeFile(model, TINY_MODEL);
  const base = ['train', '--model', model, '--device', 'cpu', '--out', path.join(dir, 'run')];
  const corrupt = path.join(dir, 'c');
  await writeImageFolder(colourDataset(4, 8, 2), corrupt);
  let r;
  r = await runCli([...base, '--data', corrupt, '--lr', 'fast']);
  t.equal(r.code, 2);
  assertOneLineError(t, r.stderr, /--lr must be a number >= 0, got 'fast'/);
  r = await runCli([...base, '--data', corrupt, '--epochs', '-1']);
  t.equal(r.code, 2);
  assertOneLineError(t, r.stderr, /--epochs must be a positive integer, got '-1'/);
  r = await runCli([...base, '--lr', '--data', corrupt]);
  t.equal(r.code, 2);
  assertOneLineError(t, r.stderr, /^vitrine train: --lr needs a value \(got the flag --data\) \('vitrine train --help' lists the flags\)$/);
  r = await runCli([...base, '--data', corrupt, '--epoch', '3']);
  t.equal(r.code, 2);
  assertOneLineError(
    t,
    r.stderr,
    /^vitrine train: unknown flag --epoch \(did you mean --epochs\?\) \('vitrine train --help' lists the flags\)$/,
  );
  r = await runCli(['train', '--model', '{"hidden_size": 8,', '--data', corrupt]);
  t.equal(r.code, 2);
  assertOneLineError(t, r.stderr, /--model: not valid JSON/);
  r = await runCli([...base, '--data', corrupt, '--auto-augment', 'sometimes']);
  t.equal(r.code, 2);
  assertOneLineError(t, r.stderr, /--auto-augment must be one of none, randaugment, trivialaugment, autoaugment, got 'sometimes'/);

  const recipe = path.join(dir, 'r.json');
  await writeFile(recipe, JSON.stringify({ epochz: 3 }));
  r = await runCli([...base, '--recipe', recipe]);
  t.equal(r.code, 2);
  assertOneLineError(t, r.stderr, /unknown key 'epochz'/);

  r = await runCli([...base, '--recipe', 'fastest']);
  t.equal(r.code, 2);
  assertOneLineError(
    t,
    r.stderr,
    /unknown recipe 'fastest' \(known: cct-cifar10, cifar10, cifar10-aa, cifar10-ra, finetune, folder, seed; or give a .json file\)/,
  );
});

t.test('data that cannot train: class counts, nothing to resume', async (t) => {
  const dir = await tmpDir();
  const model = path.join(dir, 'tiny.json');
  const base = ['train', '--model', model, '--device', 'cpu', '--out', path.join(dir, 'run')];
  const corrupt = path.join(dir, 'c');
  await writeImageFolder(colourDataset(4, 8, 2), corrupt);
  let r;
  await writeFile(model, JSON.stringify({ image_size: 8, patch_size: 4, hidden_size: 8, num_classes: 5 }));
  r = await runCli([...base, '--data', corrupt]);
  t.equal(r.code, 1);
  assertOneLineError(t, r.stderr, /num_classes is 5 but the data has 2 classes/);

  // one class is not a classification
  const one = path.join(dir, 'one');
  await writeImageFolder(colourDataset(6, 8, 1), one);
  r = await runCli([...base, '--data', one]);
  t.equal(r.code, 1);
  assertOneLineError(t, r.stderr, /a classifier needs at least two classes, found 1 \(class0\)/);

  r = await runCli(['train', '--resume', '--out', path.join(dir, 'nothing-here')]);
  t.equal(r.code, 1);
  assertOneLineError(t, r.stderr, /nothing to resume: .*checkpoint\.safetensors does not exist/);
});

t.test('an inline --model trains; Ctrl-C saves a checkpoint and exits 130', async (t) => {
  const dir = await tmpDir();
  const data = path.join(dir, 'photos');
  await writeImageFolder(colourDataset(24, 8, 3), data);
  const out = path.join(dir, 'run');
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      path.join(ROOT, 'bin', 'vitrine.ts'),
      'train',
      '--data',
      data,
      '--model',
      TINY_MODEL,
      '--epochs',
      '100000',
      '--batch-size',
      '4',
      '--device',
      'cpu',
      '--threads',
      '1',
      '--out',
      out,
    ],
    { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  // Ctrl-C once the first epoch has ended (a line, not a sleep, says when)
  await new Promise<void>((resolve) => {
    child.stderr.on('data', (d) => {
      stderr += d;
      if (/epoch 1\/100000: train loss/.test(stderr)) resolve();
    });
    child.on('exit', () => resolve());
  });
  child.kill('SIGINT');
  t.equal(await exited, 130, stderr.split('\n').slice(-3).join('\n'));
  t.match(stderr, /interrupted: checkpoint saved at step \d+/);
  t.ok(existsSync(path.join(out, 'checkpoint.safetensors')));
  t.match(stderr, /training \d+ parameters on 21 images \(3 classes\), 100000 epochs of 5 steps at batch 4/);
});

t.test('Ctrl-C twice: the first asks for a save after the step, the second quits at once without saving', async (t) => {
  const { interruptHandler } = await import('../../bin/train.js');
  const stop = { requested: false };
  const said: string[] = [];
  const quits: number[] = [];
  const onSigint = interruptHandler(
    stop,
    (l) => said.push(l),
    (code) => quits.push(code),
  );
  onSigint();
  t.ok(stop.requested, 'the run is asked to stop');
  t.same(said, ['stopping after this step (Ctrl-C again to quit without saving)…']);
  t.same(quits, [], 'and goes on to save');
  onSigint();
  t.same(quits, [130], 'the second quits with 130');
  t.equal(said.length, 1);
});

t.test('fine-tune a Hugging Face DeiT checkpoint on a folder with other labels (--init, the finetune recipe)', async (t) => {
  const dir = await tmpDir();
  const data = path.join(dir, 'photos');
  await writeImageFolder(colourDataset(30, 32, 3), data);
  const deit = path.join(ROOT, 'test', 'fixtures', 'foreign', 'hf-deit');
  const out = path.join(dir, 'run');
  const r = await runCli([
    'train',
    '--init',
    deit,
    '--recipe',
    'finetune',
    '--data',
    data,
    '--epochs',
    '3',
    '--batch-size',
    '9',
    '--device',
    'cpu',
    '--out',
    out,
  ]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stderr, /starting from .*hf-deit \(hugging face checkpoint, DeiTForImageClassificationWithTeacher\)/);
  t.match(
    r.stderr,
    /new classifiers for the 3 classes \(class0, class1, class2\): the checkpoint has its 5 classes \(apple, boat, cloud, … eagle\)/,
  );
  t.match(r.stderr, /the encoder is frozen for the first 2 epochs/);
  t.match(r.stderr, /layer-wise lr decay 0\.75/);
  t.match(r.stderr, /epoch 3\/3: train loss [\d.]+ acc [\d.]+%, val loss/);
  const config = JSON.parse(await readFile(path.join(out, 'model', 'config.json'), 'utf8'));
  t.equal(config.prefix_tokens, 2, 'the fine-tuned DeiT keeps its distillation token');
  t.same(config.vit.mean, [0.485, 0.456, 0.406], "the checkpoint's normalization");

  const wide = await runCli(['train', '--init', deit, '--data', data, '--model', '{"hidden_size": 64}', '--out', path.join(dir, 'wide')]);
  t.equal(wide.code, 1);
  assertOneLineError(
    t,
    wide.stderr,
    /--init: --model hidden_size 64: starting from .*hf-deit, the architecture is its own \(hidden_size 32\); only image_size, /,
  );
  const missing = await runCli(['train', '--init', path.join(dir, 'nothing'), '--data', data, '--out', path.join(dir, 'x')]);
  t.equal(missing.code, 1);
  assertOneLineError(
    t,
    missing.stderr,
    /--init: .*nothing: not found \(give a Hugging Face checkpoint folder, a vitrine model folder or a \.safetensors file\)/,
  );
  const swin = path.join(dir, 'swin');
  await mkdir(swin);
  await writeFile(path.join(swin, 'config.json'), JSON.stringify({ model_type: 'swin', architectures: ['SwinForImageClassification'] }));
  await writeFile(path.join(swin, 'model.safetensors'), Buffer.alloc(16));
  const x = await runCli(['export', '--checkpoint', swin, '--out', path.join(dir, 'y')]);
  t.equal(x.code, 1);
  assertOneLineError(t, x.stderr, /model_type "swin" is not a ViT: vitrine loads transformers' ViT and DeiT checkpoints/);
});

t.test(
  'what a first run says, through the built command: the device line ' +
    'once, the images eval decodes, classes without images, a class of one ' +
    'image',
  async (t) => {
    const dir = await tmpDir();
    const data = path.join(dir, 'photos');
    await writeImageFolder(colourDataset(24, 8, 3), data);
    await mkdir(path.join(data, 'lonely'));
    await writeImageFolder(colourDataset(1, 8, 1, 7), path.join(dir, 'one'));
    const { rename } = await import('node:fs/promises');
    await rename(path.join(dir, 'one', 'class0', '0.png'), path.join(data, 'lonely', '0.png'));
    const model = path.join(dir, 'tiny.json');
    await writeFile(model, TINY_MODEL);
    const out = path.join(dir, 'run');
    const r = await runCli(['train', '--data', data, '--model', model, '--epochs', '1', '--batch-size', '8', '--out', out], {
      built: true,
    });
    t.equal(r.code, 0, r.stderr);
    t.match(
      r.stderr,
      new RegExp(
        /a folder of 22 training images and no --recipe: the folder recipe \(a compact transformer /.source +
          /with a convolutional tokenizer; 1 epochs? of AdamW at lr 0\.002, warmup and cosine, /.source +
          /flips, crops, RandAugment\) at batch 8, 2 steps an epoch; --recipe or flags change it/.source,
      ),
    );
    t.equal(
      r.stderr.match(/device auto: the CPU \(CUDA unavailable/g)?.length,
      1,
      'the device choice is said once, though the run makes two sessions',
    );
    t.match(
      r.stderr,
      /warning: class 'lonely' has one image: none of it can be held out for validation, and a class needs several images to be learnt/,
    );
    t.notMatch(r.stderr, /decoding training images/, 'a folder decoded whole before its split is not called the training images');
    t.match(r.stderr, /decoding images/);

    // eval on a folder whose val/ lacks two of the classes: their accuracy is null, not 0
    const split = path.join(dir, 'split');
    await writeImageFolder(colourDataset(6, 8, 3), path.join(split, 'train'));
    await writeImageFolder(colourDataset(4, 8, 2, 3), path.join(split, 'val'));
    const e = await runCli(['eval', '--model', path.join(out, 'model'), '--data', split, '--json', '--device', 'cpu'], { built: true });
    t.equal(e.code, 0, e.stderr);
    const report = JSON.parse(e.stdout.trim().split('\n').at(-1)!);
    t.equal(report.images, 4);
    t.equal(report.per_class.class2, null, 'a class with no images has no accuracy');
    t.equal(report.per_class.lonely, null);
    t.type(report.per_class.class0, 'number');
    t.match(e.stderr, /decoding validation images/);

    // the run's model card, and the same card regenerated from the folder alone
    const card = await readFile(path.join(out, 'model', 'README.md'), 'utf8');
    t.match(
      card,
      /^---\nlibrary_name: vitrine\npipeline_tag: image-classification\ntags:\n- image-classification\n/,
      "Hugging Face's model-card metadata first",
    );
    t.match(
      card,
      new RegExp(
        /model-index:\n- name: "run"\n[\s\S]*type: imagefolder\n[\s\S]*- type: /.source +
          /accuracy\n {6}value: [\d.]+\n {6}name: "accuracy on \d+ held-out images"/.source,
      ),
    );
    for (const heading of [
      '## Architecture',
      '## Recipe',
      '## Data and split',
      '## Held-out accuracy',
      '## Training',
      '## Curves',
      '## Files',
    ])
      t.ok(card.includes(`\n${heading}\n`), heading);
    for (const c of ['class0', 'class1', 'class2']) t.match(card, new RegExp(`\\| ${c} \\| [\\d.]+% \\| \\d \\|`), `${c}'s row`);
    t.match(card, /\| lonely \| — \| 0 \|/, 'a class with nothing held out has no accuracy');
    t.match(card, /- 1 epoch \(2 steps\) in \d+:\d\d of wall time, evaluations included; median \d+ training images\/s/);
    t.ok(
      existsSync(path.join(out, 'model', 'curves.svg')) && existsSync(path.join(out, 'model', 'train-config.json')),
      'the files the card is made from are in the folder',
    );
    const again = await runCli(['card', '--model', path.join(out, 'model'), '--name', 'run'], { built: true });
    t.equal(again.code, 0, again.stderr);
    t.equal(await readFile(path.join(out, 'model', 'README.md'), 'utf8'), card, 'vitrine card writes the same card from the folder');
    const best = await runCli(['export', '--checkpoint', path.join(out, 'best.safetensors'), '--out', path.join(dir, 'best')], {
      built: true,
    });
    t.equal(best.code, 0, best.stderr);
    t.match(
      await readFile(path.join(dir, 'best', 'README.md'), 'utf8'),
      /^---\nlibrary_name: vitrine[\s\S]*# best\n[\s\S]*## Held-out accuracy/,
      'an export from the run gets its card',
    );

    const help = await runCli(['train', '--help'], { built: true });
    t.match(help.stdout, /model\/ \(onnx\/model\.onnx, the explanation graphs, config\.json: ready to serve\)/);
  },
);

t.test("the folder recipe's batch: a power of two near an eighth of the training images, 8 to 128", async (t) => {
  const { folderBatch } = await import('../../bin/train.js');
  t.same([10, 64, 195, 500, 1000, 50000].map(folderBatch), [8, 8, 16, 32, 64, 128]);
});
