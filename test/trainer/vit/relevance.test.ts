// The explanation graph: d y_c / d A_l (a class's logit with respect to every layer's attention
// probabilities) from the autograd, against central differences on the interpreter (the attention
// probabilities moved through fed offsets), and the exported relevance.onnx against the interpreter.

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import t from 'tap';
import { interpret } from '../../../trainer/autograd/interpreter.js';
import { type NDArray, nd } from '../../../trainer/autograd/ndarray.js';
import { CLASS_INPUT, attentionGradOutput, exportModel, relevanceGraph } from '../../../trainer/export.js';
import { GraphContext } from '../../../trainer/nn/module.js';
import { Rng } from '../../../trainer/nn/random.js';
import { ViT } from '../../../trainer/vit/model.js';
import { assertClose } from '../../helpers/opcheck.js';
import { tmpDir } from '../../helpers/data.js';
import { TINY } from '../../helpers/vit.js';

const batch = 2;
const classes = [2, 0];

function feedsFor(model: ViT, extra: Record<string, NDArray> = {}): Record<string, NDArray> {
  const rng = new Rng(5);
  const feeds: Record<string, NDArray> = {
    pixel_values: nd(
      Float64Array.from({ length: batch * 3 * 64 }, () => rng.normal()),
      [batch, 3, 8, 8],
    ),
    [CLASS_INPUT]: nd(classes, [batch]),
    ...extra,
  };
  for (const [name, p] of model.namedParameters()) feeds[name] = nd(p.data, p.shape);
  return feeds;
}

t.test('dy_c/dA_l matches central differences for every layer, head and token pair', async (t) => {
  const model = new ViT(TINY, 4);
  const ctx = new GraphContext(false, true);
  const g = relevanceGraph(model, ctx);
  const probes = [...ctx.taps];
  t.equal(probes.length, TINY.num_hidden_layers, 'one probe per layer');
  const zeros: Record<string, NDArray> = {};
  for (const [name, node] of probes)
    zeros[name] = nd(
      new Float64Array(batch * 2 * 5 * 5),
      node.shape.map((d) => (typeof d === 'number' ? d : batch)),
    );
  const feeds = feedsFor(model, zeros);
  const analytic = interpret(g.grads, feeds);
  const eps = 1e-6;
  probes.forEach(([name], l) => {
    const values = feeds[name].data;
    const numeric = new Float64Array(values.length);
    for (let k = 0; k < values.length; k++) {
      values[k] = eps;
      const up = interpret([g.score], feeds)[0].data[0];
      values[k] = -eps;
      const down = interpret([g.score], feeds)[0].data[0];
      values[k] = 0;
      numeric[k] = (up - down) / (2 * eps);
    }
    t.ok(
      numeric.some((v) => Math.abs(v) > 1e-3),
      `layer ${l}: the class logit depends on the attention`,
    );
    assertClose(t, analytic[l].data, numeric, 1e-5, 1e-8, `layer ${l}: dy_c/dA matches central differences`);
  });
  // per image: image b's gradient is that of its own class's logit
  const one = interpret(relevanceGraph(model).grads, { ...feedsFor(model), [CLASS_INPUT]: nd([2, 2], [batch]) });
  const per = 2 * 5 * 5;
  assertClose(
    t,
    one[0].data.subarray(0, per),
    analytic[0].data.subarray(0, per),
    1e-12,
    1e-12,
    'image 0 (class 2) does not depend on image 1',
  );
  t.notSame(Array.from(one[0].data.subarray(per)), Array.from(analytic[0].data.subarray(per)), 'image 1 follows its own class');
});

t.test("relevance.onnx, exported beside model.onnx, gives the interpreter's gradients", async (t) => {
  const model = new ViT(TINY, 4);
  const dir = await tmpDir();
  await exportModel(model, ['a', 'b', 'c'], dir);
  const config = JSON.parse(await readFile(path.join(dir, 'config.json'), 'utf8'));
  t.same(config.relevance, {
    file: 'onnx/relevance.onnx',
    class_input: 'target_class',
    gradient_outputs: ['attention_grads.0', 'attention_grads.1'],
    input_gradient_output: 'pixel_values_grad',
    top_class: -1,
    light_file: 'onnx/relevance-light.onnx',
  });
  const session = await ort.InferenceSession.create(path.join(dir, 'onnx', 'relevance.onnx'));
  t.same(session.inputNames, ['pixel_values', 'target_class']);
  const feeds = feedsFor(model);
  const ref = interpret(relevanceGraph(model).grads, feeds);
  const out = await session.run({
    pixel_values: new ort.Tensor('float32', Float32Array.from(feeds.pixel_values.data), [batch, 3, 8, 8]),
    target_class: new ort.Tensor('float32', Float32Array.from(classes), [batch]),
  });
  for (let l = 0; l < TINY.num_hidden_layers; l++) {
    const got = out[attentionGradOutput(l)];
    t.same(got.dims, [batch, 2, 5, 5]);
    assertClose(t, got.data as Float32Array, ref[l].data, 1e-3, 1e-5, `layer ${l}: ONNX Runtime matches the interpreter`);
  }
  const inputGrad = interpret([relevanceGraph(model).inputGrad], feeds)[0];
  assertClose(
    t,
    out.pixel_values_grad.data as Float32Array,
    inputGrad.data,
    1e-3,
    1e-5,
    'the input gradient: ONNX Runtime matches the interpreter',
  );

  // target_class -1: each image's own top prediction, in the same run
  const logits = out.logits.data as Float32Array;
  const top = [0, 1].map((b) => {
    const row = Array.from(logits.subarray(b * 3, b * 3 + 3));
    return row.indexOf(Math.max(...row));
  });
  const auto = await session.run({
    pixel_values: new ort.Tensor('float32', Float32Array.from(feeds.pixel_values.data), [batch, 3, 8, 8]),
    target_class: new ort.Tensor('float32', Float32Array.from([-1, -1]), [batch]),
  });
  const named = await session.run({
    pixel_values: new ort.Tensor('float32', Float32Array.from(feeds.pixel_values.data), [batch, 3, 8, 8]),
    target_class: new ort.Tensor('float32', Float32Array.from(top), [batch]),
  });
  for (const name of [attentionGradOutput(0), attentionGradOutput(1), 'pixel_values_grad'])
    t.same(Array.from(auto[name].data as Float32Array), Array.from(named[name].data as Float32Array), `${name}: -1 is the top prediction`);
  // beside an image asked for another class than its top
  const other = (top[1] + 1) % 3;
  const run = (c: number[]) =>
    session.run({
      pixel_values: new ort.Tensor('float32', Float32Array.from(feeds.pixel_values.data), [batch, 3, 8, 8]),
      target_class: new ort.Tensor('float32', Float32Array.from(c), [batch]),
    });
  const mixed = await run([-1, other]);
  const alone = await run([other, other]);
  const per = 2 * 5 * 5;
  const part = (r: Record<string, ort.Tensor>, b: number) =>
    Array.from((r[attentionGradOutput(0)].data as Float32Array).subarray(b * per, (b + 1) * per));
  t.same(part(mixed, 0), part(auto, 0), 'image 0 (-1) explains its top class');
  t.same(part(mixed, 1), part(alone, 1), 'image 1 explains the class asked');
  t.notSame(part(mixed, 1), part(auto, 1), 'which is not its top');
});

t.test(
  "relevance-light.onnx gives the logits, the attentions and the last layer's gradient of the full graph, and nothing else",
  async (t) => {
    const model = new ViT(TINY, 4);
    const dir = await tmpDir();
    await exportModel(model, ['a', 'b', 'c'], dir);
    const light = await ort.InferenceSession.create(path.join(dir, 'onnx', 'relevance-light.onnx'));
    const full = await ort.InferenceSession.create(path.join(dir, 'onnx', 'relevance.onnx'));
    t.same(light.inputNames, ['pixel_values', 'target_class']);
    t.same(light.outputNames, ['logits', 'attentions.0', 'attentions.1', 'attention_grads.1']);
    const feeds = feedsFor(model);
    for (const target of [classes, [-1, -1]]) {
      const run = (s: ort.InferenceSession) =>
        s.run({
          pixel_values: new ort.Tensor('float32', Float32Array.from(feeds.pixel_values.data), [batch, 3, 8, 8]),
          target_class: new ort.Tensor('float32', Float32Array.from(target), [batch]),
        });
      const [a, b] = [await run(light), await run(full)];
      for (const name of light.outputNames)
        assertClose(
          t,
          a[name].data as Float32Array,
          b[name].data as Float32Array,
          1e-5,
          1e-6,
          `classes ${target.join(',')}: ${name} as the full graph's`,
        );
      t.ok(
        (a['attention_grads.1'].data as Float32Array).some((v) => Math.abs(v) > 1e-4),
        'a gradient that is not zero',
      );
    }
  },
);

t.test('dy_c/dx, the input gradient, matches central differences', async (t) => {
  const model = new ViT(TINY, 4);
  const g = relevanceGraph(model);
  const feeds = feedsFor(model);
  const analytic = interpret([g.inputGrad], feeds)[0].data;
  const x = feeds.pixel_values.data;
  const eps = 1e-6;
  const rng = new Rng(9);
  const picks = Array.from({ length: 24 }, () => Math.floor(rng.next() * x.length));
  const numeric = picks.map((k) => {
    const v = x[k];
    x[k] = v + eps;
    const up = interpret([g.score], feeds)[0].data[0];
    x[k] = v - eps;
    const down = interpret([g.score], feeds)[0].data[0];
    x[k] = v;
    return (up - down) / (2 * eps);
  });
  t.ok(
    numeric.some((v) => Math.abs(v) > 1e-3),
    'the class logits depend on the pixels',
  );
  assertClose(
    t,
    picks.map((k) => analytic[k]),
    numeric,
    1e-5,
    1e-8,
    '24 pixels: dy_c/dx matches central differences',
  );
});
