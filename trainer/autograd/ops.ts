// The op table. One entry per primitive op, each with four parts side by side:
//   shape   infers the output shape (symbolic dims allowed) and validates the inputs;
//   kernel  the reference implementation over float64 arrays (interpreter.ts runs it);
//   vjp     the vector-Jacobian product, built from other ops so that gradients are graphs too;
//           one entry per input, null where an input takes no gradient;
//   onnx    how the op is written as ONNX nodes (opset 17).
// Below the table are the front-end helpers that build nodes, and the composites (GELU, cross-entropy,
// sum-to-shape, …) that are ordinary compositions of primitives.

import {
  type Attrs,
  type Dim,
  type Shape,
  type Tensor,
  broadcastShapes,
  factorDim,
  makeNode,
  normalizeAxis,
  productDim,
  sameShape,
  shapeToString,
  staticSize,
} from './graph.js';
import * as K from './ndarray.js';
import type { NDArray } from './ndarray.js';
import { type AttrValue, float } from './onnx-proto.js';

export const OPSET = 17;
/** ONNX Runtime's operator domain (its contrib ops: DynamicQuantizeMatMul). */
export const ONNX_RUNTIME = 'com.microsoft';
/** The ONNX Runtime op quantized_matmul is written as. */
export const QUANTIZED_MATMUL_ONNX = 'DynamicQuantizeMatMul';

/** What an op's ONNX emission may do: add nodes and constant initializers. */
export interface OnnxEmitter {
  // floats as float(v); the domain is ONNX's own unless given (ONNX_RUNTIME)
  node(opType: string, inputs: string[], outputs: string[], attrs?: Record<string, AttrValue>, domain?: string): void;
  int64s(values: readonly number[]): string; // a 1-D int64 initializer; returns its name
  floats(values: ArrayLike<number>, shape: readonly number[]): string; // a float32 initializer
  int8s(values: Int8Array, shape: readonly number[]): string; // an int8 initializer
  fresh(hint: string): string; // a fresh value name
  /** Whether MaxPool's Indices output may be emitted (false for the WebGPU provider, which refuses it). */
  readonly maxPoolIndices: boolean;
}

export interface OpDef {
  readonly arity: number | 'variadic';
  shape(inputs: readonly Shape[], attrs: Attrs): Shape;
  kernel(inputs: readonly NDArray[], attrs: Attrs): NDArray;
  vjp(grad: Tensor, out: Tensor): (Tensor | null)[];
  onnx(e: OnnxEmitter, inputs: readonly string[], output: string, node: Tensor): void;
}

const leaf = (op: string): OpDef => ({
  arity: 0,
  shape: (_s, attrs) => attrs.shape as Shape,
  kernel: () => {
    throw new Error(`${op} nodes are fed or hold a value; they have no kernel`);
  },
  vjp: () => [],
  onnx: () => {
    throw new Error(`${op} nodes are graph inputs or initializers, not ONNX nodes`);
  },
});

function elementwise(onnxOp: string, f: (x: number, y: number) => number, vjp: OpDef['vjp']): OpDef {
  return {
    arity: 2,
    shape: ([a, b]) => broadcastShapes(a, b, onnxOp),
    kernel: ([a, b]) => K.binary(a, b, f),
    vjp,
    onnx: (e, ins, out) => e.node(onnxOp, [...ins], [out]),
  };
}

function unaryOp(onnxOp: string, f: (x: number) => number, vjp: OpDef['vjp']): OpDef {
  return {
    arity: 1,
    shape: ([a]) => a,
    kernel: ([a]) => K.unary(a, f),
    vjp,
    onnx: (e, ins, out) => e.node(onnxOp, [...ins], [out]),
  };
}

const axesOf = (attrs: Attrs) => attrs.axes as readonly number[];

/** The output shape of a max-pooling of x [B, C, H, W] (attrs kernel, stride, pad). */
function poolShape(x: Shape, attrs: Attrs): Shape {
  const { kernel: k, stride: s, pad: p } = attrs as { kernel: number; stride: number; pad: number };
  if (x.length !== 4 || typeof x[2] !== 'number' || typeof x[3] !== 'number')
    throw new Error(`max_pool: input must be [batch, channels, height, width] with known sizes, got ${shapeToString(x)}`);
  if (![k, s].every((v) => Number.isInteger(v) && v >= 1))
    throw new Error(`max_pool: kernel and stride must be positive integers, got ${k} and ${s}`);
  if (!Number.isInteger(p) || p < 0 || 2 * p >= k + 1)
    throw new Error(`max_pool: padding must be an integer in [0, ${Math.floor(k / 2)}], got ${p}`);
  const [h, w] = [x[2], x[3]] as number[];
  if (h + 2 * p < k || w + 2 * p < k) throw new Error(`max_pool: a ${k}x${k} window does not fit ${shapeToString(x)} with padding ${p}`);
  return [x[0], x[1], Math.floor((h + 2 * p - k) / s) + 1, Math.floor((w + 2 * p - k) / s) + 1];
}

/**
 * max_pool_grad without MaxPool's Indices output, for providers that refuse it (WebGPU): each of the
 * k x k window offsets, in the order MaxPool scans a window, is a strided view of the padded input;
 * a view equal to the pooled maximum and to no earlier offset's takes the window's gradient (ties go
 * to the first maximum, as with the indices), which is spread back to the view's pixels (every s-th
 * row and column, shifted by the offset) and summed. Equal to the indices' emission (tested).
 */
function maxPoolGradWithoutIndices(e: OnnxEmitter, x: string, g: string, out: string, node: Tensor): void {
  const { kernel: k, stride: s, pad: p } = node.attrs as { kernel: number; stride: number; pad: number };
  const [, , h, w] = node.inputs[0].shape as [unknown, unknown, number, number];
  const [, , ho, wo] = node.inputs[1].shape as [unknown, unknown, number, number];
  const value = (op: string, ins: string[], attrs?: Record<string, AttrValue>) => {
    const v = e.fresh(op.toLowerCase());
    e.node(op, ins, [v], attrs);
    return v;
  };
  // (B, C, h + 2p, w + 2p); padding never wins
  const padded = value('Pad', [x, e.int64s([0, 0, p, p, 0, 0, p, p]), e.floats([-Infinity], [])]);
  const pooled = value('MaxPool', [x], { kernel_shape: [k, k], strides: [s, s], pads: [p, p, p, p] }); // (B, C, ho, wo)
  // The canvas the spread gradients land on: the padded input, and room for the last view's stride.
  const [ch, cw] = [Math.max(h + 2 * p, ho * s + k), Math.max(w + 2 * p, wo * s + k)];
  let taken: string | null = null;
  let sum: string | null = null;
  for (let di = 0; di < k; di++) {
    for (let dj = 0; dj < k; dj++) {
      const view = value('Slice', [
        padded,
        e.int64s([di, dj]),
        e.int64s([di + s * (ho - 1) + 1, dj + s * (wo - 1) + 1]),
        e.int64s([2, 3]),
        e.int64s([s, s]),
      ]); // (B, C, ho, wo)
      const equal = value('Cast', [value('Equal', [view, pooled])], { to: 1 });
      const first: string = taken ? value('Mul', [equal, value('Sub', [e.floats([1], []), taken])]) : equal;
      taken = taken ? value('Add', [taken, first]) : first;
      let spread = value('Mul', [g, first]); // (B, C, ho, wo)
      if (s > 1) {
        const cells = value('Reshape', [spread, e.int64s([0, 0, ho, 1, wo, 1])]); // (B, C, ho, 1, wo, 1)
        const strided = value('Pad', [cells, e.int64s([0, 0, 0, 0, 0, 0, 0, 0, 0, s - 1, 0, s - 1])]); // (B, C, ho, s, wo, s)
        spread = value('Reshape', [strided, e.int64s([0, 0, ho * s, wo * s])]); // (B, C, ho s, wo s)
      }
      const placed = value('Pad', [spread, e.int64s([0, 0, di, dj, 0, 0, ch - ho * s - di, cw - wo * s - dj])]); // (B, C, ch, cw)
      sum = sum ? value('Add', [sum, placed]) : placed;
    }
  }
  e.node('Slice', [sum!, e.int64s([p, p]), e.int64s([p + h, p + w]), e.int64s([2, 3])], [out]); // (B, C, h, w)
}

/** The runtime shape of a value as an ONNX int64 tensor (symbolic dims resolved when the graph runs). */
function runtimeShape(e: OnnxEmitter, value: string): string {
  const shape = e.fresh('shape');
  e.node('Shape', [value], [shape]);
  return shape;
}

export const OPS: Readonly<Record<string, OpDef>> = Object.freeze({
  input: leaf('input'),
  param: leaf('param'),
  const: leaf('const'),

  add: elementwise(
    'Add',
    (x, y) => x + y,
    (g, out) => {
      const [a, b] = out.inputs;
      return [sumTo(g, a.shape), sumTo(g, b.shape)];
    },
  ),
  sub: elementwise(
    'Sub',
    (x, y) => x - y,
    (g, out) => {
      const [a, b] = out.inputs;
      return [sumTo(g, a.shape), sumTo(neg(g), b.shape)];
    },
  ),
  mul: elementwise(
    'Mul',
    (x, y) => x * y,
    (g, out) => {
      const [a, b] = out.inputs;
      return [sumTo(mul(g, b), a.shape), sumTo(mul(g, a), b.shape)];
    },
  ),
  div: elementwise(
    'Div',
    (x, y) => x / y,
    (g, out) => {
      const [a, b] = out.inputs;
      return [sumTo(div(g, b), a.shape), sumTo(neg(div(mul(g, out), b)), b.shape)];
    },
  ),

  neg: unaryOp(
    'Neg',
    (x) => -x,
    (g) => [neg(g)],
  ),
  exp: unaryOp('Exp', Math.exp, (g, out) => [mul(g, out)]),
  log: unaryOp('Log', Math.log, (g, out) => [div(g, out.inputs[0])]),
  tanh: unaryOp('Tanh', Math.tanh, (g, out) => [mul(g, sub(1, mul(out, out)))]),
  sqrt: unaryOp('Sqrt', Math.sqrt, (g, out) => [div(mul(g, 0.5), out)]),
  // The Gauss error function: exact GELU is 0.5 x (1 + erf(x / sqrt 2)); d/dx erf = 2/sqrt(pi) e^(-x^2).
  erf: unaryOp('Erf', K.erf, (g, out) => {
    const x = out.inputs[0];
    return [mul(g, mul(2 / Math.sqrt(Math.PI), exp(neg(mul(x, x)))))];
  }),

  // GELU, tanh approximation: 0.5 x (1 + tanh(C (x + 0.044715 x^3))), C = sqrt(2 / pi). A primitive
  // so that its gradient reads x alone: emitted as the composite's nodes, which ONNX Runtime fuses into
  // one FastGelu kernel once nothing else reads their intermediates (the composite's own gradient
  // read them, which kept 8 passes over the activations in the forward and 14 in the backward).
  gelu_tanh: {
    arity: 1,
    shape: ([a]) => a,
    kernel: ([a]) => K.unary(a, (x) => 0.5 * x * (1 + Math.tanh(GELU_C * (x + GELU_A * x * x * x)))),
    vjp: (g, out) => [geluTanhGrad(out.inputs[0], g)],
    onnx: (e, [x], out) => {
      const v = (hint: string) => e.fresh(hint);
      const [cube, scaled, sum, inner, t, onePlus, half] = [
        v('cube'),
        v('cube_scaled'),
        v('sum'),
        v('inner'),
        v('tanh'),
        v('one_plus'),
        v('half_x'),
      ];
      e.node('Pow', [x, e.floats([3], [])], [cube]);
      e.node('Mul', [e.floats([GELU_A], []), cube], [scaled]);
      e.node('Add', [x, scaled], [sum]);
      e.node('Mul', [e.floats([GELU_C], []), sum], [inner]);
      e.node('Tanh', [inner], [t]);
      e.node('Add', [e.floats([1], []), t], [onePlus]);
      e.node('Mul', [e.floats([0.5], []), x], [half]);
      e.node('Mul', [half, onePlus], [out]);
    },
  },

  // gelu_tanh's vector-Jacobian product g * f'(x). With s = 0.5 (1 + tanh(k)) = sigmoid(2k), k the
  // tanh's argument: f'(x) = s + x s (1 - s) 2k'(x), 2k'(x) = 2C (1 + 3A x^2), A = 0.044715. Thirteen
  // passes over x, one Sigmoid among them.
  gelu_tanh_grad: {
    arity: 2,
    shape: ([x, g]) => {
      if (!sameShape(x, g)) throw new Error(`gelu_tanh_grad: gradient ${shapeToString(g)} is not the input's shape ${shapeToString(x)}`);
      return x;
    },
    kernel: ([x, g]) => K.binary(x, g, (v, d) => d * geluTanhDerivative(v)),
    vjp: () => {
      throw new Error('gelu_tanh_grad: second derivatives of GELU are not implemented');
    },
    onnx: (e, [x, g], out) => {
      const v = (hint: string) => e.fresh(hint);
      const [x2, p, p1, z, sg, q, q1, om, r, r1, r2, d] = [
        'x2',
        'p',
        'p1',
        'z',
        'sigmoid',
        'q',
        'q1',
        'one_minus',
        'r',
        'r1',
        'r2',
        'd',
      ].map(v);
      const twoC = 2 * GELU_C;
      e.node('Mul', [x, x], [x2]);
      e.node('Mul', [x2, e.floats([twoC * GELU_A], [])], [p]);
      e.node('Add', [p, e.floats([twoC], [])], [p1]);
      e.node('Mul', [p1, x], [z]);
      e.node('Sigmoid', [z], [sg]);
      e.node('Mul', [x2, e.floats([twoC * 3 * GELU_A], [])], [q]);
      e.node('Add', [q, e.floats([twoC], [])], [q1]);
      e.node('Sub', [e.floats([1], []), sg], [om]);
      e.node('Mul', [sg, om], [r]);
      e.node('Mul', [r, q1], [r1]);
      e.node('Mul', [r1, x], [r2]);
      e.node('Add', [r2, sg], [d]);
      e.node('Mul', [d, g], [out]);
    },
  },

  pow: {
    // x ** p for a constant exponent p (attrs.exponent)
    arity: 1,
    shape: ([a]) => a,
    kernel: ([a], attrs) => K.unary(a, (x) => x ** (attrs.exponent as number)),
    vjp: (g, out) => {
      const p = out.attrs.exponent as number;
      return [mul(g, mul(p, pow(out.inputs[0], p - 1)))];
    },
    onnx: (e, [x], out, node) => e.node('Pow', [x, e.floats([node.attrs.exponent as number], [])], [out]),
  },

  matmul: {
    arity: 2,
    shape: ([a, b]) => {
      if (a.length < 2 || b.length < 2) throw new Error(`matmul: operands need rank >= 2, got ${shapeToString(a)} and ${shapeToString(b)}`);
      const k = a[a.length - 1];
      const k2 = b[b.length - 2];
      if (k !== k2) throw new Error(`matmul: inner dims of ${shapeToString(a)} and ${shapeToString(b)} differ`);
      return [...broadcastShapes(a.slice(0, -2), b.slice(0, -2), 'matmul'), a[a.length - 2], b[b.length - 1]];
    },
    kernel: ([a, b]) => K.matmul(a, b),
    vjp: (g, out) => {
      const [a, b] = out.inputs;
      const [k, n] = [a.shape[a.shape.length - 1], b.shape[b.shape.length - 1]];
      // A weight matrix under a batch of rows (x [..., k] @ w [k, n]): its gradient as one product of
      // every row, x^T [k, rows] @ g [rows, n], not one product per leading index summed after.
      // Measured with ONNX Runtime's profiler on the CCT step (batch 128, 65 tokens): the per-image
      // products (K = 65) and their sums over the batch took ~6 ms more than single products.
      const dB =
        b.shape.length === 2 && a.shape.length > 2 && typeof k === 'number' && typeof n === 'number'
          ? matmul(transposeLast2(reshape(a, [-1, k])), reshape(g, [-1, n]))
          : sumTo(matmul(transposeLast2(a), g), b.shape);
      return [sumTo(matmul(g, transposeLast2(b)), a.shape), dB];
    },
    onnx: (e, ins, out) => e.node('MatMul', [...ins], [out]),
  },

  reduce_sum: {
    // keeps the reduced axes as size 1; `sum(x, axes, false)` composes it with squeeze
    arity: 1,
    shape: ([a], attrs) => a.map((d, i) => (axesOf(attrs).includes(i) ? 1 : d)),
    kernel: ([a], attrs) => K.reduceSumKeep(a, axesOf(attrs)),
    vjp: (g, out) => [expandAs(g, out.inputs[0])],
    onnx: (e, [x], out, node) => e.node('ReduceSum', [x, e.int64s(axesOf(node.attrs))], [out], { keepdims: 1 }),
  },

  reduce_mean: {
    arity: 1,
    shape: ([a], attrs) => a.map((d, i) => (axesOf(attrs).includes(i) ? 1 : d)),
    kernel: ([a], attrs) => {
      const s = K.reduceSumKeep(a, axesOf(attrs));
      const n = axesOf(attrs).reduce((p, ax) => p * a.shape[ax], 1);
      return K.unary(s, (v) => v / n);
    },
    vjp: (g, out) => {
      const x = out.inputs[0];
      const axes = axesOf(out.attrs);
      const n = staticSize(axes.map((a) => x.shape[a]));
      const spread = expandAs(g, x);
      // A symbolic count (the batch) is measured in the graph: the sum of ones over the same axes.
      return [n !== undefined ? mul(spread, 1 / n) : div(spread, reduceSum(expandAs(scalar(1), x), axes))];
    },
    onnx: (e, [x], out, node) => e.node('ReduceMean', [x], [out], { axes: [...axesOf(node.attrs)], keepdims: 1 }),
  },

  squeeze: {
    arity: 1,
    shape: ([a], attrs) => {
      for (const ax of axesOf(attrs)) if (a[ax] !== 1) throw new Error(`squeeze: axis ${ax} of ${shapeToString(a)} is not 1`);
      return a.filter((_d, i) => !axesOf(attrs).includes(i));
    },
    kernel: ([a], attrs) => ({ data: a.data, shape: a.shape.filter((_d, i) => !axesOf(attrs).includes(i)) }),
    vjp: (g, out) => [reshapeAs(g, out.inputs[0])],
    onnx: (e, [x], out, node) => e.node('Squeeze', [x, e.int64s(axesOf(node.attrs))], [out]),
  },

  reshape: {
    // target dims: a number, 0 (copy the input's dim at that index) or -1 (inferred), as ONNX Reshape
    arity: 1,
    shape: ([a], attrs) => inferReshape(a, attrs.shape as readonly number[]),
    kernel: ([a], attrs) => ({ data: a.data, shape: inferReshape(a.shape, attrs.shape as readonly number[]) as number[] }),
    vjp: (g, out) => [reshapeAs(g, out.inputs[0])],
    onnx: (e, [x], out, node) => e.node('Reshape', [x, e.int64s(node.attrs.shape as number[])], [out]),
  },

  reshape_as: {
    // reshapes x to the runtime shape of ref (which takes no gradient): how gradients undo reshapes
    arity: 2,
    shape: ([a, ref]) => {
      const na = staticSize(a);
      const nr = staticSize(ref);
      if (na !== undefined && nr !== undefined && na !== nr)
        throw new Error(`reshape_as: ${shapeToString(a)} cannot become ${shapeToString(ref)}`);
      return ref;
    },
    kernel: ([a, ref]) => {
      if (a.data.length !== K.sizeOf(ref.shape)) throw new Error(`reshape_as: [${a.shape}] cannot become [${ref.shape}]`);
      return { data: a.data, shape: ref.shape };
    },
    vjp: (g, out) => [reshapeAs(g, out.inputs[0]), null],
    onnx: (e, [x, ref], out) => e.node('Reshape', [x, runtimeShape(e, ref)], [out]),
  },

  transpose: {
    arity: 1,
    shape: ([a], attrs) => {
      const perm = attrs.perm as readonly number[];
      if (perm.length !== a.length || [...perm].sort().some((p, i) => p !== i))
        throw new Error(`transpose: perm [${perm}] does not fit rank ${a.length}`);
      return perm.map((p) => a[p]);
    },
    kernel: ([a], attrs) => K.transpose(a, attrs.perm as number[]),
    vjp: (g, out) => {
      const perm = out.attrs.perm as readonly number[];
      const inverse = perm.map((_p, i) => perm.indexOf(i));
      return [transpose(g, inverse)];
    },
    onnx: (e, [x], out, node) => e.node('Transpose', [x], [out], { perm: [...(node.attrs.perm as number[])] }),
  },

  concat: {
    arity: 'variadic',
    shape: (shapes, attrs) => {
      const axis = attrs.axis as number;
      const first = shapes[0];
      let total = 0;
      for (const s of shapes) {
        if (s.length !== first.length || s.some((d, i) => i !== axis && d !== first[i]))
          throw new Error(`concat: shapes ${shapes.map(shapeToString).join(', ')} differ off axis ${axis}`);
        if (typeof s[axis] !== 'number') throw new Error('concat: the concatenated axis must have a known size');
        total += s[axis] as number;
      }
      return first.map((d, i) => (i === axis ? total : d));
    },
    kernel: (parts, attrs) => K.concatAxis(parts, attrs.axis as number),
    vjp: (g, out) => {
      const axis = out.attrs.axis as number;
      let start = 0;
      return out.inputs.map((x) => {
        const len = x.shape[axis] as number;
        const part = slice(g, axis, start, start + len);
        start += len;
        return part;
      });
    },
    onnx: (e, ins, out, node) => e.node('Concat', [...ins], [out], { axis: node.attrs.axis as number }),
  },

  slice: {
    arity: 1,
    shape: ([a], attrs) => {
      const { axis, start, end } = attrs as { axis: number; start: number; end: number };
      const len = a[axis];
      if (typeof len !== 'number' || start < 0 || end > len || start >= end)
        throw new Error(`slice: [${start}, ${end}) is not within axis ${axis} of ${shapeToString(a)}`);
      return a.map((d, i) => (i === axis ? end - start : d));
    },
    kernel: ([a], attrs) => K.sliceAxis(a, attrs.axis as number, attrs.start as number, attrs.end as number),
    vjp: (g, out) => {
      const { axis, start, end } = out.attrs as { axis: number; start: number; end: number };
      return [pad(g, axis, start, (out.inputs[0].shape[axis] as number) - end)];
    },
    onnx: (e, [x], out, node) => {
      const { axis, start, end } = node.attrs as { axis: number; start: number; end: number };
      e.node('Slice', [x, e.int64s([start]), e.int64s([end]), e.int64s([axis])], [out]);
    },
  },

  pad: {
    // zero padding along one axis
    arity: 1,
    shape: ([a], attrs) => {
      const { axis, before, after } = attrs as { axis: number; before: number; after: number };
      if (typeof a[axis] !== 'number') throw new Error('pad: the padded axis must have a known size');
      return a.map((d, i) => (i === axis ? (d as number) + before + after : d));
    },
    kernel: ([a], attrs) => K.padAxis(a, attrs.axis as number, attrs.before as number, attrs.after as number),
    vjp: (g, out) => {
      const { axis, before } = out.attrs as { axis: number; before: number };
      return [slice(g, axis, before, before + (out.inputs[0].shape[axis] as number))];
    },
    onnx: (e, [x], out, node) => {
      const { axis, before, after } = node.attrs as { axis: number; before: number; after: number };
      const rank = node.shape.length;
      const pads = new Array<number>(2 * rank).fill(0);
      pads[axis] = before;
      pads[rank + axis] = after;
      e.node('Pad', [x, e.int64s(pads)], [out], { mode: 'constant' });
    },
  },

  expand_as: {
    // broadcasts x to the runtime shape of ref (which takes no gradient)
    arity: 2,
    shape: ([a, ref]) => {
      const s = broadcastShapes(a, ref, 'expand_as');
      if (!sameShape(s, ref)) throw new Error(`expand_as: ${shapeToString(a)} does not broadcast to ${shapeToString(ref)}`);
      return ref;
    },
    kernel: ([a, ref]) => K.broadcastTo(a, ref.shape),
    vjp: (g, out) => [sumTo(g, out.inputs[0].shape), null],
    onnx: (e, [x, ref], out) => e.node('Expand', [x, runtimeShape(e, ref)], [out]),
  },

  // Class indices (carried as floats, as every value here) -> one-hot rows of `depth`: what picks the
  // logit whose gradient an explanation follows. Piecewise constant, so no gradient flows through it.
  one_hot: {
    arity: 1,
    shape: ([a], attrs) => [...a, attrs.depth as number],
    kernel: ([a], attrs) => {
      const depth = attrs.depth as number;
      const out = new Float64Array(a.data.length * depth);
      for (let i = 0; i < a.data.length; i++) for (let k = 0; k < depth; k++) out[i * depth + k] = a.data[i] === k ? 1 : 0;
      return K.nd(out, [...a.shape, depth]);
    },
    vjp: () => [null],
    onnx: (e, [x], out, n) => {
      const depth = n.attrs.depth as number;
      const column = e.fresh('column');
      e.node('Unsqueeze', [x, e.int64s([-1])], [column]);
      const equal = e.fresh('equal');
      e.node(
        'Equal',
        [
          column,
          e.floats(
            Array.from({ length: depth }, (_, k) => k),
            [depth],
          ),
        ],
        [equal],
      );
      e.node('Cast', [equal], [out], { to: 1 }); // FLOAT
    },
  },

  // The index of the largest value along the last axis (the first of equal ones), as a float: what
  // lets an explanation graph explain its own top prediction in the run that makes it. Piecewise
  // constant, so no gradient flows through it.
  argmax: {
    arity: 1,
    shape: ([a]) => a.slice(0, -1),
    kernel: ([a]) => {
      const k = a.shape[a.shape.length - 1];
      const out = new Float64Array(a.data.length / k);
      for (let i = 0; i < out.length; i++) {
        let best = 0;
        for (let j = 1; j < k; j++) if (a.data[i * k + j] > a.data[i * k + best]) best = j;
        out[i] = best;
      }
      return K.nd(out, a.shape.slice(0, -1));
    },
    vjp: () => [null],
    onnx: (e, [x], out) => {
      const index = e.fresh('index');
      e.node('ArgMax', [x], [index], { axis: -1, keepdims: 0, select_last_index: 0 });
      e.node('Cast', [index], [out], { to: 1 }); // FLOAT
    },
  },

  // ---- the convolutional tokenizer's ops (images as [batch, channels, height, width]) ----

  relu: unaryOp(
    'Relu',
    (x) => (x > 0 ? x : 0),
    (g, out) => [mul(g, step(out.inputs[0]))],
  ),

  // 1 where x > 0, else 0: ReLU's derivative (0 at 0, as PyTorch). Piecewise constant: no gradient.
  step: {
    arity: 1,
    shape: ([a]) => a,
    kernel: ([a]) => K.unary(a, (x) => (x > 0 ? 1 : 0)),
    vjp: () => [null],
    onnx: (e, [x], out) => {
      const greater = e.fresh('greater');
      e.node('Greater', [x, e.floats([0], [])], [greater]);
      e.node('Cast', [greater], [out], { to: 1 }); // FLOAT
    },
  },

  // Reverses axes of known size (a convolution's gradient runs its kernel flipped).
  flip: {
    arity: 1,
    shape: ([a], attrs) => {
      for (const ax of attrs.axes as number[])
        if (typeof a[ax] !== 'number') throw new Error(`flip: axis ${ax} of ${shapeToString(a)} has no known size`);
      return a;
    },
    kernel: ([a], attrs) => K.flip(a, attrs.axes as number[]),
    vjp: (g, out) => [flip(g, out.attrs.axes as number[])],
    onnx: (e, [x], out, node) => {
      const axes = node.attrs.axes as number[];
      // Slice with step -1 from the last element to before the first (an end of -(size + 1) clamps there).
      const ends = axes.map((ax) => -(node.shape[ax] as number) - 1);
      e.node('Slice', [x, e.int64s(axes.map(() => -1)), e.int64s(ends), e.int64s(axes), e.int64s(axes.map(() => -1))], [out]);
    },
  },

  // Cross-correlation with stride 1 and `pad` zeros on each side, as torch.nn.functional.conv2d:
  // x [B, Ci, H, W] and w [Co, Ci, k, k] give [B, Co, H + 2 pad - k + 1, W + 2 pad - k + 1]. Both
  // gradients: dx is the transposed convolution of the output's gradient (conv2d_input_grad), and dw
  // correlates x with that gradient (conv2dWeightGrad).
  conv2d: {
    arity: 2,
    shape: ([x, w], attrs) => {
      const pad = attrs.pad as number;
      if (x.length !== 4 || w.length !== 4)
        throw new Error(`conv2d: input and weights must be rank 4, got ${shapeToString(x)} and ${shapeToString(w)}`);
      const [, , H, W] = x;
      const [co, ci, kh, kw] = w;
      if (ci !== x[1]) throw new Error(`conv2d: ${shapeToString(x)} has ${x[1]} channels, weights ${shapeToString(w)} expect ${ci}`);
      if ([H, W, kh, kw].some((d) => typeof d !== 'number'))
        throw new Error(`conv2d: spatial sizes must be known, got ${shapeToString(x)} and ${shapeToString(w)}`);
      const [h, wd, k1, k2] = [H, W, kh, kw] as number[];
      if (!Number.isInteger(pad) || pad < 0) throw new Error(`conv2d: padding must be an integer >= 0, got ${pad}`);
      const ho = h + 2 * pad - k1 + 1;
      const wo = wd + 2 * pad - k2 + 1;
      if (ho < 1 || wo < 1) throw new Error(`conv2d: a ${k1}x${k2} kernel does not fit ${shapeToString(x)} with padding ${pad}`);
      return [x[0], co, ho, wo];
    },
    kernel: ([x, w], attrs) => K.conv2d(x, w, attrs.pad as number),
    vjp: (g, out) => {
      const [x, w] = out.inputs;
      const pad = out.attrs.pad as number;
      const k = w.shape[2] as number;
      if (w.shape[3] !== k || pad >= k)
        throw new Error(
          `conv2d: gradients need a square kernel and padding below its side, got ${shapeToString(w.shape)} with padding ${pad}`,
        );
      return [conv2dInputGrad(g, w, pad), conv2dWeightGrad(x, g, k, pad)];
    },
    onnx: (e, ins, out, node) => {
      const p = node.attrs.pad as number;
      e.node('Conv', [...ins], [out], { pads: [p, p, p, p] });
    },
  },

  // conv2d's gradient of the input: g [B, Co, Ho, Wo] and w [Co, Ci, k, k] give [B, Ci, H, W], the
  // convolution of g with the kernel flipped and its channels swapped, padded by k - 1 - pad. In ONNX
  // a ConvTranspose, which takes w as it is; measured with ONNX Runtime's profiler on the CCT
  // tokenizer's second stage (B = 128, 128 -> 32 channels at 16 x 16): 28 ms against 33 ms for that
  // convolution, which unfolds the 128-channel gradient rather than the 32-channel result.
  conv2d_input_grad: {
    arity: 2,
    shape: ([g, w], attrs) => {
      const pad = attrs.pad as number;
      if (g.length !== 4 || w.length !== 4 || g[1] !== w[0])
        throw new Error(`conv2d_input_grad: gradient ${shapeToString(g)} does not match weights ${shapeToString(w)}`);
      const [, , ho, wo] = g as number[];
      const k = w[2] as number;
      return [g[0], w[1], ho + k - 1 - 2 * pad, wo + k - 1 - 2 * pad];
    },
    kernel: ([g, w], attrs) =>
      K.conv2d(g, K.transpose(K.flip(w, [2, 3]), [1, 0, 2, 3]), (w.shape[2] as number) - 1 - (attrs.pad as number)),
    vjp: () => {
      throw new Error('conv2d_input_grad: second derivatives of convolutions are not implemented');
    },
    onnx: (e, ins, out, node) => {
      const p = node.attrs.pad as number;
      e.node('ConvTranspose', [...ins], [out], { pads: [p, p, p, p] });
    },
  },

  // Max over square windows of side `kernel` every `stride` pixels, the borders padded by `pad`
  // (padding never wins), as torch.nn.functional.max_pool2d. The gradient goes to each window's maximum.
  max_pool: {
    arity: 1,
    shape: ([x], attrs) => poolShape(x, attrs),
    kernel: ([x], attrs) => {
      const { index, shape } = K.maxPoolArgmax(x, attrs.kernel as number, attrs.stride as number, attrs.pad as number);
      return K.nd(
        Float64Array.from(index, (i) => x.data[i]),
        shape,
      );
    },
    vjp: (g, out) => [maxPoolGrad(out.inputs[0], g, out.attrs)],
    onnx: (e, [x], out, node) => {
      const { kernel: k, stride: s, pad: p } = node.attrs as { kernel: number; stride: number; pad: number };
      e.node('MaxPool', [x], [out], { kernel_shape: [k, k], strides: [s, s], pads: [p, p, p, p] });
    },
  },

  // max_pool's vector-Jacobian product: g [B, C, Ho, Wo] added into zeros shaped like x at each
  // window's maximum (windows that overlap may add twice). In ONNX: MaxPool's indices, then
  // ScatterElements with reduction "add".
  max_pool_grad: {
    arity: 2,
    shape: ([x, g], attrs) => {
      const pooled = poolShape(x, attrs);
      if (!sameShape(pooled, g))
        throw new Error(`max_pool_grad: gradient ${shapeToString(g)} is not the pooled shape ${shapeToString(pooled)}`);
      return x;
    },
    kernel: ([x, g], attrs) => {
      const { index } = K.maxPoolArgmax(x, attrs.kernel as number, attrs.stride as number, attrs.pad as number);
      const out = new Float64Array(x.data.length);
      index.forEach((i, k) => (out[i] += g.data[k]));
      return K.nd(out, x.shape);
    },
    vjp: () => {
      throw new Error('max_pool_grad: second derivatives of max-pooling are not implemented');
    },
    onnx: (e, [x, g], out, node) => {
      if (!e.maxPoolIndices) return maxPoolGradWithoutIndices(e, x, g, out, node);
      const { kernel: k, stride: s, pad: p } = node.attrs as { kernel: number; stride: number; pad: number };
      const pooled = e.fresh('pooled');
      const indices = e.fresh('indices');
      e.node('MaxPool', [x], [pooled, indices], { kernel_shape: [k, k], strides: [s, s], pads: [p, p, p, p] });
      const flat = (v: string, hint: string) => {
        const f = e.fresh(hint);
        e.node('Reshape', [v, e.int64s([-1])], [f]);
        return f;
      };
      const zeros = e.fresh('zeros');
      e.node('ConstantOfShape', [runtimeShape(e, flat(x, 'x_flat'))], [zeros]); // float 0 by default
      const summed = e.fresh('scattered');
      e.node('ScatterElements', [zeros, flat(indices, 'indices_flat'), flat(g, 'grad_flat')], [summed], { axis: 0, reduction: 'add' });
      e.node('Reshape', [summed, runtimeShape(e, x)], [out]);
    },
  },

  // NOTE: softmax and log-softmax are fused ops rather than exp/sum/div compositions: the fused kernels
  // subtract the row maximum (no overflow for large logits) and ONNX Runtime runs them as one pass.
  softmax: {
    arity: 1,
    shape: ([a]) => a,
    kernel: ([a]) =>
      K.mapRows(a, (src, dst) => {
        let max = -Infinity;
        for (const v of src) max = Math.max(max, v);
        let sum = 0;
        for (let i = 0; i < src.length; i++) sum += dst[i] = Math.exp(src[i] - max);
        for (let i = 0; i < src.length; i++) dst[i] /= sum;
      }),
    vjp: (g, out) => [mul(out, sub(g, reduceSum(mul(g, out), [-1])))],
    onnx: (e, [x], out) => e.node('Softmax', [x], [out], { axis: -1 }),
  },

  log_softmax: {
    arity: 1,
    shape: ([a]) => a,
    kernel: ([a]) =>
      K.mapRows(a, (src, dst) => {
        let max = -Infinity;
        for (const v of src) max = Math.max(max, v);
        let sum = 0;
        for (const v of src) sum += Math.exp(v - max);
        const lse = max + Math.log(sum);
        for (let i = 0; i < src.length; i++) dst[i] = src[i] - lse;
      }),
    vjp: (g, out) => [sub(g, mul(exp(out), reduceSum(g, [-1])))],
    onnx: (e, [x], out) => e.node('LogSoftmax', [x], [out], { axis: -1 }),
  },

  // NOTE: layer norm is fused (inputs x, weight, bias; over the last axis) because ONNX Runtime's
  // LayerNormalization kernel is one pass where the composition is eight; its gradient is composed.
  layer_norm: {
    arity: 3,
    shape: ([x, w, b]) => {
      const d = x[x.length - 1];
      if (w.length !== 1 || b.length !== 1 || w[0] !== d || b[0] !== d)
        throw new Error(`layer_norm: weight ${shapeToString(w)} and bias ${shapeToString(b)} must be [${d}]`);
      return x;
    },
    kernel: ([x, w, b], attrs) => {
      const eps = attrs.eps as number;
      return K.mapRows(x, (src, dst) => {
        const n = src.length;
        let mean = 0;
        for (const v of src) mean += v;
        mean /= n;
        let variance = 0;
        for (const v of src) variance += (v - mean) * (v - mean);
        const rstd = 1 / Math.sqrt(variance / n + eps);
        for (let i = 0; i < n; i++) dst[i] = (src[i] - mean) * rstd * w.data[i] + b.data[i];
      });
    },
    vjp: (g, out) => {
      const [x, w, b] = out.inputs;
      const centered = sub(x, reduceMean(x, [-1]));
      const rstd = pow(add(reduceMean(mul(centered, centered), [-1]), out.attrs.eps as number), -0.5);
      const xhat = mul(centered, rstd);
      const gh = mul(g, w);
      const dx = mul(rstd, sub(sub(gh, reduceMean(gh, [-1])), mul(xhat, reduceMean(mul(gh, xhat), [-1]))));
      return [dx, sumTo(mul(g, xhat), w.shape), sumTo(g, b.shape)];
    },
    onnx: (e, ins, out, node) => e.node('LayerNormalization', [...ins], [out], { axis: -1, epsilon: float(node.attrs.eps as number) }),
  },

  // x [..., k] by a weight held as int8 per output column (attrs q [k, n], scale [n]), the activations
  // quantized to uint8 at run time over the whole tensor, plus a bias [n] when given as a second input:
  // ONNX Runtime's DynamicQuantizeMatMul (trainer/quantize.ts writes it into served graphs). A kernel of
  // integer arithmetic is cheaper than the float product; no gradient flows through the rounding, so
  // explanation graphs stay float.
  quantized_matmul: {
    arity: 'variadic',
    shape: ([x, bias], attrs) => {
      const n = (attrs.scale as Float32Array).length;
      const k = (attrs.q as Int8Array).length / n;
      if (x.length < 2 || x[x.length - 1] !== k)
        throw new Error(`quantized_matmul: the input ${shapeToString(x)} must end in the weight's ${k} rows`);
      if (bias && (bias.length !== 1 || bias[0] !== n)) throw new Error(`quantized_matmul: the bias ${shapeToString(bias)} must be [${n}]`);
      return [...x.slice(0, -1), n];
    },
    kernel: ([x, bias], attrs) => K.quantizedMatmul(x, attrs.q as Int8Array, attrs.scale as Float32Array, bias ?? null),
    vjp: () => {
      throw new Error('quantized_matmul: no gradient flows through int8 rounding (explanation graphs stay float)');
    },
    onnx: (e, [x, bias], out, node) => {
      const scale = node.attrs.scale as Float32Array;
      const n = scale.length;
      const weight = [e.int8s(node.attrs.q as Int8Array, [(node.attrs.q as Int8Array).length / n, n]), e.floats(scale, [n])];
      e.node(QUANTIZED_MATMUL_ONNX, [x, ...weight, e.int8s(new Int8Array(n), [n]), ...(bias ? [bias] : [])], [out], {}, ONNX_RUNTIME);
    },
  },
});

function node(op: string, inputs: readonly Tensor[], attrs: Attrs = {}): Tensor {
  const def = OPS[op];
  if (!def) throw new Error(`unknown op '${op}'`);
  if (def.arity !== 'variadic' && def.arity !== inputs.length) throw new Error(`${op}: takes ${def.arity} inputs, got ${inputs.length}`);
  return makeNode(
    op,
    inputs,
    attrs,
    def.shape(
      inputs.map((t) => t.shape),
      attrs,
    ),
  );
}

// ---- leaves ----

/** A value fed at run time (images, targets, masks). */
export function input(name: string, shape: Shape): Tensor {
  return makeNode('input', [], { name, shape }, shape);
}

/** A trainable parameter: fed at run time in a training step, an initializer in an inference export. */
export function param(name: string, shape: readonly number[]): Tensor {
  return makeNode('param', [], { name, shape }, shape);
}

export function constant(values: ArrayLike<number>, shape: readonly number[]): Tensor {
  if (values.length !== (staticSize(shape) ?? -1)) throw new Error(`constant: ${values.length} values do not fit ${shapeToString(shape)}`);
  return makeNode('const', [], { value: Float64Array.from(values as ArrayLike<number>), shape }, shape);
}

export const scalar = (v: number): Tensor => constant([v], []);

type Operand = Tensor | number;
const lift = (x: Operand): Tensor => (typeof x === 'number' ? scalar(x) : x);

// ---- primitives ----

export const add = (a: Operand, b: Operand) => node('add', [lift(a), lift(b)]);
export const sub = (a: Operand, b: Operand) => node('sub', [lift(a), lift(b)]);
export const mul = (a: Operand, b: Operand) => node('mul', [lift(a), lift(b)]);
export const div = (a: Operand, b: Operand) => node('div', [lift(a), lift(b)]);
export const neg = (a: Tensor) => node('neg', [a]);
export const exp = (a: Tensor) => node('exp', [a]);
export const log = (a: Tensor) => node('log', [a]);
export const tanh = (a: Tensor) => node('tanh', [a]);
export const sqrt = (a: Tensor) => node('sqrt', [a]);
export const erf = (a: Tensor) => node('erf', [a]);
export const pow = (a: Tensor, exponent: number) => node('pow', [a], { exponent });
export const matmul = (a: Tensor, b: Tensor) => node('matmul', [a, b]);
export const reshape = (a: Tensor, shape: readonly number[]) => node('reshape', [a], { shape: [...shape] });
export const reshapeAs = (a: Tensor, ref: Tensor) => (sameShape(a.shape, ref.shape) ? a : node('reshape_as', [a, ref]));
export const transpose = (a: Tensor, perm: readonly number[]) => node('transpose', [a], { perm: [...perm] });
export const concat = (parts: readonly Tensor[], axis: number) =>
  node('concat', parts, { axis: normalizeAxis(axis, parts[0].shape.length, 'concat') });
export const slice = (a: Tensor, axis: number, start: number, end: number) =>
  node('slice', [a], { axis: normalizeAxis(axis, a.shape.length, 'slice'), start, end });
export const pad = (a: Tensor, axis: number, before: number, after: number) =>
  node('pad', [a], { axis: normalizeAxis(axis, a.shape.length, 'pad'), before, after });
export const expandAs = (a: Tensor, ref: Tensor) => (sameShape(a.shape, ref.shape) ? a : node('expand_as', [a, ref]));
export const softmax = (a: Tensor) => node('softmax', [a]);
export const relu = (a: Tensor) => node('relu', [a]);
export const step = (a: Tensor) => node('step', [a]);
export const flip = (a: Tensor, axes: readonly number[]) =>
  node('flip', [a], { axes: axes.map((ax) => normalizeAxis(ax, a.shape.length, 'flip')) });
/** Convolution with stride 1 and `pad` zeros around (x [B, Ci, H, W], w [Co, Ci, k, k]). */
export const conv2d = (x: Tensor, w: Tensor, pad: number) => node('conv2d', [x, w], { pad });
/** Max-pooling over kernel x kernel windows every `stride` pixels, `pad` around (x [B, C, H, W]). */
const conv2dInputGrad = (g: Tensor, w: Tensor, pad: number) => node('conv2d_input_grad', [g, w], { pad });
export const maxPool = (x: Tensor, kernel: number, stride: number, pad: number) => node('max_pool', [x], { kernel, stride, pad });
const maxPoolGrad = (x: Tensor, g: Tensor, attrs: Attrs) =>
  node('max_pool_grad', [x, g], { kernel: attrs.kernel, stride: attrs.stride, pad: attrs.pad });
export const oneHot = (indices: Tensor, depth: number) => node('one_hot', [indices], { depth });
export const argmax = (a: Tensor) => node('argmax', [a]);
export const logSoftmax = (a: Tensor) => node('log_softmax', [a]);
export const layerNorm = (x: Tensor, weight: Tensor, bias: Tensor, eps: number) => node('layer_norm', [x, weight, bias], { eps });
/** x [..., k] by a weight made int8 per output column (K.quantizeColumns: q [k, n], scale [n]), plus an
 *  optional bias [n]. */
export const quantizedMatmul = (x: Tensor, w: { q: Int8Array; scale: Float32Array }, bias?: Tensor) =>
  node('quantized_matmul', bias ? [x, bias] : [x], { q: w.q, scale: w.scale });

const axesFor = (a: Tensor, axes: readonly number[]) =>
  [...new Set(axes.map((ax) => normalizeAxis(ax, a.shape.length, 'reduce')))].sort((x, y) => x - y);

export const squeeze = (a: Tensor, axes: readonly number[]) => node('squeeze', [a], { axes: axesFor(a, axes) });

/** Sum over axes; keepdims as in numpy. */
export function reduceSum(a: Tensor, axes: readonly number[], keepdims = true): Tensor {
  const ax = axesFor(a, axes);
  const s = node('reduce_sum', [a], { axes: ax });
  return keepdims ? s : squeeze(s, ax);
}

export function reduceMean(a: Tensor, axes: readonly number[], keepdims = true): Tensor {
  const ax = axesFor(a, axes);
  const m = node('reduce_mean', [a], { axes: ax });
  return keepdims ? m : squeeze(m, ax);
}

// ---- composites ----

export const transposeLast2 = (a: Tensor) => {
  const r = a.shape.length;
  return transpose(a, [...Array(r - 2).keys(), r - 1, r - 2]);
};

/** Sums a broadcast gradient back to the shape of the operand it was broadcast from. */
export function sumTo(g: Tensor, shape: Shape): Tensor {
  if (sameShape(g.shape, shape)) return g;
  const lead = g.shape.length - shape.length;
  if (lead < 0) throw new Error(`sumTo: ${shapeToString(g.shape)} has fewer dims than ${shapeToString(shape)}`);
  const axes: number[] = [];
  g.shape.forEach((d, i) => {
    if (i < lead || (shape[i - lead] === 1 && d !== 1)) axes.push(i);
  });
  let out = axes.length > 0 ? reduceSum(g, axes) : g;
  if (lead > 0) out = squeeze(out, [...Array(lead).keys()]);
  if (!sameShape(out.shape, shape)) throw new Error(`sumTo: ${shapeToString(g.shape)} does not reduce to ${shapeToString(shape)}`);
  return out;
}

/** The weights' gradient of conv2d(x, w, pad) for the output's gradient g: dw[o, i, u, v] is the sum
 *  over the batch and the output grid of g[b, o, y, x] * xpadded[b, i, y + u, x + v]. Built as the
 *  k * k shifted windows of the padded input side by side ([B, Ci * k * k, Ho * Wo]) and one batched
 *  matrix product with g, summed over the batch. Measured with ONNX Runtime's profiler on the CCT
 *  tokenizer's second stage ([128, 32, 16, 16] -> 128 channels): about 30 ms for the slices, the
 *  product and the sum against 61 ms for one convolution whose channels are the batch and whose
 *  kernel is the whole output grid, as this gradient was built before. */
export function conv2dWeightGrad(x: Tensor, g: Tensor, k: number, padding: number): Tensor {
  const [ci, co, ho, wo] = [x.shape[1], g.shape[1], g.shape[2], g.shape[3]] as number[];
  const xp = padding > 0 ? pad(pad(x, 2, padding, padding), 3, padding, padding) : x;
  const windows: Tensor[] = [];
  for (let u = 0; u < k; u++) {
    const rows = slice(xp, 2, u, u + ho);
    for (let v = 0; v < k; v++) windows.push(reshape(slice(rows, 3, v, v + wo), [0, ci, 1, ho * wo]));
  }
  const shifted = reshape(concat(windows, 2), [0, ci * k * k, ho * wo]);
  const perImage = matmul(reshape(g, [0, co, ho * wo]), transposeLast2(shifted)); // [B, Co, Ci * k * k]
  return reshape(reduceSum(perImage, [0], false), [co, ci, k, k]);
}

const GELU_C = Math.sqrt(2 / Math.PI);
const GELU_A = 0.044715; // the cube's coefficient

/** GELU, tanh approximation (as the seed's NewGELUActivation): the gelu_tanh primitive, whose
 *  gradient reads only x, so that ONNX Runtime fuses its forward into one kernel in training too. */
export const gelu = (x: Tensor) => node('gelu_tanh', [x]);
const geluTanhGrad = (x: Tensor, g: Tensor) => node('gelu_tanh_grad', [x, g]);

/** d/dx of the tanh GELU: s + x s (1 - s) 2C (1 + 3A x^2), s = sigmoid(2C (x + A x^3)), A = 0.044715. */
function geluTanhDerivative(x: number): number {
  const s = 1 / (1 + Math.exp(-2 * GELU_C * (x + GELU_A * x * x * x)));
  return s + x * s * (1 - s) * 2 * GELU_C * (1 + 3 * GELU_A * x * x);
}

/** GELU, exact: 0.5 x (1 + erf(x / sqrt 2)) (torch's nn.GELU, transformers' "gelu"). */
export function geluExact(x: Tensor): Tensor {
  return mul(mul(0.5, x), add(1, erf(mul(x, Math.SQRT1_2))));
}

/** Mean over the batch of the cross-entropy between logits [B, C] and target distributions [B, C]
 *  (one-hot, label-smoothed or mixed). */
export function crossEntropy(logits: Tensor, targets: Tensor): Tensor {
  const perExample = neg(reduceSum(mul(targets, logSoftmax(logits)), [-1], false));
  return reduceMean(perExample, [0], false);
}

/** Dropout as a multiplication by a mask fed at run time (0 or 1/(1-p) per element): the trainer draws
 *  the masks from its own seeded generator, so a resumed run replays them exactly. */
export function dropout(x: Tensor, mask: Tensor | null): Tensor {
  return mask ? mul(x, mask) : x;
}

// ---- shape helpers ----

function inferReshape(input: Shape, target: readonly number[]): Dim[] {
  const out: Dim[] = target.map((d, i) => {
    if (d === 0) {
      if (i >= input.length) throw new Error(`reshape: 0 at index ${i} copies a dim that ${shapeToString(input)} lacks`);
      return input[i];
    }
    return d;
  });
  const unknown = out.filter((d) => d === -1).length;
  if (unknown > 1) throw new Error('reshape: at most one -1');
  // Symbolic dims are products (a coefficient times symbols: '12*batch'); the symbols must balance.
  const factorsIn = input.map(factorDim);
  const factorsOut = out.filter((d) => d !== -1).map(factorDim);
  const numIn = factorsIn.reduce((p, f) => p * f.coef, 1);
  const numOut = factorsOut.reduce((p, f) => p * f.coef, 1);
  const leftover = factorsIn.flatMap((f) => f.symbols);
  for (const s of factorsOut.flatMap((f) => f.symbols)) {
    const k = leftover.indexOf(s);
    if (k < 0) throw new Error(`reshape: ${shapeToString(input)} to [${target}] invents dim ${s}`);
    leftover.splice(k, 1);
  }
  if (unknown === 1) {
    if (numOut === 0 || numIn % numOut !== 0) throw new Error(`reshape: ${shapeToString(input)} cannot become [${target}]`);
    const inferred = productDim(numIn / numOut, leftover);
    return out.map((d) => (d === -1 ? inferred : d));
  }
  if (leftover.length > 0 || numIn !== numOut) throw new Error(`reshape: ${shapeToString(input)} cannot become [${target}]`);
  return out;
}
