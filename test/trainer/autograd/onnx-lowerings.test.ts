// Every import lowering against ONNX Runtime: one small ONNX model per op and attribute case (the op
// on the image input, or, for ops that only fold shape arithmetic, the folded value added to it), run
// by ONNX Runtime as the reference and imported into the autograd graph. The imported graph's outputs
// must equal ONNX Runtime's, and its gradient (through the interpreter's backward pass) must equal
// central differences of ONNX Runtime's outputs. A final check fails when a lowering has no case.

import * as ort from 'onnxruntime-node';
import t from 'tap';
import { grad } from '../../../trainer/autograd/grad.js';
import type { Tensor } from '../../../trainer/autograd/graph.js';
import { interpret } from '../../../trainer/autograd/interpreter.js';
import { nd } from '../../../trainer/autograd/ndarray.js';
import { importOnnx } from '../../../trainer/autograd/onnx-import.js';
import { LOWERINGS } from '../../../trainer/autograd/onnx-lowerings.js';
import { DataType, type INodeProto, type ITensorProto, serializeModel } from '../../../trainer/autograd/onnx-proto.js';
import * as O from '../../../trainer/autograd/ops.js';
import { Rng } from '../../../trainer/nn/random.js';
import { maxAbsDiff } from '../../helpers/opcheck.js';
import { count, floats, ints, node, onnxModel, random, weights } from '../../helpers/onnx-build.js';

type Dims = (number | string)[];

interface Case {
  /** The op the case is for (the lowering it proves), and what it shows. */
  op: string;
  what: string;
  x: Dims;
  nodes: INodeProto[];
  inits?: ITensorProto[];
  outputs?: string[];
  opset?: number;
  /** The input's values are drawn from this range (positive for Log, Sqrt, ...). */
  range?: [number, number];
}

const rng = new Rng(11);

/** The folded value `v` (a float tensor made by the case's nodes) added to x, so that it reaches an output. */
const addTo = (v: string) => node('Add', ['x', v], ['y']);

const CASES: Case[] = [
  // ---- passing values on ----
  { op: 'Identity', what: 'passes x on', x: [2, 3, 4, 5], nodes: [node('Identity', ['x'], ['y'])] },
  { op: 'Dropout', what: 'is the identity at inference', x: [2, 3, 4, 5], nodes: [node('Dropout', ['x'], ['y'])] },
  {
    op: 'Constant',
    what: 'a tensor value',
    x: [2, 3, 4, 5],
    nodes: [node('Constant', [], ['c'], { value: floats('c', [1, -2, 3, 0.5, 4]) }), addTo('c')],
  },
  {
    op: 'Constant',
    what: 'value_float and value_floats',
    x: [2, 3, 4, 5],
    nodes: [
      node('Constant', [], ['a'], { value_float: { float: 1.5 } }),
      node('Constant', [], ['b'], { value_floats: { floats: [1, 2, 3, 4, 5] } }),
      node('Add', ['x', 'a'], ['xa']),
      node('Add', ['xa', 'b'], ['y']),
    ],
  },
  {
    op: 'Cast',
    what: 'of an integer value to float',
    x: [2, 3, 4, 5],
    nodes: [node('Cast', ['k'], ['c'], { to: DataType.FLOAT }), addTo('c')],
    inits: [ints('k', [1, 2, 3, 4, 5])],
  },
  { op: 'Cast', what: 'of the image to float (a no-op)', x: [2, 3, 4, 5], nodes: [node('Cast', ['x'], ['y'], { to: DataType.FLOAT })] },

  // ---- shape arithmetic (folded) ----
  {
    op: 'Shape',
    what: 'with start and end (opset 15), feeding a Reshape',
    x: [2, 3, 4, 5],
    opset: 15,
    nodes: [
      node('Shape', ['x'], ['s'], { start: 1, end: 3 }),
      node('Concat', ['minus1', 's'], ['s2'], { axis: 0 }),
      node('Reshape', ['x', 's2'], ['r']),
      node('Transpose', ['r'], ['y'], { perm: [0, 2, 1] }),
    ],
    inits: [ints('minus1', [-1])],
  },
  {
    op: 'Size',
    what: 'as a divisor',
    x: [2, 3, 4, 5],
    nodes: [node('Size', ['x'], ['n']), node('Cast', ['n'], ['nf'], { to: DataType.FLOAT }), node('Div', ['x', 'nf'], ['y'])],
  },
  {
    op: 'ConstantOfShape',
    what: 'filled with a value',
    x: [2, 3, 4, 5],
    nodes: [node('ConstantOfShape', ['shape'], ['c'], { value: floats('v', [2.5], [1]) }), addTo('c')],
    inits: [ints('shape', [4, 5])],
  },
  {
    op: 'Equal',
    what: 'selecting with Where',
    x: [2, 3, 4, 5],
    nodes: [
      node('Equal', ['a', 'b'], ['e']),
      node('Where', ['e', 'one', 'two'], ['w']),
      node('Cast', ['w'], ['c'], { to: DataType.FLOAT }),
      addTo('c'),
    ],
    inits: [ints('a', [1, 2, 3, 4, 5]), ints('b', [1, 0, 3, 0, 5]), ints('one', [1]), ints('two', [2])],
  },
  {
    op: 'Less',
    what: 'and Not',
    x: [2, 3, 4, 5],
    nodes: [node('Less', ['a', 'b'], ['l']), node('Not', ['l'], ['n']), node('Cast', ['n'], ['c'], { to: DataType.FLOAT }), addTo('c')],
    inits: [ints('a', [1, 2, 3, 4, 5]), ints('b', [3, 3, 3, 3, 3])],
  },
  {
    op: 'Greater',
    what: 'cast to float',
    x: [2, 3, 4, 5],
    nodes: [node('Greater', ['a', 'b'], ['g']), node('Cast', ['g'], ['c'], { to: DataType.FLOAT }), addTo('c')],
    inits: [ints('a', [1, 2, 3, 4, 5]), ints('b', [3, 3, 3, 3, 3])],
  },
  {
    op: 'Not',
    what: 'of a boolean initializer',
    x: [2, 3, 4, 5],
    nodes: [node('Not', ['b'], ['n']), node('Cast', ['n'], ['c'], { to: DataType.FLOAT }), addTo('c')],
    inits: [ints('b', [1, 0, 1, 0, 0], [5], DataType.BOOL)],
  },
  {
    op: 'Where',
    what: 'on known values',
    x: [2, 3, 4, 5],
    nodes: [node('Where', ['cond', 'a', 'b'], ['w']), node('Cast', ['w'], ['c'], { to: DataType.FLOAT }), addTo('c')],
    inits: [ints('cond', [1, 0, 0, 1, 1], [5], DataType.BOOL), ints('a', [1, 2, 3, 4, 5]), ints('b', [-1, -2, -3, -4, -5])],
  },
  {
    op: 'Range',
    what: 'start, limit, delta',
    x: [2, 3, 4, 5],
    nodes: [node('Range', ['s', 'l', 'd'], ['r']), node('Cast', ['r'], ['c'], { to: DataType.FLOAT }), addTo('c')],
    inits: [ints('s', [1], []), ints('l', [11], []), ints('d', [2], [])],
  },
  {
    op: 'Max',
    what: 'of two known values',
    x: [2, 3, 4, 5],
    nodes: [node('Max', ['a', 'b'], ['m']), node('Cast', ['m'], ['c'], { to: DataType.FLOAT }), addTo('c')],
    inits: [ints('a', [1, 5, -3, 4, 0]), ints('b', [2, 2, 2, 2, 2])],
  },
  {
    op: 'Min',
    what: 'of two known values',
    x: [2, 3, 4, 5],
    nodes: [node('Min', ['a', 'b'], ['m']), node('Cast', ['m'], ['c'], { to: DataType.FLOAT }), addTo('c')],
    inits: [ints('a', [1, 5, -3, 4, 0]), ints('b', [2, 2, 2, 2, 2])],
  },

  // ---- arithmetic ----
  { op: 'Add', what: 'broadcast over a weight', x: [2, 3, 4, 5], nodes: [node('Add', ['x', 'w'], ['y'])], inits: [weights('w', [4, 1])] },
  { op: 'Sub', what: 'a weight minus x', x: [2, 3, 4, 5], nodes: [node('Sub', ['w', 'x'], ['y'])], inits: [weights('w', [5])] },
  { op: 'Mul', what: 'x by x', x: [2, 3, 4, 5], nodes: [node('Mul', ['x', 'x'], ['y'])] },
  {
    op: 'Div',
    what: 'x by a positive weight',
    x: [2, 3, 4, 5],
    nodes: [node('Div', ['x', 'w'], ['y'])],
    inits: [weights('w', [3, 1, 1], [0.5, 2])],
  },
  {
    op: 'Pow',
    what: 'to a scalar exponent',
    x: [2, 3, 4, 5],
    range: [0.5, 2],
    nodes: [node('Pow', ['x', 'e'], ['y'])],
    inits: [floats('e', [2.5], [])],
  },
  { op: 'Neg', what: '', x: [2, 3, 4, 5], nodes: [node('Neg', ['x'], ['y'])] },
  { op: 'Sqrt', what: 'of positive values', x: [2, 3, 4, 5], range: [0.5, 2], nodes: [node('Sqrt', ['x'], ['y'])] },
  { op: 'Exp', what: '', x: [2, 3, 4, 5], nodes: [node('Exp', ['x'], ['y'])] },
  { op: 'Log', what: 'of positive values', x: [2, 3, 4, 5], range: [0.5, 2], nodes: [node('Log', ['x'], ['y'])] },
  { op: 'Tanh', what: '', x: [2, 3, 4, 5], nodes: [node('Tanh', ['x'], ['y'])] },
  { op: 'Erf', what: '', x: [2, 3, 4, 5], nodes: [node('Erf', ['x'], ['y'])] },
  { op: 'Relu', what: '', x: [2, 3, 4, 5], nodes: [node('Relu', ['x'], ['y'])] },
  { op: 'Reciprocal', what: 'of positive values', x: [2, 3, 4, 5], range: [0.5, 2], nodes: [node('Reciprocal', ['x'], ['y'])] },
  { op: 'Sigmoid', what: '', x: [2, 3, 4, 5], nodes: [node('Sigmoid', ['x'], ['y'])] },
  {
    op: 'MatMul',
    what: 'batched, by a weight',
    x: [2, 3, 4, 5],
    nodes: [node('MatMul', ['x', 'w'], ['y'])],
    inits: [weights('w', [5, 6])],
  },
  {
    op: 'MatMul',
    what: 'x by its own transpose',
    x: [2, 3, 4, 5],
    nodes: [node('Transpose', ['x'], ['xt'], { perm: [0, 1, 3, 2] }), node('MatMul', ['x', 'xt'], ['y'])],
  },
  {
    op: 'Gemm',
    what: 'transB with a bias',
    x: [2, 3, 4, 5],
    nodes: [node('Reshape', ['x', 's'], ['a']), node('Gemm', ['a', 'w', 'b'], ['y'], { transB: 1 })],
    inits: [ints('s', [6, 20]), weights('w', [7, 20]), weights('b', [7])],
  },
  {
    op: 'Gemm',
    what: 'transA, alpha and beta',
    x: [2, 3, 4, 5],
    nodes: [
      node('Reshape', ['x', 's'], ['a']),
      node('Gemm', ['a', 'w', 'b'], ['y'], { transA: 1, alpha: { float: 0.5 }, beta: { float: 2 } }),
    ],
    inits: [ints('s', [6, 20]), weights('w', [6, 3]), weights('b', [1, 3])],
  },
  {
    op: 'Conv',
    what: 'a patch embedding (kernel = stride) with a bias',
    x: [2, 3, 8, 8],
    nodes: [node('Conv', ['x', 'w', 'b'], ['y'], { kernel_shape: [4, 4], strides: [4, 4] })],
    inits: [weights('w', [5, 3, 4, 4]), weights('b', [5])],
  },
  {
    op: 'Conv',
    what: 'stride 1, padding 1, with a bias',
    x: [2, 3, 6, 6],
    nodes: [node('Conv', ['x', 'w', 'b'], ['y'], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] })],
    inits: [weights('w', [4, 3, 3, 3]), weights('b', [4])],
  },
  {
    op: 'Conv',
    what: 'stride 1, no padding, no bias',
    x: [2, 3, 6, 6],
    nodes: [node('Conv', ['x', 'w'], ['y'])],
    inits: [weights('w', [2, 3, 3, 3])],
  },
  { op: 'Softmax', what: 'on the last axis', x: [2, 3, 4, 5], nodes: [node('Softmax', ['x'], ['y'])] },
  { op: 'Softmax', what: 'on another axis', x: [2, 3, 4, 5], nodes: [node('Softmax', ['x'], ['y'], { axis: 1 })] },
  {
    op: 'LayerNormalization',
    what: 'scale, bias and epsilon',
    x: [2, 3, 4, 5],
    nodes: [node('LayerNormalization', ['x', 'g', 'b'], ['y'], { axis: -1, epsilon: { float: 1e-3 } })],
    inits: [weights('g', [5]), weights('b', [5])],
  },
  {
    op: 'LayerNormalization',
    what: 'without a bias',
    x: [2, 3, 4, 5],
    opset: 17,
    nodes: [node('LayerNormalization', ['x', 'g'], ['y'])],
    inits: [weights('g', [5])],
  },
  {
    op: 'ReduceMean',
    what: 'axes as an attribute (opset 13), kept',
    x: [2, 3, 4, 5],
    nodes: [node('ReduceMean', ['x'], ['y'], { axes: [1, 3] })],
  },
  {
    op: 'ReduceMean',
    what: 'axes as an input (opset 18), dropped',
    x: [2, 3, 4, 5],
    opset: 18,
    nodes: [node('ReduceMean', ['x', 'axes'], ['y'], { keepdims: 0 })],
    inits: [ints('axes', [-1])],
  },
  { op: 'ReduceMean', what: 'every axis when none is given', x: [2, 3, 4, 5], nodes: [node('ReduceMean', ['x'], ['y'], { keepdims: 0 })] },
  {
    op: 'ReduceSum',
    what: 'axes as an input (opset 13)',
    x: [2, 3, 4, 5],
    nodes: [node('ReduceSum', ['x', 'axes'], ['y'], { keepdims: 0 })],
    inits: [ints('axes', [0, 2])],
  },
  { op: 'ReduceSum', what: 'noop_with_empty_axes', x: [2, 3, 4, 5], nodes: [node('ReduceSum', ['x'], ['y'], { noop_with_empty_axes: 1 })] },

  // ---- moving values around ----
  { op: 'Reshape', what: 'with 0 and -1', x: [2, 3, 4, 5], nodes: [node('Reshape', ['x', 's'], ['y'])], inits: [ints('s', [0, -1, 5])] },
  { op: 'Flatten', what: 'at axis 2', x: [2, 3, 4, 5], nodes: [node('Flatten', ['x'], ['y'], { axis: 2 })] },
  { op: 'Flatten', what: 'at the default axis 1', x: [2, 3, 4, 5], nodes: [node('Flatten', ['x'], ['y'])] },
  { op: 'Transpose', what: 'with a permutation', x: [2, 3, 4, 5], nodes: [node('Transpose', ['x'], ['y'], { perm: [2, 0, 3, 1] })] },
  { op: 'Transpose', what: 'reversed by default', x: [2, 3, 4, 5], nodes: [node('Transpose', ['x'], ['y'])] },
  {
    op: 'Squeeze',
    what: 'axes as an input (opset 13)',
    x: [2, 1, 4, 1],
    nodes: [node('Squeeze', ['x', 'axes'], ['y'])],
    inits: [ints('axes', [3])],
  },
  { op: 'Squeeze', what: 'every axis of size 1', x: [2, 1, 4, 1], nodes: [node('Squeeze', ['x'], ['y'])] },
  {
    op: 'Unsqueeze',
    what: 'two new axes',
    x: [2, 3, 4, 5],
    nodes: [node('Unsqueeze', ['x', 'axes'], ['y'])],
    inits: [ints('axes', [0, -1])],
  },
  {
    op: 'Concat',
    what: 'x and a weight',
    x: [2, 3, 4, 5],
    nodes: [node('Concat', ['x', 'w', 'x'], ['y'], { axis: 1 })],
    inits: [weights('w', [2, 2, 4, 5])],
  },
  { op: 'Expand', what: 'to a fixed shape', x: [2, 1, 4, 1], nodes: [node('Expand', ['x', 's'], ['y'])], inits: [ints('s', [2, 3, 4, 5])] },
  {
    op: 'Expand',
    what: 'a weight to the batch of a symbolic input',
    x: ['batch', 3, 4, 5],
    nodes: [node('Shape', ['x'], ['s']), node('Expand', ['w', 's'], ['e']), node('Mul', ['x', 'e'], ['y'])],
    inits: [weights('w', [1, 3, 1, 5])],
  },
  {
    op: 'Gather',
    what: 'a scalar index (the axis dropped)',
    x: [2, 3, 4, 5],
    nodes: [node('Gather', ['x', 'i'], ['y'], { axis: 2 })],
    inits: [ints('i', [-1], [])],
  },
  {
    op: 'Gather',
    what: 'a list of indices',
    x: [2, 3, 4, 5],
    nodes: [node('Gather', ['x', 'i'], ['y'], { axis: 3 })],
    inits: [ints('i', [4, 0, 2])],
  },
  {
    op: 'Gather',
    what: 'on a known shape',
    x: [2, 3, 4, 5],
    nodes: [node('Shape', ['x'], ['s']), node('Gather', ['s', 'i'], ['g']), node('Cast', ['g'], ['c'], { to: DataType.FLOAT }), addTo('c')],
    inits: [ints('i', [3], [])],
  },
  {
    op: 'Slice',
    what: 'with axes and ends past the axis',
    x: [2, 3, 4, 5],
    nodes: [node('Slice', ['x', 's', 'e', 'a'], ['y'])],
    inits: [ints('s', [1, -3]), ints('e', [1000, -1]), ints('a', [1, 3])],
  },
  {
    op: 'Slice',
    what: 'step -1 over a whole axis (a flip)',
    x: [2, 3, 4, 5],
    nodes: [node('Slice', ['x', 's', 'e', 'a', 'st'], ['y'])],
    inits: [ints('s', [-1]), ints('e', [-1000]), ints('a', [2]), ints('st', [-1])],
  },
  {
    op: 'Split',
    what: 'sizes as an input (opset 13)',
    x: [2, 6, 4, 5],
    outputs: ['y', 'z'],
    nodes: [node('Split', ['x', 'sizes'], ['y', 'z'], { axis: 1 })],
    inits: [ints('sizes', [2, 4])],
  },
  {
    op: 'Split',
    what: 'num_outputs (opset 18), uneven',
    x: [2, 3, 4, 5],
    opset: 18,
    outputs: ['y', 'z'],
    nodes: [node('Split', ['x'], ['y', 'z'], { axis: -1, num_outputs: 2 })],
  },
  {
    op: 'Split',
    what: 'into equal parts by the outputs',
    x: [2, 3, 4, 6],
    outputs: ['y', 'z', 'w'],
    nodes: [node('Split', ['x'], ['y', 'z', 'w'], { axis: 3 })],
  },
];

const model = (c: Case) => onnxModel({ nodes: c.nodes, inits: c.inits, inputs: [['x', c.x]], outputs: c.outputs ?? ['y'], opset: c.opset });

const covered = new Set<string>();
for (const c of CASES) {
  t.test(`${c.op}${c.what ? `: ${c.what}` : ''}`, async (t) => {
    covered.add(c.op);
    const m = model(c);
    const dims = c.x.map((d) => (typeof d === 'number' ? d : 2));
    const x = random(count(dims), c.range);
    const session = await ort.InferenceSession.create(serializeModel(m));
    const names = c.outputs ?? ['y'];
    const run = async (v: Float32Array) => {
      const r = await session.run({ x: new ort.Tensor('float32', v, dims) });
      return names.map((n) => ({ data: r[n].data as Float32Array, dims: [...r[n].dims] }));
    };
    const reference = await run(x);

    const g = importOnnx(m, '.');
    t.same(
      g.outputs.map(([n]) => n),
      names,
    );
    const feeds = {
      x: nd(Float64Array.from(x), dims),
      ...Object.fromEntries(
        [...g.params].map(([name, v]) => [name, nd(Float64Array.from(v), (g.values.get(name) as Tensor).shape as number[])]),
      ),
    };
    const outs = g.outputs.map(([, tensor]) => tensor);
    const ours = interpret(outs, feeds);
    for (const [k, name] of names.entries()) {
      t.same(ours[k].shape, reference[k].dims, `${name}: the shape is ONNX Runtime's`);
      const scale = Math.max(1, ...Array.from(reference[k].data, Math.abs));
      const d = maxAbsDiff(ours[k].data, reference[k].data);
      t.ok(d <= 2e-6 * scale, `${name}: the values are ONNX Runtime's (worst ${d.toExponential(2)}, scale ${scale.toFixed(1)})`);
    }

    // the gradient of sum(outputs * fixed weights) as the backward pass gives it, against central
    // differences of ONNX Runtime at a few input elements
    const w = reference.map((r) => random(r.data.length));
    // (the weights an input of the output's own shape, which may be symbolic)
    const loss = outs
      .map((o, k) => O.reduceSum(O.mul(o, O.input(`w${k}`, o.shape)), [...o.shape.keys()], false))
      .reduce((a, b) => O.add(a, b));
    const [dx] = interpret(grad(loss, [g.input]), {
      ...feeds,
      ...Object.fromEntries(w.map((v, k) => [`w${k}`, nd(Float64Array.from(v), reference[k].dims)])),
    });
    const lossAt = async (v: Float32Array) => (await run(v)).reduce((s, r, k) => s + r.data.reduce((a, y, i) => a + y * w[k][i], 0), 0);
    const eps = 1e-2;
    for (let s = 0; s < 6; s++) {
      const i = Math.floor(rng.next() * x.length);
      const up = Float32Array.from(x);
      const down = Float32Array.from(x);
      up[i] += eps;
      down[i] -= eps;
      const numeric = ((await lossAt(up)) - (await lossAt(down))) / (up[i] - down[i]);
      t.ok(
        Math.abs(numeric - dx.data[i]) <= 2e-3 + 1e-2 * Math.abs(numeric),
        `d loss / d x[${i}]: ${dx.data[i].toFixed(5)} against ONNX Runtime's central difference ${numeric.toFixed(5)}`,
      );
    }
  });
}

// What import refuses, each with the reason it gives.
const x4 = (nodes: INodeProto[], inits: ITensorProto[] = [], extra: Partial<Parameters<typeof onnxModel>[0]> = {}) =>
  onnxModel({ nodes, inits, inputs: [['x', [2, 3, 4, 4]]], outputs: ['y'], ...extra });
const REFUSALS: [string, ReturnType<typeof onnxModel>, RegExp][] = [
  ['an opset before 13', x4([node('Relu', ['x'], ['y'])], [], { opset: 12 }), /the graph is opset 12; opsets 13 to 18 are imported/],
  ['an opset after 18', x4([node('Relu', ['x'], ['y'])], [], { opset: 19 }), /opset 19; opsets 13 to 18/],
  [
    'two inputs',
    onnxModel({
      nodes: [node('Add', ['x', 'z'], ['y'])],
      inputs: [
        ['x', [2, 3, 4, 4]],
        ['z', [2, 3, 4, 4]],
      ],
      outputs: ['y'],
    }),
    /takes one input; this graph takes 2 \(x, z\)/,
  ],
  [
    'an integer input',
    onnxModel({
      nodes: [node('Cast', ['x'], ['y'], { to: DataType.FLOAT })],
      inputs: [['x', [2, 3, 4, 4]]],
      inputType: DataType.INT64,
      outputs: ['y'],
    }),
    /input 'x' must be a float tensor/,
  ],
  [
    'an input that is not an image',
    onnxModel({ nodes: [node('Relu', ['x'], ['y'])], inputs: [['x', [2, 12]]], outputs: ['y'] }),
    /must be \[batch, channels, height, width\] with known channels and size, got \[2, 12\]/,
  ],
  ['an op of another domain', x4([node('Gelu', ['x'], ['y'], {}, 'com.microsoft')]), /is in domain 'com.microsoft', which is not imported/],
  [
    'an op without a lowering',
    x4([node('Elu', ['x'], ['y'])]),
    /no lowering for op Elu at node 'Elu_y' \(Elu, opset 13\); the ops imported are .*Add/,
  ],
  [
    'an output that does not depend on the input',
    x4([node('Shape', ['x'], ['s']), node('Cast', ['s'], ['y'], { to: DataType.FLOAT })]),
    /output 'y' does not depend on the input/,
  ],
  ['a name nothing produces', x4([node('Add', ['x', 'ghost'], ['y'])]), /uses 'ghost', which nothing before it produces/],
  ["Dropout's mask", x4([node('Dropout', ['x'], ['y', 'mask'])]), /Dropout's mask output is not imported/],
  ['a cast of the image to integers', x4([node('Cast', ['x'], ['y'], { to: DataType.INT64 })]), /can only be cast to a float type/],
  ['Pow with a varying exponent', x4([node('Pow', ['x', 'e'], ['y'])], [ints('e', [1, 2, 3, 4])]), /exponent that varies by element/],
  [
    'Pow with an exponent from the image',
    x4([node('Pow', ['x', 'x'], ['y'])]),
    /input 1 \(exponent\) must be known while importing, but it is computed from the image/,
  ],
  [
    'a grouped Conv',
    x4([node('Conv', ['x', 'w'], ['y'], { group: 3 })], [weights('w', [3, 1, 3, 3])]),
    /Conv with group 3.* is not imported/,
  ],
  [
    'a strided Conv that is not a patch embedding',
    x4([node('Conv', ['x', 'w'], ['y'], { strides: [2, 2], kernel_shape: [3, 3] })], [weights('w', [2, 3, 3, 3])]),
    /Conv with kernel \[3,3\], strides \[2,2\].* is not imported/,
  ],
  [
    'a patch Conv that does not tile',
    x4([node('Conv', ['x', 'w'], ['y'], { strides: [3, 3], kernel_shape: [3, 3] })], [weights('w', [2, 3, 3, 3])]),
    /a patch Conv of 3x3 must tile the 4x4 input/,
  ],
  [
    'LayerNormalization over more than the last axis',
    x4([node('LayerNormalization', ['x', 'g'], ['y'], { axis: 2 })], [weights('g', [4, 4])], { opset: 17 }),
    /over axes 2\.\. .* is not imported \(the last axis only\)/,
  ],
  [
    'a Slice of step 2',
    x4([node('Slice', ['x', 's', 'e', 'a', 'st'], ['y'])], [ints('s', [0]), ints('e', [4]), ints('a', [3]), ints('st', [2])]),
    /Slice with step 2 is not imported/,
  ],
  ['an empty Slice', x4([node('Slice', ['x', 's', 'e', 'a'], ['y'])], [ints('s', [3]), ints('e', [1]), ints('a', [3])]), /an empty slice/],
  [
    'Gather with 2-D indices',
    x4([node('Gather', ['x', 'i'], ['y'], { axis: 3 })], [ints('i', [0, 1, 2, 3], [2, 2])]),
    /Gather with 2-D indices on a tensor is not imported/,
  ],
  ['Gather outside the axis', x4([node('Gather', ['x', 'i'], ['y'], { axis: 3 })], [ints('i', [4])]), /an index is outside axis 3/],
  [
    'Reshape with allowzero',
    x4([node('Reshape', ['x', 's'], ['y'], { allowzero: 1 })], [ints('s', [0, 48])], { opset: 14 }),
    /allowzero and a 0 in the shape/,
  ],
  [
    'Split sizes that do not add up',
    x4([node('Split', ['x', 'sz'], ['y', 'z'], { axis: 3 })], [ints('sz', [1, 2])], { outputs: ['y', 'z'] }),
    /split sizes \[1,2\] do not add up to 4/,
  ],
  [
    'Where on the image',
    x4([node('Where', ['c', 'x', 'x'], ['y'])], [ints('c', [1], [1], DataType.BOOL)]),
    /Where is imported only on values known while importing/,
  ],
  [
    'a Constant of an unread kind',
    x4([node('Constant', [], ['c'], { value_string: 'text' }), node('Add', ['x', 'c'], ['y'])]),
    /a Constant's value_string is not imported/,
  ],
];
for (const [what, m, reason] of REFUSALS) {
  t.test(`refused: ${what}`, async (t) => {
    t.throws(() => importOnnx(m, '.'), reason);
  });
}

t.test('every lowering has a case', async (t) => {
  t.same(
    Object.keys(LOWERINGS).filter((op) => !covered.has(op)),
    [],
    'ops without a case',
  );
});
