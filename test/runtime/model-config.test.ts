// The model folder's files: what an export writes reads back unchanged, earlier exports still read,
// a Hugging Face (optimum) folder reads with its processor's values, and bad files name the problem.

import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { modelFolderFiles, parseModelConfig, readModelConfig } from '../../runtime/model-config.js';
import { modelConfigFor } from '../../trainer/export.js';
import { CIFAR10_CLASSES } from '../../trainer/data/cifar10.js';
import { SEED_CONFIG } from '../../trainer/vit/config.js';
import { ViT } from '../../trainer/vit/model.js';
import { ROOT } from '../helpers/cli.js';
import { tmpDir } from '../helpers/data.js';

const seedConfig = () => ({
  ...modelConfigFor(new ViT(SEED_CONFIG, 0), CIFAR10_CLASSES),
  training: { data: 'cifar10', val_ratio: 0.1, seed: 0 },
});

t.test('an export writes transformers ViT keys and ViTImageProcessor, and reads back the same config', async (t) => {
  const config = seedConfig();
  const files = modelFolderFiles(config);
  t.match(files.config, {
    model_type: 'vit',
    architectures: ['ViTForImageClassification'],
    image_size: 32,
    patch_size: 4,
    num_channels: 3,
    hidden_size: 48,
    num_hidden_layers: 4,
    num_attention_heads: 4,
    intermediate_size: 192,
    hidden_act: 'gelu_new',
    layer_norm_eps: 1e-5,
    qkv_bias: true,
  });
  t.same(files.config.id2label, {
    0: 'airplane',
    1: 'automobile',
    2: 'bird',
    3: 'cat',
    4: 'deer',
    5: 'dog',
    6: 'frog',
    7: 'horse',
    8: 'ship',
    9: 'truck',
  });
  t.equal((files.config.label2id as Record<string, number>).truck, 9);
  t.notOk(
    'labels' in files.config || 'mean' in files.config,
    'each value written once: labels as id2label, mean and std in the processor config',
  );
  t.same(files.preprocessor, {
    image_processor_type: 'ViTImageProcessor',
    do_resize: true,
    size: { height: 32, width: 32 },
    resample: 4,
    do_rescale: true,
    rescale_factor: 1 / 255,
    do_normalize: true,
    image_mean: [0.5, 0.5, 0.5],
    image_std: [0.5, 0.5, 0.5],
  });
  const back = parseModelConfig(JSON.parse(JSON.stringify(files.config)), 'config.json', JSON.parse(JSON.stringify(files.preprocessor)));
  t.same(back, config, 'the round trip gives the config the server used before');
});

t.test('a folder as earlier exports wrote it still loads, without a processor config', async (t) => {
  const config = seedConfig();
  const dir = await tmpDir();
  await writeFile(path.join(dir, 'config.json'), JSON.stringify(config));
  t.same(await readModelConfig(dir), config);
});

t.test('an optimum-layout folder: labels from id2label, size, resample, rescale, mean and std from the processor', async (t) => {
  const c = await readModelConfig(path.join(ROOT, 'test', 'fixtures', 'hf-vit'));
  t.same(c.labels, ['apple', 'boat', 'cloud', 'door', 'eagle']);
  t.same(c.image_size, [24, 24]);
  t.same(
    [c.mean, c.std],
    [
      [0.485, 0.456, 0.406],
      [0.229, 0.224, 0.225],
    ],
  );
  t.equal(c.input_name, 'pixel_values');
  t.equal(c.logits_output, 'logits');
  t.same(c.attention_outputs, [], 'no attention maps from a foreign graph');
  t.equal(c.patch_size, null);
  t.equal(c.relevance, undefined);
  t.same([c.fit, c.resample, c.rescale], ['fill', 'linear', 0.00392156862745098], 'stretched with bilinear as ViTImageProcessor does');

  const hf = { id2label: { 0: 'a', 1: 'b' }, model_type: 'vit' };
  const processor = { size: { height: 8, width: 8 }, image_mean: [0, 0, 0], image_std: [1, 1, 1], do_rescale: false, resample: 3 };
  t.same(parseModelConfig(hf, 'c', processor).rescale, 1, 'do_rescale false');
  t.equal(parseModelConfig(hf, 'c', processor).resample, 'cubic');
  t.same(parseModelConfig(hf, 'c', { ...processor, do_normalize: false, image_mean: undefined }).mean, [0, 0, 0], 'do_normalize false');
});

t.test('bad model folders name the file and the problem', async (t) => {
  const hf = { id2label: { 0: 'a', 1: 'b' } };
  const processor = { size: { height: 8, width: 8 }, image_mean: [0.5], image_std: [0.5] };
  t.throws(
    () => parseModelConfig(hf, 'x/config.json'),
    /x\/config\.json: a Hugging Face config \(id2label, no input_name\) needs preprocessor_config\.json beside it/,
  );
  t.throws(() => parseModelConfig({ id2label: { 0: 'a', 2: 'b' } }, 'c', processor), /c: 'id2label' keys must be 0 to 1, got "2"/);
  t.throws(() => parseModelConfig({ id2label: { 0: 'a', 1: 3 } }, 'c', processor), /'id2label' must map "1" to a class name/);
  t.throws(
    () => parseModelConfig(hf, 'c', { ...processor, size: { shortest_edge: 8 } }, 'p.json'),
    /p\.json: 'size' must be \{ height, width \}/,
  );
  t.throws(
    () => parseModelConfig(hf, 'c', { ...processor, resample: 9 }, 'p.json'),
    /p\.json: 'resample' must be one of PIL's codes 0-5, got 9/,
  );
  t.throws(
    () => parseModelConfig(hf, 'c', { ...processor, image_std: [0] }, 'p.json'),
    /p\.json: 'image_std' must be an array of positive numbers, one per channel \(at most 4\), got \[0\]/,
  );
  t.throws(() => parseModelConfig(hf, 'c', [], 'p.json'), /p\.json: expected a JSON object/);
  const ours = seedConfig();
  t.throws(
    () => parseModelConfig({ ...ours, input_name: undefined }, 'c'),
    /^c: 'input_name' must be a non-empty string$/,
    'a missing key',
  );
  t.throws(() => parseModelConfig({ ...ours, patch_size: 0 }, 'c'), /^c: 'patch_size' must be a positive integer or null, got 0$/);
  t.throws(() => parseModelConfig({ ...ours, vit: 'big' }, 'c'), /^c: 'vit' must be an object \(a ViT config\), got "big"$/);
  t.throws(
    () => parseModelConfig({ ...ours, image_size: [32] }, 'c'),
    /^c: 'image_size' must be \[height, width\] in pixels, at most 4096 each \(or one number for a square\), got \[32\]$/,
  );
  const relevance = { file: 'relevance.onnx', class_input: 'class', gradient_outputs: ours.attention_outputs.map((a) => `${a}_grad`) };
  t.equal(parseModelConfig({ ...ours, relevance }, 'c').relevance?.file, 'relevance.onnx');
  t.throws(
    () => parseModelConfig({ ...ours, relevance: { ...relevance, file: '../x.onnx' } }, 'c'),
    /^c: 'relevance\.file' must be a file in the model folder, got "\.\.\/x\.onnx"$/,
    'a nested key is named with its path',
  );
  t.throws(
    () => parseModelConfig({ ...ours, relevance: { ...relevance, gradient_outputs: [] } }, 'c'),
    /'relevance\.gradient_outputs' must name one gradient per attention output \(4\)/,
  );
  t.throws(
    () => parseModelConfig({ ...ours, labels: Array(100).fill(7) }, 'c'),
    /^c: 'labels' must be a non-empty array of at most 100,000 strings .{0,80}, got \[7,7,7.*\.\.\.$/,
    'a long value is cut short',
  );
  const dir = await tmpDir();
  await mkdir(path.join(dir, 'm'));
  await writeFile(path.join(dir, 'm', 'config.json'), JSON.stringify(hf));
  await writeFile(path.join(dir, 'm', 'preprocessor_config.json'), '{ nope');
  await t.rejects(readModelConfig(path.join(dir, 'm')), /preprocessor_config\.json: not valid JSON/);
});

t.test("naming the outputs keeps a Hugging Face processor's stretch; vitrine's own models cover-crop", async (t) => {
  const processor = { size: { height: 24, width: 24 }, resample: 3, image_mean: [0.5, 0.5, 0.5], image_std: [0.5, 0.5, 0.5] };
  const named = {
    id2label: { 0: 'a', 1: 'b' },
    input_name: 'pixel_values',
    logits_output: 'logits',
    attention_outputs: ['attentions.0'],
    patch_size: 8,
  };
  const c = parseModelConfig(named, 'config.json', processor);
  t.same(
    [c.fit, c.resample, c.image_size],
    ['fill', 'cubic', [24, 24]],
    'an imported or hand-written folder resizes as its processor says',
  );
  t.equal(parseModelConfig({ ...named, fit: 'cover' }, 'config.json', processor).fit, 'cover', "config.json's fit wins");
  t.equal(
    parseModelConfig({ ...named, vit: { hidden_size: 48 } }, 'config.json', processor).fit ?? 'cover',
    'cover',
    'a model vitrine trained (it carries its ViT config) cover-crops',
  );
  t.equal(
    parseModelConfig({ ...named, image_size: 24, mean: [0, 0, 0], std: [1, 1, 1] }).fit ?? 'cover',
    'cover',
    'no processor: cover-cropped, as earlier exports were',
  );
  t.equal(parseModelConfig({ ...named, prefix_tokens: 2, attention_heads: 3 }, 'config.json', processor).prefix_tokens, 2);
  t.throws(
    () => parseModelConfig({ ...named, prefix_tokens: 0 }, 'config.json', processor),
    /'prefix_tokens' must be a positive integer, got 0/,
  );
});
