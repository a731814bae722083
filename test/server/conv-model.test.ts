// A model with the convolutional tokenizer is served like the seed: classification, its attention
// rollout and relevance maps on the same 8x8 grid, next to a seed model in one models folder.

import path from 'node:path';
import t from 'tap';
import { exportModel } from '../../trainer/export.js';
import { CIFAR10_CLASSES } from '../../trainer/data/cifar10.js';
import { SEED_CONFIG, parseViTConfig } from '../../trainer/vit/config.js';
import { ViT } from '../../trainer/vit/model.js';
import { tmpDir } from '../helpers/data.js';
import { multipart, testApp, testImage } from '../helpers/server.js';

t.test('a conv-tokenizer model answers /classify, /attention and relevance, beside a seed model', async (t) => {
  const root = await tmpDir('vitrine-conv-models-');
  const conv = parseViTConfig({
    tokenizer_layers: 2,
    patch_size: 4,
    tokenizer_channels: 8,
    hidden_size: 16,
    num_hidden_layers: 2,
    num_attention_heads: 2,
    intermediate_size: 32,
  });
  await exportModel(new ViT(conv, 2), CIFAR10_CLASSES, path.join(root, 'cct'));
  await exportModel(new ViT(SEED_CONFIG, 1), CIFAR10_CLASSES, path.join(root, 'vit-cifar10'));
  const app = await testApp(t, { models: root });

  const listed = (await app.inject('/models')).json();
  const names = (listed.models ?? listed).map((m: { name: string }) => m.name);
  t.ok(names.includes('cct') && names.includes('vit-cifar10'), `both listed: ${names.join(', ')}`);

  const r = await app.inject({ method: 'POST', url: '/classify?model=cct&attention=rollout', ...multipart('image', await testImage()) });
  t.equal(r.statusCode, 200, r.body);
  const c = r.json();
  t.equal(c.model, 'cct');
  t.equal(c.logits.length, 10);
  t.ok(c.predictions[0].probability > 0 && c.predictions[0].probability <= 1, 'a probability for the top class');
  t.match(c.attention, { method: 'rollout', grid: [8, 8] });

  const rel = await app.inject(`/attention/${c.id}?method=relevance&class=3&format=json`);
  t.equal(rel.statusCode, 200, rel.body);
  t.match(rel.json(), { method: 'relevance', class_index: 3, grid: [8, 8] });
  t.equal(Math.max(...rel.json().values.flat()), 1, 'scaled to a maximum of 1');

  const png = await app.inject(`/attention/${c.id}?size=64`);
  t.equal(png.statusCode, 200);
  t.equal(png.headers['content-type'], 'image/png');
});
