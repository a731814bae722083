// Stochastic depth: per-image masks of shape [batch, 1, 1] on each residual branch, rising over the
// blocks; a zeroed mask makes its block the identity for that image; inference is unchanged.

import t from 'tap';
import { interpret } from '../../../trainer/autograd/interpreter.js';
import { type NDArray, nd } from '../../../trainer/autograd/ndarray.js';
import { input } from '../../../trainer/autograd/ops.js';
import { GraphContext } from '../../../trainer/nn/module.js';
import { Rng } from '../../../trainer/nn/random.js';
import { parseViTConfig } from '../../../trainer/vit/config.js';
import { BATCH, ViT } from '../../../trainer/vit/model.js';
import { TINY } from '../../helpers/vit.js';

const batch = 2;

function feedsOf(model: ViT): Record<string, NDArray> {
  const rng = new Rng(9);
  const feeds: Record<string, NDArray> = {
    pixel_values: nd(
      Float64Array.from({ length: batch * 3 * 64 }, () => rng.normal()),
      [batch, 3, 8, 8],
    ),
  };
  for (const [name, p] of model.namedParameters()) feeds[name] = nd(p.data, p.shape);
  return feeds;
}

t.test('drop path: masks per image and per branch, rising over the blocks', async (t) => {
  const config = parseViTConfig({ ...TINY, num_hidden_layers: 3, drop_path_rate: 0.4 });
  const model = new ViT(config, 2);
  const ctx = new GraphContext(true);
  const { logits } = model.forward(ctx, input('pixel_values', [BATCH, 3, 8, 8]));
  // block 0 has rate 0 (no masks), blocks 1 and 2 have 0.2 and 0.4, two branches each
  t.same(
    ctx.masks.map((m) => [m.shape, +m.p.toFixed(6)]),
    [
      [[BATCH, 1, 1], 0.2],
      [[BATCH, 1, 1], 0.2],
      [[BATCH, 1, 1], 0.4],
      [[BATCH, 1, 1], 0.4],
    ],
  );

  // Masks of 1 everywhere: the inference graph's logits.
  const feeds = feedsOf(model);
  const ones = (v0: number, v1: number) => nd([v0, v1], [batch, 1, 1]);
  const plain = interpret([model.forward(new GraphContext(false), input('pixel_values', [BATCH, 3, 8, 8])).logits], feeds)[0];
  const all = { ...feeds, ...Object.fromEntries(ctx.masks.map((m) => [m.name, ones(1, 1)])) };
  t.same(Array.from(interpret([logits], all)[0].data), Array.from(plain.data), 'kept branches (mask 1) change nothing');

  // Image 0 drops blocks 1 and 2 entirely: its logits are those of the first block alone.
  const dropped = { ...feeds, ...Object.fromEntries(ctx.masks.map((m) => [m.name, ones(0, 1)])) };
  const got = interpret([logits], dropped)[0].data;
  const one = new ViT(parseViTConfig({ ...TINY, num_hidden_layers: 1 }), 2);
  const firstBlockOnly = interpret([one.forward(new GraphContext(false), input('pixel_values', [BATCH, 3, 8, 8])).logits], feeds)[0].data;
  const K = TINY.num_classes;
  for (let k = 0; k < K; k++) t.ok(Math.abs(got[k] - firstBlockOnly[k]) < 1e-12, `image 0, class ${k}: ${got[k]} = ${firstBlockOnly[k]}`);
  t.ok(
    Array.from(got.subarray(K)).every((v, k) => Math.abs(v - plain.data[K + k]) < 1e-12),
    'image 1 keeps its blocks',
  );

  // At inference the rate changes nothing.
  const inference = interpret([model.forward(new GraphContext(false), input('pixel_values', [BATCH, 3, 8, 8])).logits], feeds)[0];
  const seed = new ViT(parseViTConfig({ ...TINY, num_hidden_layers: 3 }), 2);
  t.same(
    Array.from(inference.data),
    Array.from(interpret([seed.forward(new GraphContext(false), input('pixel_values', [BATCH, 3, 8, 8])).logits], feedsOf(seed))[0].data),
    'same weights, same logits with and without the rate',
  );
});
