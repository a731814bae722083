import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { readSafetensors, writeSafetensors } from '../../trainer/io/safetensors.js';
import { readModelConfig } from '../../runtime/model-config.js';
import { createSession, runSession } from '../../runtime/ort.js';
import { ROOT, assertOneLineError, runCli } from '../helpers/cli.js';

const tmp = () => mkdtemp(path.join(os.tmpdir(), 'vitrine-export-'));
const seedWeights = path.join(ROOT, 'test', 'fixtures', 'seed-weights.safetensors');

t.test('exports a fresh model that ONNX Runtime runs at any batch size', async (t) => {
  const out = path.join(await tmp(), 'm');
  const r = await runCli(['export', '--out', out, '--seed', '5']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /exported 119098 parameters \(fresh, seed 5\)/);
  const config = await readModelConfig(out);
  t.same(config.image_size, [32, 32]);
  t.same(
    [config.mean, config.std],
    [
      [0.5, 0.5, 0.5],
      [0.5, 0.5, 0.5],
    ],
  );
  t.same(config.attention_outputs, ['attentions.0', 'attentions.1', 'attentions.2', 'attentions.3']);
  t.equal(config.labels[3], 'cat');
  t.equal(config.input_name, 'pixel_values');
  const s = await createSession(path.join(out, 'onnx', 'model.onnx'));
  t.same(s.outputNames, ['logits', 'attentions.0', 'attentions.1', 'attentions.2', 'attentions.3', 'attention_rollout']);
  for (const batch of [1, 5]) {
    const res = await runSession(s, { pixel_values: { data: new Float32Array(batch * 3 * 32 * 32).fill(0.1), dims: [batch, 3, 32, 32] } });
    t.same([...res.logits.dims], [batch, 10], `batch ${batch}`);
  }
});

t.test('exports a checkpoint with labels', async (t) => {
  const out = path.join(await tmp(), 'm');
  const labels = 'a,b,c,d,e,f,g,h,i,j';
  const r = await runCli(['export', '--checkpoint', seedWeights, '--labels', labels, '--out', out]);
  t.equal(r.code, 0, r.stderr);
  const config = JSON.parse(await readFile(path.join(out, 'config.json'), 'utf8'));
  t.same(config.id2label, Object.fromEntries(labels.split(',').map((l, i) => [String(i), l])));
  t.same((await readModelConfig(out)).labels, labels.split(','));
});

t.test('bad input: one line, non-zero exit, nothing written', async (t) => {
  const dir = await tmp();
  const out = path.join(dir, 'out');

  const badConfig = path.join(dir, 'bad.json');
  await writeFile(badConfig, JSON.stringify({ hidden_size: 48, hiden_layers: 3 }));
  let r = await runCli(['export', '--config', badConfig, '--out', out]);
  t.equal(r.code, 1);
  assertOneLineError(t, r.stderr, /unknown key 'hiden_layers'/);

  const { tensors } = await readSafetensors(seedWeights);
  const missing = new Map(tensors);
  missing.delete('classifier.bias');
  await writeSafetensors(path.join(dir, 'missing.safetensors'), missing);
  r = await runCli(['export', '--checkpoint', path.join(dir, 'missing.safetensors'), '--out', out]);
  t.equal(r.code, 1);
  assertOneLineError(t, r.stderr, /missing tensor 'classifier\.bias'/);

  const misshapen = new Map(tensors);
  misshapen.set('classifier.weight', { shape: [10, 47], data: new Float32Array(470) });
  await writeSafetensors(path.join(dir, 'misshapen.safetensors'), misshapen);
  r = await runCli(['export', '--checkpoint', path.join(dir, 'misshapen.safetensors'), '--out', out]);
  t.equal(r.code, 1);
  assertOneLineError(t, r.stderr, /tensor 'classifier\.weight' has shape \[10, 47\], expected \[10, 48\]/);

  await writeFile(path.join(dir, 'truncated.safetensors'), (await readFile(seedWeights)).subarray(0, 5000));
  r = await runCli(['export', '--checkpoint', path.join(dir, 'truncated.safetensors'), '--out', out]);
  t.equal(r.code, 1);
  assertOneLineError(t, r.stderr, /not a valid safetensors file/);

  t.notOk(existsSync(out), 'no output folder after failed exports');

  const aFile = path.join(dir, 'a-file');
  await writeFile(aFile, 'x');
  r = await runCli(['export', '--out', path.join(aFile, 'model')]);
  t.equal(r.code, 1);
  assertOneLineError(t, r.stderr, /cannot create .*a-file\/model/);

  r = await runCli(['export', '--out', out, '--bogus']);
  t.equal(r.code, 2, 'unknown flag is a usage error');
  t.match(r.stderr, /^vitrine export: unknown flag --bogus \('vitrine export --help' lists the flags\)$/m);
  t.equal(r.stderr.trim().split('\n').length, 1, 'one line, no usage after it');

  r = await runCli(['export']);
  t.equal(r.code, 2);
  t.match(r.stderr, /--out is required/);
});

t.test('a failed export leaves an earlier export untouched', async (t) => {
  const out = path.join(await tmp(), 'm');
  t.equal((await runCli(['export', '--out', out])).code, 0);
  const before = await readFile(path.join(out, 'onnx', 'model.onnx'));
  const r = await runCli(['export', '--out', out, '--labels', 'only,two']);
  t.equal(r.code, 1);
  assertOneLineError(t, r.stderr, /2 labels given for a model of 10 classes/);
  t.same(await readFile(path.join(out, 'onnx', 'model.onnx')), before, 'model.onnx unchanged');
  t.same((await readdir(out)).sort(), ['config.json', 'onnx', 'preprocessor_config.json'], 'no temp files left');
  t.same(
    (await readdir(path.join(out, 'onnx'))).sort(),
    ['model.onnx', 'relevance-light.onnx', 'relevance.onnx'],
    'no temp files left in onnx/',
  );
});
