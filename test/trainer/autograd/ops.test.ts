import t from 'tap';
import { type Tensor, staticSize } from '../../../trainer/autograd/graph.js';
import * as O from '../../../trainer/autograd/ops.js';
import { grad } from '../../../trainer/autograd/grad.js';
import { decodeModel } from '../../../trainer/autograd/onnx.js';
import { assertClose, checkForward, checkGrad, spec, type InputSpec } from '../../helpers/opcheck.js';
import { Rng } from '../../../trainer/nn/random.js';

const B = 'batch';
const POS: [number, number] = [0.5, 2];

interface Case {
  name: string;
  inputs: InputSpec[];
  build: (xs: Tensor[]) => Tensor;
}

const cases: Case[] = [
  { name: 'add (broadcast)', inputs: [spec([B, 3, 4]), spec([4])], build: ([a, b]) => O.add(a, b) },
  { name: 'add (both sides broadcast)', inputs: [spec([2, 1, 4]), spec([3, 1])], build: ([a, b]) => O.add(a, b) },
  { name: 'sub (broadcast)', inputs: [spec([B, 3, 1]), spec([1, 3, 5])], build: ([a, b]) => O.sub(a, b) },
  { name: 'mul (broadcast)', inputs: [spec([B, 1, 4]), spec([3, 4])], build: ([a, b]) => O.mul(a, b) },
  { name: 'div (broadcast)', inputs: [spec([B, 3, 4]), spec([1, 4], POS)], build: ([a, b]) => O.div(a, b) },
  { name: 'neg', inputs: [spec([B, 5])], build: ([a]) => O.neg(a) },
  { name: 'exp', inputs: [spec([B, 5])], build: ([a]) => O.exp(a) },
  { name: 'log', inputs: [spec([B, 5], POS)], build: ([a]) => O.log(a) },
  { name: 'tanh', inputs: [spec([B, 5])], build: ([a]) => O.tanh(a) },
  { name: 'sqrt', inputs: [spec([B, 5], POS)], build: ([a]) => O.sqrt(a) },
  { name: 'erf', inputs: [spec([B, 7], [-3, 3])], build: ([a]) => O.erf(a) },
  {
    name: 'gelu (exact: 0.5 x (1 + erf(x / sqrt 2)), as imported graphs have it)',
    inputs: [spec([B, 7], [-4, 4])],
    build: ([a]) => O.mul(O.mul(a, 0.5), O.add(1, O.erf(O.div(a, Math.SQRT2)))),
  },
  { name: 'pow 3', inputs: [spec([B, 5])], build: ([a]) => O.pow(a, 3) },
  { name: 'pow -0.5', inputs: [spec([B, 5], POS)], build: ([a]) => O.pow(a, -0.5) },
  { name: 'matmul (batched, weight broadcast)', inputs: [spec([B, 2, 3, 4]), spec([4, 5])], build: ([a, b]) => O.matmul(a, b) },
  { name: 'matmul (batch dims broadcast)', inputs: [spec([2, 1, 3, 4]), spec([3, 4, 2])], build: ([a, b]) => O.matmul(a, b) },
  { name: 'reduce_sum keepdims', inputs: [spec([B, 3, 4])], build: ([a]) => O.reduceSum(a, [1]) },
  { name: 'reduce_sum over batch, no keepdims', inputs: [spec([B, 3, 4])], build: ([a]) => O.reduceSum(a, [0, 2], false) },
  { name: 'reduce_mean keepdims', inputs: [spec([B, 3, 4])], build: ([a]) => O.reduceMean(a, [-1]) },
  { name: 'reduce_mean over batch', inputs: [spec([B, 3])], build: ([a]) => O.reduceMean(a, [0], false) },
  { name: 'squeeze', inputs: [spec([B, 1, 4])], build: ([a]) => O.squeeze(a, [1]) },
  { name: 'reshape (0 and -1)', inputs: [spec([B, 6, 4])], build: ([a]) => O.reshape(a, [0, 3, -1]) },
  { name: 'reshape_as', inputs: [spec([B, 6, 4]), spec([B, 24])], build: ([a, r]) => O.reshapeAs(a, r) },
  { name: 'transpose', inputs: [spec([B, 2, 3, 4])], build: ([a]) => O.transpose(a, [0, 2, 3, 1]) },
  { name: 'concat', inputs: [spec([B, 1, 4]), spec([B, 3, 4]), spec([B, 2, 4])], build: (xs) => O.concat(xs, 1) },
  { name: 'slice', inputs: [spec([B, 5, 3])], build: ([a]) => O.slice(a, 1, 1, 4) },
  { name: 'pad', inputs: [spec([B, 2, 3])], build: ([a]) => O.pad(a, -1, 1, 2) },
  { name: 'expand_as', inputs: [spec([1, 1, 4]), spec([B, 3, 4])], build: ([a, r]) => O.expandAs(a, r) },
  { name: 'softmax', inputs: [spec([B, 3, 6], [-8, 8])], build: ([a]) => O.softmax(a) },
  { name: 'log_softmax', inputs: [spec([B, 6], [-8, 8])], build: ([a]) => O.logSoftmax(a) },
  { name: 'layer_norm', inputs: [spec([B, 3, 6]), spec([6]), spec([6])], build: ([x, w, b]) => O.layerNorm(x, w, b, 1e-5) },
  { name: 'gelu (tanh)', inputs: [spec([B, 7], [-4, 4])], build: ([a]) => O.gelu(a) },
  { name: 'cross_entropy (soft targets)', inputs: [spec([B, 5]), spec([B, 5], [0, 1])], build: ([a, y]) => O.crossEntropy(a, y) },
  { name: 'dropout (fed mask)', inputs: [spec([B, 4]), spec([B, 4], [0, 2])], build: ([x, m]) => O.dropout(x, m) },
  { name: 'relu', inputs: [spec([B, 3, 5])], build: ([a]) => O.relu(a) },
  { name: 'flip', inputs: [spec([B, 2, 3, 4])], build: ([a]) => O.flip(a, [2, 3]) },
  { name: 'conv2d 3x3, padding 1', inputs: [spec([B, 2, 5, 4]), spec([3, 2, 3, 3])], build: ([x, w]) => O.conv2d(x, w, 1) },
  { name: 'conv2d 2x2, no padding', inputs: [spec([B, 3, 4, 5]), spec([2, 3, 2, 2])], build: ([x, w]) => O.conv2d(x, w, 0) },
  { name: 'conv2d 5x5, padding 2', inputs: [spec([B, 2, 6, 5]), spec([3, 2, 5, 5])], build: ([x, w]) => O.conv2d(x, w, 2) },
  { name: 'max_pool 3x3, stride 2, padding 1', inputs: [spec([B, 2, 6, 5])], build: ([x]) => O.maxPool(x, 3, 2, 1) },
  { name: 'max_pool 2x2, stride 2', inputs: [spec([B, 3, 4, 4])], build: ([x]) => O.maxPool(x, 2, 2, 0) },
  {
    name: 'conv, relu, max-pool (a tokenizer stage)',
    inputs: [spec([B, 2, 6, 6]), spec([3, 2, 3, 3])],
    build: ([x, w]) => O.maxPool(O.relu(O.conv2d(x, w, 1)), 3, 2, 1),
  },
  {
    name: 'conv, max-pool, relu (the same stage as the tokenizer runs it)',
    inputs: [spec([B, 2, 6, 6]), spec([3, 2, 3, 3])],
    build: ([x, w]) => O.relu(O.maxPool(O.conv2d(x, w, 1), 3, 2, 1)),
  },
];

// Gradient graphs hold ops that forward passes do not (max_pool_grad; convolutions whose channels are
// the batch): ONNX Runtime must run those as the interpreter does.
const weighted = (y: Tensor, w: Tensor) => O.reduceSum(O.mul(y, w), [...y.shape.keys()], false);
const gradientGraphs: Case[] = [
  {
    name: 'max_pool gradient (overlapping windows)',
    inputs: [spec([B, 2, 6, 5]), spec([B, 2, 3, 3])],
    build: ([x, r]) => grad(weighted(O.maxPool(x, 3, 2, 1), r), [x])[0],
  },
  {
    name: 'max_pool gradient (2x2, stride 2)',
    inputs: [spec([B, 3, 4, 4]), spec([B, 3, 2, 2])],
    build: ([x, r]) => grad(weighted(O.maxPool(x, 2, 2, 0), r), [x])[0],
  },
  {
    name: 'conv2d gradient of the input',
    inputs: [spec([B, 2, 5, 4]), spec([3, 2, 3, 3]), spec([B, 3, 5, 4])],
    build: ([x, w, r]) => grad(weighted(O.conv2d(x, w, 1), r), [x])[0],
  },
  {
    name: 'conv2d gradient of the weights',
    inputs: [spec([B, 2, 5, 4]), spec([3, 2, 3, 3]), spec([B, 3, 5, 4])],
    build: ([x, w, r]) => grad(weighted(O.conv2d(x, w, 1), r), [w])[0],
  },
  {
    name: 'conv2d gradient of the input (2x2, no padding)',
    inputs: [spec([B, 3, 4, 5]), spec([2, 3, 2, 2]), spec([B, 2, 3, 4])],
    build: ([x, w, r]) => grad(weighted(O.conv2d(x, w, 0), r), [x])[0],
  },
  {
    name: 'conv2d gradient of the weights (2x2, no padding)',
    inputs: [spec([B, 3, 4, 5]), spec([2, 3, 2, 2]), spec([B, 2, 3, 4])],
    build: ([x, w, r]) => grad(weighted(O.conv2d(x, w, 0), r), [w])[0],
  },
  {
    name: 'conv2d gradient of the weights (5x5, padding 2)',
    inputs: [spec([B, 2, 6, 5]), spec([3, 2, 5, 5]), spec([B, 3, 6, 5])],
    build: ([x, w, r]) => grad(weighted(O.conv2d(x, w, 2), r), [w])[0],
  },
  { name: 'relu gradient', inputs: [spec([B, 4]), spec([B, 4])], build: ([x, r]) => grad(weighted(O.relu(x), r), [x])[0] },
  { name: 'gelu (tanh) gradient', inputs: [spec([B, 9], [-6, 6]), spec([B, 9])], build: ([x, r]) => grad(weighted(O.gelu(x), r), [x])[0] },
  {
    name: 'matmul gradient of a weight under a batch of rows (one product)',
    inputs: [spec([B, 3, 4]), spec([4, 5]), spec([B, 3, 5])],
    build: ([x, w, r]) => grad(weighted(O.matmul(x, w), r), [w])[0],
  },
  {
    name: 'the gradient of slices that tile an axis (one concat)',
    inputs: [spec([B, 6, 2]), spec([B, 2, 2]), spec([B, 4, 2])],
    build: ([x, r, s]) =>
      grad(O.add(weighted(O.slice(x, 1, 0, 2), r), weighted(O.mul(O.slice(x, 1, 2, 6), O.slice(x, 1, 2, 6)), s)), [x])[0],
  },
  {
    name: 'the gradient of slices that overlap (a sum)',
    inputs: [spec([B, 6, 2]), spec([B, 4, 2]), spec([B, 4, 2])],
    build: ([x, r, s]) => grad(O.add(weighted(O.slice(x, 1, 0, 4), r), weighted(O.slice(x, 1, 2, 6), s)), [x])[0],
  },
];

t.test('gradients: a weight under a batch of rows is one product; slices that tile an axis are concatenated', async (t) => {
  const x = O.input('x', [B, 6, 4]);
  const w = O.param('w', [4, 3]);
  const [dw] = grad(O.reduceSum(O.matmul(x, w), [0, 1, 2], false), [w]);
  t.equal(dw.op, 'matmul', 'no sum over the batch after the product');
  t.same(dw.inputs[1].shape.length, 2, 'the rows of every image in one matrix');
  const parts = [0, 1, 2].map((i) => O.slice(x, 1, 2 * i, 2 * i + 2));
  const [dx] = grad(O.reduceSum(O.add(O.add(O.mul(parts[2], 3), O.mul(parts[0], 2)), parts[1]), [0, 1, 2], false), [x]);
  t.equal(dx.op, 'concat');
  t.same(
    dx.inputs.map((p) => p.shape[1]),
    [2, 2, 2],
  );
  const gaps = [0, 2].map((i) => O.slice(x, 1, 2 * i, 2 * i + 2)); // [0, 2) and [4, 6): not a tiling
  t.equal(grad(O.reduceSum(O.add(gaps[0], gaps[1]), [0, 1, 2], false), [x])[0].op, 'add');
});

for (const c of gradientGraphs) {
  t.test(`${c.name}: ONNX Runtime runs the gradient graph as the interpreter`, async (t) => {
    await checkForward(t, c.name, c.inputs, c.build);
  });
}

t.test("the tanh GELU: its gradient reads the input, equals the composite's, and has no second derivative", async (t) => {
  const { interpret } = await import('../../../trainer/autograd/interpreter.js');
  const { nd } = await import('../../../trainer/autograd/ndarray.js');
  const x = O.input('x', [3, 40]);
  const r = O.input('r', [3, 40]);
  const [dx] = grad(weighted(O.gelu(x), r), [x]);
  t.equal(dx.op, 'gelu_tanh_grad');
  t.equal(dx.inputs[0], x, 'x itself, not values of the forward');
  // the same function written out of primitives, as the seed's PyTorch code writes it
  const composite = O.mul(O.mul(0.5, x), O.add(1, O.tanh(O.mul(Math.sqrt(2 / Math.PI), O.add(x, O.mul(0.044715, O.pow(x, 3)))))));
  const [dc] = grad(weighted(composite, r), [x]);
  const rng = new Rng(5);
  const feeds = {
    x: nd(
      Array.from({ length: 120 }, () => 12 * rng.next() - 6),
      [3, 40],
    ),
    r: nd(
      Array.from({ length: 120 }, () => rng.normal()),
      [3, 40],
    ),
  };
  const [y, yc, g, gc] = interpret([O.gelu(x), composite, dx, dc], feeds);
  assertClose(t, y.data, yc.data, 1e-12, 1e-12, 'the values');
  assertClose(t, g.data, gc.data, 1e-12, 1e-12, 'the gradients');
  t.throws(() => grad(O.reduceSum(dx, [0, 1], false), [x]), /second derivatives of GELU are not implemented/);
});

t.test('max_pool_grad adds where windows overlap, and has no second derivative', async (t) => {
  // 1x1x3x3 image whose centre is the maximum of all four 2x2 windows (stride 1): it gets all four.
  const x = O.input('x', [1, 1, 3, 3]);
  const y = O.maxPool(x, 2, 1, 0);
  const [dx] = grad(O.reduceSum(y, [0, 1, 2, 3], false), [x]);
  const { interpret } = await import('../../../trainer/autograd/interpreter.js');
  const { nd } = await import('../../../trainer/autograd/ndarray.js');
  const [value] = interpret([dx], { x: nd([0, 1, 0, 2, 9, 3, 0, 4, 0], [1, 1, 3, 3]) });
  t.same([...value.data], [0, 0, 0, 0, 4, 0, 0, 0, 0]);
  t.throws(() => grad(O.reduceSum(dx, [0, 1, 2, 3], false), [x]), /second derivatives of max-pooling/);
});

t.test('max_pool_grad on ONNX Runtime: ties go to the first maximum of each window, as in the interpreter', async (t) => {
  const { interpret } = await import('../../../trainer/autograd/interpreter.js');
  const { nd } = await import('../../../trainer/autograd/ndarray.js');
  const { OrtGraph } = await import('../../../trainer/autograd/ort-executor.js');
  const rng = new Rng(3);
  for (const [k, s, p] of [
    [3, 2, 1],
    [2, 2, 0],
    [3, 1, 1],
    [3, 3, 0],
    [2, 1, 1],
  ]) {
    const x = O.input('x', [B, 2, 7, 6]);
    const y = O.maxPool(x, k, s, p);
    const r = O.input('r', y.shape);
    const [dx] = grad(O.reduceSum(O.mul(y, r), [0, 1, 2, 3], false), [x]);
    // with MaxPool's indices (the CPU's emission) and without them (the WebGPU provider's)
    for (const maxPoolIndices of [true, false]) {
      const ort = await OrtGraph.create({ outputs: [['dx', dx]], device: 'cpu', maxPoolIndices });
      const pools = decodeModel(ort.bytes).graph!.node!.filter((n) => n.opType === 'MaxPool');
      t.equal(
        pools.some((n) => (n.output?.length ?? 0) > 1),
        maxPoolIndices,
        `maxPoolIndices ${maxPoolIndices}: MaxPool's Indices output ${maxPoolIndices ? 'used' : 'not emitted'}`,
      );
      const how = maxPoolIndices ? 'with indices' : 'without indices';
      // values from {0, 1, 2}: many equal maxima in a window; then all equal
      for (const values of [
        Array.from({ length: 2 * 2 * 7 * 6 }, () => rng.int(3)),
        new Array(2 * 2 * 7 * 6).fill(1),
        Array.from({ length: 2 * 2 * 7 * 6 }, () => rng.normal()),
      ]) {
        const rs = Array.from({ length: 2 * staticSize(y.shape.slice(1))! }, () => rng.next());
        const want = interpret([dx], { x: nd(values, [2, 2, 7, 6]), r: nd(rs, [2, ...(y.shape.slice(1) as number[])]) })[0].data;
        const got = (
          await ort.run({
            x: { data: Float32Array.from(values), dims: [2, 2, 7, 6] },
            r: { data: Float32Array.from(rs), dims: [2, ...(y.shape.slice(1) as number[])] },
          })
        ).dx.data;
        assertClose(t, got, want, 1e-6, 1e-6, `${k}x${k}, stride ${s}, padding ${p}, ${how}: the same inputs get the gradient`);
      }
    }
  }
});

t.test('convolution and pooling shape rules name the problem', async (t) => {
  const x = O.input('x', ['batch', 3, 8, 8]);
  t.throws(() => O.conv2d(x, O.input('w', [4, 2, 3, 3]), 1), /conv2d: \[batch, 3, 8, 8\] has 3 channels, weights \[4, 2, 3, 3\] expect 2/);
  t.throws(() => O.conv2d(x, O.input('w', [4, 3, 3, 3]), -1), /padding must be an integer >= 0/);
  t.throws(() => O.conv2d(x, O.input('w', [4, 3, 9, 9]), 0), /a 9x9 kernel does not fit/);
  const wide = O.param('w', [4, 3, 3, 3]);
  t.throws(
    () => grad(O.reduceSum(O.conv2d(x, wide, 3), [0, 1, 2, 3], false), [wide]),
    /gradients need a square kernel and padding below its side/,
  );
  t.throws(() => O.conv2d(O.input('v', ['batch', 3, 8]), O.input('w', [4, 3, 3, 3]), 1), /rank 4/);
  t.throws(() => O.maxPool(x, 3, 2, 2), /padding must be an integer in \[0, 1\]/);
  t.throws(() => O.maxPool(x, 0, 2, 0), /positive integers/);
  t.same(O.maxPool(x, 3, 2, 1).shape, ['batch', 3, 4, 4]);
  t.same(O.conv2d(x, O.input('w', [5, 3, 3, 3]), 1).shape, ['batch', 5, 8, 8]);
});

for (const c of cases) {
  t.test(c.name, async (t) => {
    await checkForward(t, c.name, c.inputs, c.build);
    checkGrad(t, c.name, c.inputs, c.build);
  });
}

t.test('a value used twice accumulates both gradients', async (t) => {
  checkGrad(t, 'x * x + x', [spec([3, 2])], ([x]) => O.add(O.mul(x, x), x));
  checkGrad(t, 'shared matmul operand', [spec([2, 3]), spec([3, 3])], ([x, w]) => O.matmul(O.matmul(x, w), w));
});

t.test('shape rules reject mismatches with the op name', async (t) => {
  const a = O.input('a', ['batch', 3]);
  const b = O.input('b', [4]);
  t.throws(() => O.add(a, b), /Add: shapes \[batch, 3\] and \[4\] do not broadcast/);
  t.throws(() => O.matmul(a, O.input('c', [4, 2])), /matmul: inner dims/);
  t.throws(() => O.reshape(a, [5, -1]), /reshape/);
  t.throws(() => O.slice(a, 1, 2, 5), /slice/);
});

t.test('one_hot: class indices to rows, in the interpreter and on ONNX Runtime', async (t) => {
  const { interpret } = await import('../../../trainer/autograd/interpreter.js');
  const { nd } = await import('../../../trainer/autograd/ndarray.js');
  const { OrtGraph } = await import('../../../trainer/autograd/ort-executor.js');
  const x = O.input('x', [B]);
  const y = O.oneHot(x, 4);
  const indices = [2, 0, 3];
  const want = [0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1];
  t.same([...interpret([y], { x: nd(indices, [3]) })[0].data], want);
  const ort = await OrtGraph.create({ outputs: [['y', y]] });
  const out = await ort.run({ x: { data: Float32Array.from(indices), dims: [3] } });
  t.same([...out.y.data], want);
  t.same(
    grad(O.reduceSum(O.mul(y, O.constant([1, 2, 3, 4], [4])), [0, 1], false), [x])[0].op,
    'expand_as',
    'no gradient flows through it (a zero of its shape)',
  );
});

t.test('argmax: the first largest index along the last axis, in the interpreter and on ONNX Runtime', async (t) => {
  const { interpret } = await import('../../../trainer/autograd/interpreter.js');
  const { nd } = await import('../../../trainer/autograd/ndarray.js');
  const { OrtGraph } = await import('../../../trainer/autograd/ort-executor.js');
  const x = O.input('x', [B, 4]);
  const y = O.argmax(x);
  const values = [0.1, 0.7, 0.2, 0.7, -3, -1, -2, -5, 9, 1, 1, 1]; // a tie (the first wins), negatives, the first
  const want = [1, 1, 0];
  t.same([...interpret([y], { x: nd(values, [3, 4]) })[0].data], want);
  const ort = await OrtGraph.create({ outputs: [['y', y]] });
  t.same([...(await ort.run({ x: { data: Float32Array.from(values), dims: [3, 4] } })).y.data], want);
  t.same(y.shape, [B]);
  t.same(
    grad(O.reduceSum(O.mul(O.oneHot(y, 4), x), [0, 1], false), [x])[0].op,
    'mul',
    'only the selected logit carries a gradient, not the selection',
  );
});

t.test('quantized_matmul: int8 weights and run-time uint8 activations, in the interpreter and on ONNX Runtime', async (t) => {
  const { interpret } = await import('../../../trainer/autograd/interpreter.js');
  const { nd, quantizeColumns } = await import('../../../trainer/autograd/ndarray.js');
  const { OrtGraph } = await import('../../../trainer/autograd/ort-executor.js');
  const rng = new Rng(3);
  const [k, n] = [40, 12];
  const w = Float32Array.from({ length: k * n }, () => rng.normal() * 0.2);
  const b = Float32Array.from({ length: n }, () => rng.normal());
  const x = O.input('x', [B, 3, k]);
  const y = O.quantizedMatmul(x, quantizeColumns(w, k, n), O.constant(b, [n]));
  t.same(y.shape, [B, 3, n]);
  // activations off centre (the zero point is not 128), one image's far larger than the other's
  const values = Float32Array.from({ length: 2 * 3 * k }, (_, i) => (rng.normal() + 0.7) * (i < 3 * k ? 1 : 4));
  const [reference] = interpret([y], { x: nd(values, [2, 3, k]) });
  const ort = await OrtGraph.create({ outputs: [['y', y]] });
  const ran = (await ort.run({ x: { data: values, dims: [2, 3, k] } })).y.data;
  assertClose(t, ran, reference.data, 1e-5, 1e-5, 'DynamicQuantizeMatMul as the kernel computes it');
  const [float] = interpret([O.add(O.matmul(x, O.constant(w, [k, n])), O.constant(b, [n]))], { x: nd(values, [2, 3, k]) });
  const worst = Math.max(...float.data.map((v, i) => Math.abs(v - reference.data[i])));
  const largest = Math.max(...float.data.map(Math.abs));
  t.ok(worst < 0.03 * largest, `within 3% of the float product's largest value (${((100 * worst) / largest).toFixed(2)}%)`);
  t.ok(worst > 0, 'and not the float product itself');
  // one scale for the whole tensor: an image's answer depends on the batch it runs in
  const [alone] = interpret([y], { x: nd(values.subarray(0, 3 * k), [1, 3, k]) });
  t.not(Math.max(...alone.data.map((v, i) => Math.abs(v - reference.data[i]))), 0, 'the batch shares the activation scale');
  t.throws(() => grad(O.reduceSum(y, [0, 1, 2], false), [x]), /no gradient flows through int8 rounding/);
  t.throws(() => O.quantizedMatmul(O.input('z', [B, k + 1]), quantizeColumns(w, k, n)), /must end in the weight's 40 rows/);
});

t.test('every op of the op table is checked here', async (t) => {
  const { OPS } = O;
  const { topoSort } = await import('../../../trainer/autograd/graph.js');
  // leaves; one_hot, argmax and quantized_matmul above
  const seen = new Set<string>(['input', 'param', 'const', 'one_hot', 'argmax', 'quantized_matmul']);
  for (const c of [...cases, ...gradientGraphs]) {
    const xs = c.inputs.map((s, i) => O.input(`x${i}`, s.shape));
    for (const n of topoSort([c.build(xs)])) seen.add(n.op);
  }
  const unchecked = Object.keys(OPS).filter((op) => !seen.has(op));
  t.same(unchecked, [], `ops no case builds: ${unchecked.join(', ') || 'none'}`);
});

t.test('ReLU after the max-pool is ReLU before it: the same values and the same gradients, ties included', async (t) => {
  const { interpret } = await import('../../../trainer/autograd/interpreter.js');
  const { nd } = await import('../../../trainer/autograd/ndarray.js');
  const rng = new Rng(11);
  const x = O.input('x', [2, 2, 7, 6]);
  const r = O.input('r', [2, 2, 4, 3]);
  const before = O.maxPool(O.relu(x), 3, 2, 1);
  const after = O.relu(O.maxPool(x, 3, 2, 1));
  const gb = grad(weighted(before, r), [x])[0];
  const ga = grad(weighted(after, r), [x])[0];
  // values from {-1, 0, 1, 2}: windows of negatives only, of zeros, and ties among positives
  const feeds = {
    x: nd(
      Array.from({ length: 168 }, () => rng.int(4) - 1),
      [2, 2, 7, 6],
    ),
    r: nd(
      Array.from({ length: 48 }, () => rng.next()),
      [2, 2, 4, 3],
    ),
  };
  const [yb, ya, db, da] = interpret([before, after, gb, ga], feeds);
  t.same([...ya.data], [...yb.data], 'the same values');
  t.same([...da.data], [...db.data], 'the same gradients');
});
