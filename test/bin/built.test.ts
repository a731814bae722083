// The built command (`node dist/bin/vitrine.js`), as users, `npx vitrine` and the images run it: what
// the tests from source cannot see (files tsc does not copy, how the process ends).

import { existsSync } from 'node:fs';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import t from 'tap';
import { BUILT_CLI, ROOT, assertOneLineError, runCli, serveOnFreePort } from '../helpers/cli.js';
import { colourDataset, tmpDir, writeImageFolder } from '../helpers/data.js';
import { until } from '../helpers/wait.js';

const TINY_MODEL = { image_size: 8, patch_size: 4, hidden_size: 8, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 16 };

t.before(() => {
  if (!existsSync(BUILT_CLI)) throw new Error(`${BUILT_CLI} is missing: run the tests with 'npm test', which builds first`);
});

t.test('named recipes, eval on the training folder, and export, from the built command', async (t) => {
  const dir = await tmpDir();
  const data = path.join(dir, 'photos');
  await writeImageFolder(colourDataset(40, 8, 4), data);
  const model = path.join(dir, 'tiny.json');
  await writeFile(model, JSON.stringify(TINY_MODEL));
  // a recipe that whitens its tokenizer's first convolution needs a model with a tokenizer
  const tokenized = path.join(dir, 'tiny-tokenizer.json');
  await writeFile(tokenized, JSON.stringify({ ...TINY_MODEL, tokenizer_layers: 2, tokenizer_channels: 4 }));
  // every named recipe, as the help and docs/training.md list them
  const recipes = (await readdir(path.join(ROOT, 'trainer', 'recipes'))).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5));
  t.ok(recipes.includes('cct-cifar10') && recipes.includes('cifar10-ra'), `recipes: ${recipes.join(', ')}`);
  for (const recipe of recipes) {
    const expected = JSON.parse(await readFile(path.join(ROOT, 'trainer', 'recipes', `${recipe}.json`), 'utf8'));
    const out = path.join(dir, `run-${recipe}`);
    const r = await runCli(
      [
        'train',
        '--recipe',
        recipe,
        '--data',
        data,
        '--model',
        expected.whiten_init ? tokenized : model,
        '--epochs',
        '1',
        '--batch-size',
        '8',
        '--device',
        'cpu',
        '--threads',
        '1',
        '--out',
        out,
      ],
      { built: true, cwd: dir },
    );
    t.equal(r.code, 0, `--recipe ${recipe}: ${r.stderr}`);
    t.match(r.stderr, /training \d+ parameters on 36 images \(4 classes\), 1 epoch of 4 steps at batch 8/);
    const saved = JSON.parse(await readFile(path.join(out, 'train-config.json'), 'utf8'));
    t.equal(saved.label_smoothing, expected.label_smoothing ?? 0, `the ${recipe} recipe was applied`);
    t.equal(saved.lr, expected.lr, `the ${recipe} recipe's rate`);
  }

  // eval on the folder the model was trained on holds out what the run held out
  const run = path.join(dir, 'run-cifar10');
  const e = await runCli(['eval', '--model', path.join(run, 'model'), '--data', data, '--device', 'cpu'], { built: true });
  t.equal(e.code, 0, e.stderr);
  t.match(e.stdout, /on the images held out by the seeded split \(val_ratio 0\.1, seed 0\) \(4 images, cpu\)/);
  t.match(e.stdout, /accuracy [\d.]+% on 4 images/);
  t.notMatch(e.stderr, /warning/);

  // another folder without val/: all of it, with a warning that says so
  const other = path.join(dir, 'other');
  await writeImageFolder(colourDataset(8, 8, 2, 5), other);
  const o = await runCli(['eval', '--model', path.join(run, 'model'), '--data', other, '--device', 'cpu'], { built: true });
  t.equal(o.code, 0, o.stderr);
  t.match(
    o.stderr,
    new RegExp(
      /warning: .*other has no val\/ or test\/ folder and is not the folder this model's /.source +
        /config\.json says it was trained on; evaluating all 8 images/.source,
    ),
  );
  t.match(o.stdout, /no images of: class2, class3/);
  t.notMatch(o.stdout, /^\s+class2\s/m, 'classes without images get no rows');

  const x = await runCli(['export', '--checkpoint', path.join(run, 'weights.safetensors'), '--out', path.join(dir, 'exported')], {
    built: true,
  });
  t.equal(x.code, 0, x.stderr);
  t.ok(existsSync(path.join(dir, 'exported', 'onnx', 'model.onnx')));

  const missing = await runCli(['eval', '--model', path.join(dir, 'nope'), '--data', data], { built: true });
  t.equal(missing.code, 1);
  assertOneLineError(t, missing.stderr, /model folder .*nope does not exist/);
});

t.test('--help of the command and of each subcommand: usage on stdout, exit 0', async (t) => {
  for (const args of [
    ['--help'],
    ['train', '--help'],
    ['export', '--help'],
    ['eval', '--help'],
    ['serve', '--help'],
    ['import', '--help'],
    ['train', '-h'],
  ]) {
    const r = await runCli(args, { built: true });
    t.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    t.match(r.stdout, /^usage: vitrine/, `${args.join(' ')} prints its usage`);
    t.equal(r.stderr, '', `${args.join(' ')}: nothing on stderr`);
  }
});

function boundPort(): Promise<net.Server> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => resolve(s));
  });
}

t.test('serve from the built command: answers, exits 0 on SIGTERM; a busy port exits 1 at once', async (t) => {
  const busy = await boundPort();
  const port = (busy.address() as net.AddressInfo).port;
  const r = await runCli(['serve', '--port', String(port), '--host', '127.0.0.1', '--workers', '1', '--log-level', 'error'], {
    built: true,
    timeoutMs: 60_000,
  });
  busy.close();
  t.equal(r.code, 1, `exit status (stderr: ${r.stderr})`);
  assertOneLineError(t, r.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: the address is already in use`));

  const { child, base, exited } = await serveOnFreePort(['--workers', '1']);
  await until(
    'the built server answers /healthz',
    () =>
      fetch(`${base}/healthz`).then(
        (res) => res.ok,
        () => false,
      ),
    30_000,
  );
  const page = await fetch(`${base}/`);
  t.equal(page.status, 200, 'the web page is served from the build');
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'SIGTERM: exit 0');
});
