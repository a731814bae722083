import t from 'tap';
import { Tensor } from '../../../trainer/autograd/graph.js';
import * as O from '../../../trainer/autograd/ops.js';
import { checkForward, checkGrad, spec, InputSpec } from '../../helpers/opcheck.js';

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
];

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
