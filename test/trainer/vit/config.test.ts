import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { readSafetensors } from '../../../trainer/io/safetensors.js';
import { SEED_CONFIG, parseViTConfig } from '../../../trainer/vit/config.js';
import { ViT } from '../../../trainer/vit/model.js';
import { saveWeightsFile, loadWeightsFile } from '../../../trainer/vit/weights.js';
import seedJson from '../../../trainer/vit/seed.json' with { type: 'json' };

t.test('the shipped seed config is the seed config', async (t) => {
  t.same(parseViTConfig(seedJson, 'seed.json'), SEED_CONFIG);
});

t.test('bad configs are rejected with the key and the rule', async (t) => {
  t.throws(() => parseViTConfig({ hidden_sise: 4 }, 'c.json'), /c\.json: unknown key 'hidden_sise'/);
  t.throws(() => parseViTConfig({ num_hidden_layers: 0 }), /'num_hidden_layers' must be a positive integer, got 0/);
  t.throws(() => parseViTConfig({ hidden_dropout_prob: 1 }), /must be a number in \[0, 1\)/);
  t.throws(() => parseViTConfig({ image_size: 30 }), /image_size 30 is not a multiple of patch_size 4/);
  t.throws(() => parseViTConfig({ num_attention_heads: 5 }), /hidden_size 48 is not a multiple of num_attention_heads 5/);
  t.throws(() => parseViTConfig({ std: [0.5, 0, 0.5] }), /'std' must be a non-empty array of positive numbers, got \[0.5,0,0.5\]/);
  t.throws(() => parseViTConfig({ mean: [0.5] }), /'mean' has 1 values for 3 channels/);
  t.throws(() => parseViTConfig([1, 2]), /expected a JSON object/);
  t.throws(() => parseViTConfig({ tokenizer_layers: 2, patch_size: 8 }), /a tokenizer of 2 stages .* patch_size must be 4, got 8/);
  t.throws(() => parseViTConfig({ tokenizer_layers: 5 }), /'tokenizer_layers' must be an integer in \[0, 4\]/);
  t.throws(() => parseViTConfig({ tokenizer_kernel: 4 }), /'tokenizer_kernel' must be one of 1, 3, 5, 7/);
  t.throws(() => parseViTConfig({ tokenizer_layers: 2, shifted_patch_tokenization: true }), /does not go with the convolutional tokenizer/);
  t.throws(() => parseViTConfig({ image_size: 30, patch_size: 3, shifted_patch_tokenization: true }), /patch_size must be even, got 3/);
});

t.test('the options add only their own parameters', async (t) => {
  const names = (c: object) => new ViT(parseViTConfig(c)).namedParameters().map(([n, p]) => `${n} [${p.shape}]`);
  const seed = names({});
  const conv = names({ tokenizer_layers: 2, tokenizer_channels: 16 });
  t.same(
    conv.filter((n) => !seed.includes(n)),
    ['embedding.tokenizer.conv_layers.0.weight [16,3,3,3]', 'embedding.tokenizer.conv_layers.1.weight [48,16,3,3]'],
  );
  t.same(
    seed.filter((n) => !conv.includes(n)),
    ['embedding.patch_embeddings.projection.weight [48,3,4,4]', 'embedding.patch_embeddings.projection.bias [48]'],
  );
  const spt = names({ shifted_patch_tokenization: true });
  t.same(spt.filter((n) => !seed.includes(n)).sort(), [
    'embedding.patch_embeddings.layernorm.bias [240]',
    'embedding.patch_embeddings.layernorm.weight [240]',
    'embedding.patch_embeddings.projection.weight [48,15,4,4]',
  ]);
  const lsa = names({ locality_self_attention: true });
  t.same(
    lsa.filter((n) => !seed.includes(n)),
    [0, 1, 2, 3].map((i) => `encoder.blocks.${i}.attention.scale [4]`),
  );
  const scale = new ViT(parseViTConfig({ locality_self_attention: true }))
    .namedParameters()
    .find(([n]) => n.endsWith('attention.scale'))![1];
  t.same(
    [...scale.data],
    [1, 1, 1, 1].map(() => Math.fround(1 / Math.sqrt(12))),
    'scales start at 1/sqrt(head size)',
  );
});

t.test('parameter names and initialization follow the seed', async (t) => {
  const model = new ViT(SEED_CONFIG, 0);
  const names = new Map(model.namedParameters());
  t.same(names.get('embedding.patch_embeddings.projection.weight')!.shape, [48, 3, 4, 4]);
  t.same(names.get('encoder.blocks.3.attention.heads.2.query.weight')!.shape, [12, 48]);
  t.same(names.get('encoder.blocks.0.attention.output_projection.weight')!.shape, [48, 48]);
  t.same(names.get('encoder.blocks.1.mlp.dense_1.weight')!.shape, [192, 48]);
  t.same(names.get('classifier.weight')!.shape, [10, 48]);
  t.ok(
    names.get('encoder.blocks.0.layernorm_1.weight')!.data.every((v) => v === 1),
    'layer norm weight 1',
  );
  t.ok(
    names.get('classifier.bias')!.data.every((v) => v === 0),
    'biases 0',
  );
  const w = names.get('encoder.blocks.1.mlp.dense_1.weight')!.data;
  const mean = w.reduce((a, b) => a + b, 0) / w.length;
  const std = Math.sqrt(w.reduce((a, b) => a + (b - mean) ** 2, 0) / w.length);
  t.ok(Math.abs(mean) < 0.002 && Math.abs(std - 0.02) < 0.002, `weights ~ normal(0, 0.02): mean ${mean.toFixed(4)}, std ${std.toFixed(4)}`);
  t.notSame(new ViT(SEED_CONFIG, 1).namedParameters()[0][1].data, model.namedParameters()[0][1].data, 'seeds differ');
});

t.test('use_faster_attention saves the fused qkv_projection and loads back', async (t) => {
  const config = { ...SEED_CONFIG, use_faster_attention: true };
  const a = new ViT(config, 4);
  const file = path.join(await mkdtemp(path.join(os.tmpdir(), 'vitrine-w-')), 'w.safetensors');
  await saveWeightsFile(a, file);
  const saved = (await readSafetensors(file)).tensors;
  t.same(saved.get('encoder.blocks.0.attention.qkv_projection.weight')!.shape, [144, 48]);
  t.notOk(saved.has('encoder.blocks.0.attention.heads.0.query.weight'));
  const b = new ViT(SEED_CONFIG, 9);
  await loadWeightsFile(b, file);
  const pa = new Map(a.namedParameters());
  t.ok(
    b.namedParameters().every(([n, p]) => p.data.every((v, i) => v === pa.get(n)!.data[i])),
    'every parameter round-trips',
  );
});
