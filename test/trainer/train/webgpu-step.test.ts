// The training step on the WebGPU provider (lavapipe here) against the CPU provider: the same loss and
// gradients, for each architecture the trainer builds. The step graph is what `vitrine train
// --device webgpu` runs; the tokenizer's max-pool gradient is emitted without MaxPool's indices there.

import t from 'tap';
import { OrtGraph } from '../../../trainer/autograd/ort-executor.js';
import { Rng } from '../../../trainer/nn/random.js';
import { trainStepOutputs } from '../../../trainer/train/step.js';
import { parseViTConfig, type ViTConfig } from '../../../trainer/vit/config.js';
import { INPUT_NAME, ViT, pixelDims } from '../../../trainer/vit/model.js';
import type { HostTensor } from '../../../runtime/ort.js';
import { TINY, TINY_CONV, TINY_SPT_LSA } from '../../helpers/vit.js';
import { haveWebGpu, relativeDiff } from '../../helpers/webgpu.js';

const CASES: [string, ViTConfig][] = [
  ['the seed ViT', TINY],
  ['the convolutional tokenizer', TINY_CONV],
  ['shifted patches and locality self-attention', TINY_SPT_LSA],
  [
    'dropout and drop path (masks fed)',
    parseViTConfig({ ...TINY, hidden_dropout_prob: 0.1, attention_probs_dropout_prob: 0.1, drop_path_rate: 0.2 }),
  ],
  [
    'exact GELU, final norm, distillation token',
    parseViTConfig({ ...TINY, hidden_act: 'gelu', final_layernorm: true, distillation_token: true, distillation_classifier: true }),
  ],
];

t.test('the training step on webgpu gives the CPU provider loss and gradients', async (t) => {
  if (!haveWebGpu(t)) return;
  for (const [name, config] of CASES) {
    const model = new ViT(config, 3);
    const { outputs, masks } = trainStepOutputs(model);
    const batch = 4;
    const rng = new Rng(5);
    const feeds: Record<string, HostTensor> = Object.fromEntries(
      model.namedParameters().map(([n, p]) => [n, { data: p.data, dims: p.shape }]),
    );
    const pixels = pixelDims(config, batch);
    feeds[INPUT_NAME] = { data: Float32Array.from({ length: pixels.reduce((a, b) => a * b) }, () => rng.normal()), dims: pixels };
    feeds.targets = {
      data: Float32Array.from({ length: batch * config.num_classes }, (_, i) => (i % config.num_classes === i % 3 ? 1 : 0)),
      dims: [batch, config.num_classes],
    };
    for (const m of masks) {
      const dims = m.shape.map((d) => (typeof d === 'number' ? d : batch));
      feeds[m.name] = {
        data: Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => (rng.next() < 1 - m.p ? 1 / (1 - m.p) : 0)),
        dims,
      };
    }
    const cpu = await OrtGraph.create({ outputs, device: 'cpu', graphName: 'step' });
    const gpu = await OrtGraph.create({ outputs, device: 'webgpu', graphName: 'step' });
    t.equal(gpu.provider, 'webgpu', `${name}: on webgpu`);
    t.same(gpu.session.cpuNodes, [], `${name}: every node the step needs is one the provider runs`);
    const [a, b] = [await cpu.run(feeds), await gpu.run(feeds)];
    t.ok(relativeDiff(a.loss.data, b.loss.data) < 1e-5, `${name}: loss ${a.loss.data[0]} on the CPU, ${b.loss.data[0]} on webgpu`);
    // A key's bias shifts every score of a query's row alike, which softmax ignores: its gradient is
    // zero in exact arithmetic, rounding noise on either provider.
    const noise = outputs.map(([o]) => o).filter((o) => /^grad\..*\.key\.bias$/.test(o));
    const largestNoise = Math.max(...noise.flatMap((o) => [...a[o].data, ...b[o].data].map(Math.abs)));
    t.ok(largestNoise < 1e-6, `${name}: the keys' bias gradients are zero on both (largest ${largestNoise.toExponential(1)})`);
    const grads = outputs.map(([o]) => o).filter((o) => o.startsWith('grad.') && !noise.includes(o));
    // a gradient far below the largest is compared against a thousandth of it
    const floor = 1e-3 * Math.max(...grads.map((o) => Math.max(...a[o].data.map(Math.abs))));
    const [worst, which] = grads
      .map((o): [number, string] => [relativeDiff(a[o].data, b[o].data, floor), o])
      .sort((x, y) => y[0] - x[0])[0];
    t.ok(worst < 1e-4, `${name}: ${grads.length} gradients within 1e-4 relative (worst ${worst.toExponential(2)}, ${which})`);
  }
});
