// vitrine import on small transformers written here, each made to lack what import reads from the
// graph (the head count, the patch embedding, a [CLS] token, a known image size, one attention layout)
// so that each flag that supplies it (--heads, --patch-size, --prefix-tokens, --size, --logits) and
// each refusal is reached; the imported model must classify as the original graph does.

import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import t, { type Test } from 'tap';
import { importCommand } from '../../bin/import.js';
import { readModelConfig } from '../../runtime/model-config.js';
import { createSession, runSession } from '../../runtime/ort.js';
import { type INodeProto, serializeModel } from '../../trainer/autograd/onnx-proto.js';
import { tmpDir } from '../helpers/data.js';
import { ints, node, onnxModel, random, weights } from '../helpers/onnx-build.js';
import { maxAbsDiff } from '../helpers/opcheck.js';

const D = 4; // token width
const CLASSES = 3;

interface Variant {
  batch?: number | string;
  size?: number | string; // the image's height and width
  patchConv?: boolean; // a Conv whose stride is its kernel (else patches cut with Reshape and Transpose)
  cls?: boolean;
  attention?: 'one' | 'two' | 'mixed' | 'none'; // 'mixed': the second layer over the patches only
  features?: boolean; // also output the tokens, [batch, tokens, D]
}

/** A one-block transformer over 4-pixel patches of an 8x8 image, built to the variant. */
function transformer(v: Variant = {}) {
  const { batch = 'batch', size = 8, patchConv = true, cls = true, attention = 'one', features = false } = v;
  const nodes: INodeProto[] = [];
  const inits = [
    weights('wq', [D, D]),
    weights('wk', [D, D]),
    weights('wv', [D, D]),
    weights('wc', [CLASSES, D]),
    weights('bc', [CLASSES]),
    weights('cls', [1, 1, D]),
  ];
  if (patchConv) {
    inits.push(weights('pe', [D, 3, 4, 4]), weights('pb', [D]), ints('flat', [0, D, -1]));
    nodes.push(
      node('Conv', ['x', 'pe', 'pb'], ['grid'], { kernel_shape: [4, 4], strides: [4, 4] }),
      node('Reshape', ['grid', 'flat'], ['cp']),
      node('Transpose', ['cp'], ['patches'], { perm: [0, 2, 1] }),
    );
  } else {
    inits.push(weights('pw', [48, D]), ints('cut', [0, 3, 2, 4, 2, 4]), ints('rows', [0, 4, 48]));
    nodes.push(
      node('Reshape', ['x', 'cut'], ['c6']),
      node('Transpose', ['c6'], ['c6t'], { perm: [0, 2, 4, 1, 3, 5] }),
      node('Reshape', ['c6t', 'rows'], ['pr']),
      node('MatMul', ['pr', 'pw'], ['patches']),
    );
  }
  if (cls) {
    inits.push(ints('zero', [0], []), ints('tail', [1, D]), ints('axis0', [0]));
    nodes.push(
      node('Shape', ['x'], ['xs']),
      node('Gather', ['xs', 'zero'], ['b']),
      node('Unsqueeze', ['b', 'axis0'], ['b1']),
      node('Concat', ['b1', 'tail'], ['clsShape'], { axis: 0 }),
      node('Expand', ['cls', 'clsShape'], ['clsB']),
      node('Concat', ['clsB', 'patches'], ['t0'], { axis: 1 }),
    );
  } else nodes.push(node('Identity', ['patches'], ['t0']));
  const block = (input: string, out: string, k: number) => {
    nodes.push(
      node('MatMul', [input, 'wq'], [`q${k}`]),
      node('MatMul', [input, 'wk'], [`k${k}`]),
      node('MatMul', [input, 'wv'], [`v${k}`]),
      node('Transpose', [`k${k}`], [`kt${k}`], { perm: [0, 2, 1] }),
      node('MatMul', [`q${k}`, `kt${k}`], [`s${k}`]),
      node('Softmax', [`s${k}`], [`a${k}`], { axis: -1 }),
      node('MatMul', [`a${k}`, `v${k}`], [`o${k}`]),
      node('Add', [input, `o${k}`], [out]),
    );
  };
  let last = 't0';
  if (attention !== 'none') {
    block('t0', 't1', 1);
    last = 't1';
  }
  if (attention === 'two') {
    block('t1', 't2', 2);
    last = 't2';
  }
  if (attention === 'mixed') {
    inits.push(ints('from1', [1]), ints('toEnd', [1000]), ints('axis1', [1]));
    nodes.push(node('Slice', ['t1', 'from1', 'toEnd', 'axis1'], ['tp']));
    block('tp', 't2', 2);
    last = 't2';
  }
  inits.push(ints('first', [0], []));
  nodes.push(node('Gather', [last, 'first'], ['pooled'], { axis: 1 }), node('Gemm', ['pooled', 'wc', 'bc'], ['logits'], { transB: 1 }));
  if (features) nodes.push(node('Identity', [last], ['features']));
  return onnxModel({ nodes, inits, inputs: [['x', [batch, 3, size, size]]], outputs: features ? ['features', 'logits'] : ['logits'] });
}

async function run(v: Variant, flags: string[] = []) {
  const dir = await tmpDir('vitrine-import-flags-');
  const file = path.join(dir, 'model.onnx');
  await writeFile(file, serializeModel(transformer(v)));
  const out = path.join(dir, 'out');
  const said: string[] = [];
  const result = await importCommand([file, '--out', out, ...flags], (l) => said.push(l)).then(
    () => null,
    (err: Error) => err.message,
  );
  return { file, out, said: said.join('\n'), refused: result };
}

/** The imported model gives the original graph's logits for two random images. */
async function sameLogits(t: Test, file: string, out: string) {
  const x = { data: random(2 * 3 * 8 * 8), dims: [2, 3, 8, 8] };
  const a = await runSession(await createSession(file), { x }, ['logits']);
  const b = await runSession(await createSession(path.join(out, 'onnx', 'model.onnx')), { x }, ['logits']);
  const d = maxAbsDiff(b.logits.data, a.logits.data);
  t.ok(d <= 1e-5, `the imported model's logits are the graph's (worst ${d.toExponential(2)})`);
}

t.test('what the graph says is read: heads, patches and the [CLS] token', async (t) => {
  const r = await run({});
  t.equal(r.refused, null, r.refused ?? '');
  t.match(r.said, /1 attentions of 1 heads over 5 tokens \(1 before a 2x2 grid of 4-pixel patches\)/);
  await sameLogits(t, r.file, r.out);
});

t.test('--heads: a fixed batch hides the head count in [batch * heads, T, T]', async (t) => {
  t.match(
    (await run({ batch: 2 })).refused,
    /the attention at node 'Softmax_a1' is \[2, 5, 5\]: its head count cannot be read from the graph; give --heads/,
  );
  const r = await run({ batch: 2 }, ['--heads', '2']);
  t.equal(r.refused, null);
  t.match(r.said, /of 2 heads over 5 tokens/, 'the head count given');
  t.equal((await readModelConfig(r.out)).attention_heads, 2);
});

t.test('--patch-size: patches cut without a Conv', async (t) => {
  t.match(
    (await run({ patchConv: false })).refused,
    /no patch embedding \(a Conv whose stride is its kernel\) was found to read the patch grid from; give --patch-size/,
  );
  const r = await run({ patchConv: false }, ['--patch-size', '4']);
  t.equal(r.refused, null);
  t.equal((await readModelConfig(r.out)).patch_size, 4);
  await sameLogits(t, r.file, r.out);
  t.match((await run({}, ['--patch-size', '3'])).refused, /patches of 3 pixels do not tile the 8x8 input/);
  t.match(
    (await run({}, ['--patch-size', '2'])).refused,
    /the attention has 5 tokens, the 4x4 patch grid 16: give --prefix-tokens and --patch-size/,
  );
});

t.test('--prefix-tokens: the tokens before the patches', async (t) => {
  t.match(
    (await run({}, ['--prefix-tokens', '2'])).refused,
    /the attention has 5 tokens, the 2x2 patch grid 4: give --prefix-tokens and --patch-size/,
  );
  const r = await run({}, ['--prefix-tokens', '1']);
  t.equal(r.refused, null);
  t.equal((await readModelConfig(r.out)).prefix_tokens, 1);
  t.match((await run({ cls: false })).refused, /the attention has 4 tokens, the 2x2 patch grid 4: maps need a \[CLS\] token first/);
  t.match((await run({}, ['--prefix-tokens', '0'])).refused, /--prefix-tokens/);
});

t.test('--size: an image size the graph leaves open', async (t) => {
  t.match(
    (await run({ size: 'side' })).refused,
    /input 'x' must be \[batch, channels, height, width\] with known channels and size, got \[batch, 3, side, side\]/,
  );
  const r = await run({ size: 'side' }, ['--size', '8']);
  t.equal(r.refused, null);
  t.same((await readModelConfig(r.out)).image_size, [8, 8]);
  await sameLogits(t, r.file, r.out);
  t.match((await run({}, ['--size', '16'])).refused, /input 'x' is \[batch, 3, 8, 8\]; it cannot take 16x16 images/);
  t.match((await run({}, ['--size', '8x'])).refused, /--size must be <height>\[x<width>\] in pixels, got '8x'/);
});

t.test('--logits: which output is the logits', async (t) => {
  const r = await run({ features: true }, ['--logits', 'logits']);
  t.equal(r.refused, null);
  t.equal((await readModelConfig(r.out)).logits_output, 'logits');
  t.match(
    (await run({ features: true }, ['--logits', 'scores'])).refused,
    /the graph has no output 'scores'; its outputs are features, logits/,
  );
  t.match(
    (await run({ features: true }, ['--logits', 'features'])).refused,
    /output 'features' is \[batch, 5, 4\], not \[batch, classes\]/,
  );
});

t.test('refused: no attention, attentions of two layouts, labels and normalization that do not fit', async (t) => {
  t.match(
    (await run({ attention: 'none' })).refused,
    /no attention was found \(a Softmax over the last axis whose output is multiplied into the values\); is this a transformer\?/,
  );
  const two = await run({ attention: 'two' });
  t.equal(two.refused, null, 'two layers of one layout import');
  t.match(two.said, /2 attentions of 1 heads over 5 tokens/);
  t.match(
    (await run({ attention: 'mixed' })).refused,
    /the attentions differ in tokens or heads \(1x5, 1x4\); vitrine maps need one layout/,
  );
  t.match((await run({}, ['--labels', 'a,b'])).refused, /2 labels for a model of 3 classes/);
  t.match(
    (await run({}, ['--mean', '0.5,0.5', '--std', '0.2,0.2,0.2'])).refused,
    /the mean and std need 3 values each \(the input has 3 channels\)/,
  );
});
