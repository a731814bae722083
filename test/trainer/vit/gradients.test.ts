// The ViT's gradient graph on a tiny config: against central differences (interpreter, float64), and
// the same gradients from the interpreter and from ONNX Runtime.

import t from 'tap';
import { grad } from '../../../trainer/autograd/grad.js';
import { interpret } from '../../../trainer/autograd/interpreter.js';
import { type NDArray, nd } from '../../../trainer/autograd/ndarray.js';
import { crossEntropy, input } from '../../../trainer/autograd/ops.js';
import { OrtGraph } from '../../../trainer/autograd/ort-executor.js';
import { GraphContext } from '../../../trainer/nn/module.js';
import { Rng } from '../../../trainer/nn/random.js';
import { BATCH, ViT } from '../../../trainer/vit/model.js';
import { assertClose } from '../../helpers/opcheck.js';
import { TINY, TINY_CONV, TINY_SPT_LSA } from '../../helpers/vit.js';
import type { ViTConfig } from '../../../trainer/vit/config.js';

function setup(c: ViTConfig) {
  const model = new ViT(c, 3);
  const ctx = new GraphContext(true);
  const pixels = input('pixel_values', [BATCH, c.num_channels, c.image_size, c.image_size]);
  const targets = input('targets', [BATCH, c.num_classes]);
  const { logits } = model.forward(ctx, pixels);
  const loss = crossEntropy(logits, targets);
  const params = ctx.parameters;
  const grads = grad(
    loss,
    params.map(([, n]) => n),
  );
  const rng = new Rng(11);
  const batch = 2;
  const feeds: Record<string, NDArray> = {
    pixel_values: nd(
      Float64Array.from({ length: batch * c.num_channels * 64 }, () => rng.normal()),
      [batch, c.num_channels, 8, 8],
    ),
    targets: nd([0.8, 0.1, 0.1, 0, 0.2, 0.8], [batch, 3]),
  };
  for (const [p] of params) feeds[p.name] = nd(p.data, p.shape);
  return { model, params, loss, grads, feeds };
}

for (const [kind, config] of [
  ['patch embedding', TINY],
  ['convolutional tokenizer', TINY_CONV],
  ['shifted patches and locality self-attention', TINY_SPT_LSA],
] as const) {
  t.test(`${kind}: every parameter gradient matches central differences`, async (t) => {
    const { params, loss, grads, feeds } = setup(config);
    t.equal(params.length, new ViT(config).namedParameters().length, 'the forward pass uses every parameter');
    const analytic = interpret(grads, feeds);
    const eps = 1e-6;
    params.forEach(([p], i) => {
      const values = feeds[p.name].data;
      const numeric = new Float64Array(values.length);
      for (let k = 0; k < values.length; k++) {
        const keep = values[k];
        values[k] = keep + eps;
        const up = interpret([loss], feeds)[0].data[0];
        values[k] = keep - eps;
        const down = interpret([loss], feeds)[0].data[0];
        values[k] = keep;
        numeric[k] = (up - down) / (2 * eps);
      }
      assertClose(t, analytic[i].data, numeric, 1e-4, 1e-7, `d loss / d ${p.name}`);
    });
  });

  t.test(`${kind}: ONNX Runtime computes the same loss and gradients as the interpreter`, async (t) => {
    const { params, loss, grads, feeds } = setup(config);
    const outputs: [string, (typeof grads)[number]][] = [
      ['loss', loss],
      ...grads.map((g, i) => [`grad.${params[i][0].name}`, g] as [string, typeof g]),
    ];
    const graph = await OrtGraph.create({ outputs });
    const f32 = Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, { data: Float32Array.from(v.data), dims: v.shape }]));
    const r = await graph.run(f32);
    const reference = interpret(
      outputs.map(([, n]) => n),
      feeds,
    );
    outputs.forEach(([name], i) => assertClose(t, r[name].data, reference[i].data, 2e-3, 2e-5, name));
  });
}
