// One entry per ONNX op type that import reads (opsets 13-18): each builds the op's meaning out of the
// autograd's own ops (Gemm is a transpose, a matmul, a scale and an add; Split is slices; a patch Conv
// is patchify and a matmul), or folds it when every input is known while importing (onnx-fold.ts).
// An op missing here is an error naming it; the op table gains only true primitives (Erf).

import { type Dim, type Tensor, broadcastShapes, canonicalDim, mulDims, normalizeAxis, shapeToString } from './graph.js';
import { type DecodedAttr, type INodeProto, type ITensorProto, readTensor, dimsOf } from './onnx-proto.js';
import {
  FOLD_BINARY,
  FOLD_UNARY,
  type Known,
  castKnown,
  clampSlice,
  concatKnown,
  gatherKnown,
  isKnown,
  known,
  numbers,
  rangeKnown,
  reshapeKnown,
  sliceKnown,
  unaryKnown,
  whereKnown,
} from './onnx-fold.js';
import * as O from './ops.js';

export type Value = Tensor | Known;

/** What a lowering sees of its node. */
export interface LowerContext {
  readonly node: INodeProto;
  readonly op: string;
  readonly opset: number;
  /** Inputs given (optional ones may be left out, as '' or by count). */
  readonly arity: number;
  has(i: number): boolean;
  attr<T extends DecodedAttr>(name: string, fallback?: T): T;
  value(i: number): Value;
  /** Input i as a graph tensor (a known value becomes a constant). */
  tensor(i: number): Tensor;
  /** Input i as a value known while importing; fails naming what it is for. */
  known(i: number, what: string): Known;
  /** A tensor whose runtime shape carries the symbol, and the axis where it does (for Expand). */
  witness(symbol: string): { tensor: Tensor; axis: number } | undefined;
}

export type Lowering = (c: LowerContext) => Value | Value[];

const TO: Record<number, Known['dtype']> = {
  1: 'float',
  10: 'float',
  11: 'float',
  16: 'float',
  6: 'int',
  7: 'int',
  2: 'int',
  3: 'int',
  4: 'int',
  5: 'int',
  12: 'int',
  13: 'int',
  9: 'bool',
};

const sameDim = (a: Dim, b: Dim) => canonicalDim(a) === canonicalDim(b);

/** x reshaped to dims that may be symbolic: a symbol where x has it at the same index is copied
 *  (0), another becomes the one inferred dim (-1); the result is checked against what was asked. */
export function reshapeTo(x: Tensor, dims: readonly Dim[]): Tensor {
  let inferred = dims.filter((d) => d === -1).length;
  const target = dims.map((d, i) => {
    if (typeof d === 'number') return d;
    if (i < x.shape.length && sameDim(x.shape[i], d)) return 0;
    inferred++;
    return -1;
  });
  if (inferred > 1) throw new Error(`cannot reshape ${shapeToString(x.shape)} to [${dims.join(', ')}]: more than one dim to infer`);
  const out = O.reshape(x, target);
  dims.forEach((d, i) => {
    if (d !== -1 && d !== 0 && !sameDim(out.shape[i], d))
      throw new Error(`reshape of ${shapeToString(x.shape)} to [${dims.join(', ')}] gave ${shapeToString(out.shape)}`);
  });
  return out;
}

/** A tensor of the runtime shape `dims` (zeros), for expand_as: the symbolic dims are measured on the
 *  tensor that carries them (the image input), the others are constants. */
function shapedLike(c: LowerContext, dims: readonly Dim[]): Tensor {
  const statics = dims.map((d) => (typeof d === 'number' ? d : 1));
  let ref: Tensor = O.constant(new Float64Array(statics.reduce((a, b) => a * b, 1)), statics);
  dims.forEach((d, i) => {
    if (typeof d === 'number') return;
    const w = c.witness(d);
    if (!w) throw new Error(`cannot expand to the symbolic dim ${d}`);
    let t = w.tensor;
    t.shape.forEach((_s, ax) => {
      if (ax !== w.axis) t = O.slice(t, ax, 0, 1);
    });
    const place = dims.map((_e, j) => (j === i ? -1 : 1));
    ref = O.add(ref, O.mul(O.reshape(t, place), 0)); // (1, .., d, .., 1) zeros
  });
  return ref;
}

function expandTo(c: LowerContext, x: Tensor, dims: readonly Dim[]): Tensor {
  const out = broadcastShapes(x.shape, dims, 'Expand');
  if (out.length === x.shape.length && out.every((d, i) => d === x.shape[i])) return x;
  return O.expandAs(x, shapedLike(c, out));
}

const axesAttrOrInput = (c: LowerContext, inputIndex: number, fromOpset: number): number[] | undefined => {
  if (c.opset >= fromOpset) return c.has(inputIndex) ? numbers(c.known(inputIndex, 'axes'), 'axes') : undefined;
  const a = c.attr<number[]>('axes', []);
  return a.length > 0 ? a : undefined;
};

function binary(op: string, build: (a: Tensor, b: Tensor) => Tensor): Lowering {
  return (c) => {
    const [a, b] = [c.value(0), c.value(1)];
    if (isKnown(a) && isKnown(b)) return FOLD_BINARY[op](a, b);
    return build(c.tensor(0), c.tensor(1));
  };
}

function unary(op: string, build: (a: Tensor) => Tensor): Lowering {
  return (c) => {
    const a = c.value(0);
    if (isKnown(a)) return unaryKnown(a, FOLD_UNARY[op]);
    return build(a);
  };
}

const foldOnly =
  (op: string, f: (c: LowerContext) => Value): Lowering =>
  (c) => {
    for (let i = 0; i < c.arity; i++)
      if (c.has(i) && !isKnown(c.value(i)))
        throw new Error(
          `${op} is imported only on values known while importing (shape arithmetic), and input ${i} is computed from the image`,
        );
    return f(c);
  };

function knownFromTensor(t: ITensorProto): Known {
  const v = readTensor(t, '.');
  return known(v.kind === 'float' ? 'float' : t.dataType === 9 ? 'bool' : 'int', dimsOf(t), Array.from(v.data));
}

function reduce(build: (x: Tensor, axes: number[], keep: boolean) => Tensor, axesInputFrom: number): Lowering {
  return (c) => {
    const x = c.tensor(0);
    const keep = c.attr<number>('keepdims', 1) === 1;
    let axes = axesAttrOrInput(c, 1, axesInputFrom);
    if (!axes || axes.length === 0) {
      if (c.attr<number>('noop_with_empty_axes', 0) === 1) return x;
      axes = [...x.shape.keys()];
    }
    return build(x, axes, keep);
  };
}

/** Conv as the autograd has it: a patch embedding (kernel = stride, no padding: patchify + matmul, as
 *  the ViT's own) or a stride-1 convolution with even padding. */
function conv(c: LowerContext): Tensor {
  const x = c.tensor(0);
  const w = c.tensor(1);
  if (x.shape.length !== 4 || w.shape.length !== 4)
    throw new Error(`only 2-D convolutions are imported, got ${shapeToString(x.shape)} * ${shapeToString(w.shape)}`);
  const [co, ci, kh, kw] = w.shape as number[];
  const kernel = c.attr<number[]>('kernel_shape', [kh, kw]);
  const strides = c.attr<number[]>('strides', [1, 1]);
  const pads = c.attr<number[]>('pads', [0, 0, 0, 0]);
  const dilations = c.attr<number[]>('dilations', [1, 1]);
  const group = c.attr<number>('group', 1);
  const autoPad = c.attr<string>('auto_pad', 'NOTSET');
  if (group !== 1 || dilations.some((d) => d !== 1) || (autoPad !== 'NOTSET' && autoPad !== 'VALID'))
    throw new Error(`Conv with group ${group}, dilations [${dilations}], auto_pad ${autoPad} is not imported (group 1, no dilation)`);
  let y: Tensor;
  if (strides[0] === kernel[0] && strides[1] === kernel[1] && pads.every((p) => p === 0)) {
    const [, , h, wd] = x.shape as [Dim, number, number, number];
    if (h % kh !== 0 || wd % kw !== 0) throw new Error(`a patch Conv of ${kh}x${kw} must tile the ${h}x${wd} input`);
    const [gh, gw] = [h / kh, wd / kw];
    let p = O.reshape(x, [0, ci, gh, kh, gw, kw]); // (B, C, rows, kh, cols, kw)
    p = O.transpose(p, [0, 2, 4, 1, 3, 5]); // (B, rows, cols, C, kh, kw)
    p = O.reshape(p, [0, gh * gw, ci * kh * kw]); // (B, patches, C*kh*kw)
    const flat = O.reshape(w, [co, ci * kh * kw]); // (Co, C*kh*kw)
    y = O.matmul(p, O.transposeLast2(flat)); // (B, patches, Co)
    if (c.has(2)) y = O.add(y, c.tensor(2));
    y = O.transpose(y, [0, 2, 1]); // (B, Co, patches)
    return O.reshape(y, [0, co, gh, gw]); // (B, Co, rows, cols)
  }
  const even = pads.every((p) => p === pads[0]);
  if (strides.every((s) => s === 1) && even && kh === kw) {
    y = O.conv2d(x, w, pads[0]);
    if (c.has(2)) y = O.add(y, O.reshape(c.tensor(2), [co, 1, 1]));
    return y;
  }
  throw new Error(
    `Conv with kernel [${kernel}], strides [${strides}], pads [${pads}] is ` +
      `not imported (a patch embedding with kernel = stride, or stride 1 ` +
      `with even padding)`,
  );
}

function gemm(c: LowerContext): Tensor {
  let a = c.tensor(0);
  let b = c.tensor(1);
  if (c.attr<number>('transA', 0) === 1) a = O.transpose(a, [1, 0]);
  if (c.attr<number>('transB', 0) === 1) b = O.transpose(b, [1, 0]);
  const alpha = c.attr<number>('alpha', 1);
  const beta = c.attr<number>('beta', 1);
  let y = O.matmul(a, b);
  if (alpha !== 1) y = O.mul(y, alpha);
  if (c.has(2)) {
    const bias = c.tensor(2);
    y = O.add(y, beta === 1 ? bias : O.mul(bias, beta));
  }
  return y;
}

function softmax(c: LowerContext): Tensor {
  const x = c.tensor(0);
  const rank = x.shape.length;
  const axis = normalizeAxis(c.attr<number>('axis', -1), rank, 'Softmax');
  if (axis === rank - 1) return O.softmax(x);
  const perm = [...x.shape.keys()];
  [perm[axis], perm[rank - 1]] = [perm[rank - 1], perm[axis]];
  return O.transpose(O.softmax(O.transpose(x, perm)), perm);
}

function layerNormalization(c: LowerContext): Tensor {
  const x = c.tensor(0);
  const axis = normalizeAxis(c.attr<number>('axis', -1), x.shape.length, 'LayerNormalization');
  if (axis !== x.shape.length - 1)
    throw new Error(`LayerNormalization over axes ${axis}.. of ${shapeToString(x.shape)} is not imported (the last axis only)`);
  const d = x.shape[axis] as number;
  const scale = c.tensor(1);
  const bias = c.has(2) ? c.tensor(2) : O.constant(new Float64Array(d), [d]);
  return O.layerNorm(x, scale, bias, c.attr<number>('epsilon', 1e-5));
}

function slice(c: LowerContext): Value {
  const data = c.value(0);
  const starts = numbers(c.known(1, 'starts'), 'Slice starts');
  const ends = numbers(c.known(2, 'ends'), 'Slice ends');
  const shape = isKnown(data) ? data.shape : data.shape;
  const axes = c.has(3) ? numbers(c.known(3, 'axes'), 'Slice axes') : starts.map((_s, i) => i);
  const steps = c.has(4) ? numbers(c.known(4, 'steps'), 'Slice steps') : starts.map(() => 1);
  let v: Value = data;
  axes.forEach((ax0, i) => {
    const ax = normalizeAxis(ax0, shape.length, 'Slice');
    const size = shape[ax];
    if (typeof size !== 'number') {
      if (starts[i] === 0 && ends[i] >= 2 ** 31 - 1 && steps[i] === 1) return; // the whole symbolic axis
      throw new Error(`cannot slice the symbolic axis ${ax} (${size}) of ${shapeToString(shape)}`);
    }
    const [s, e] = clampSlice(starts[i], ends[i], steps[i], size);
    if (isKnown(v)) {
      v = sliceKnown(v, ax, s, e, steps[i]);
      return;
    }
    if (steps[i] === 1) {
      if (s === 0 && e === size) return;
      if (e <= s) throw new Error(`an empty slice [${s}, ${e}) of axis ${ax} is not imported`);
      v = O.slice(v, ax, s, e);
      return;
    }
    if (steps[i] === -1 && s === size - 1 && e === -1) {
      v = O.flip(v, [ax]);
      return;
    }
    throw new Error(`Slice with step ${steps[i]} is not imported (steps 1, and -1 over a whole axis)`);
  });
  return v;
}

function gather(c: LowerContext): Value {
  const data = c.value(0);
  const indices = c.known(1, 'indices');
  const rank = isKnown(data) ? data.shape.length : data.shape.length;
  const axis = normalizeAxis(c.attr<number>('axis', 0), rank, 'Gather');
  if (isKnown(data)) return gatherKnown(data, indices, axis);
  const size = data.shape[axis];
  if (typeof size !== 'number') throw new Error(`cannot gather along the symbolic axis ${axis} of ${shapeToString(data.shape)}`);
  const idx = numbers(indices, 'Gather indices').map((i) => (i < 0 ? i + size : i));
  if (idx.some((i) => i < 0 || i >= size)) throw new Error(`an index is outside axis ${axis} of ${shapeToString(data.shape)}`);
  if (indices.shape.length === 0) return O.squeeze(O.slice(data, axis, idx[0], idx[0] + 1), [axis]);
  if (indices.shape.length !== 1) throw new Error(`Gather with ${indices.shape.length}-D indices on a tensor is not imported`);
  const parts = idx.map((i) => O.slice(data, axis, i, i + 1));
  return parts.length === 1 ? parts[0] : O.concat(parts, axis);
}

function split(c: LowerContext): Value[] {
  const x = c.tensor(0);
  const axis = normalizeAxis(c.attr<number>('axis', 0), x.shape.length, 'Split');
  const size = x.shape[axis];
  if (typeof size !== 'number') throw new Error(`cannot split the symbolic axis ${axis} of ${shapeToString(x.shape)}`);
  const count = (c.node.output ?? []).length;
  let sizes: number[];
  if (c.opset >= 13 && c.has(1)) sizes = numbers(c.known(1, 'split'), 'Split sizes');
  else if (c.opset < 13 && c.attr<number[]>('split', []).length > 0) sizes = c.attr<number[]>('split');
  else {
    const n = c.opset >= 18 ? c.attr<number>('num_outputs', count) : count;
    const each = Math.ceil(size / n);
    sizes = Array.from({ length: n }, (_, i) => Math.min(each, size - i * each));
  }
  if (sizes.reduce((a, b) => a + b, 0) !== size) throw new Error(`split sizes [${sizes}] do not add up to ${size}`);
  let start = 0;
  return sizes.map((n) => {
    const part = O.slice(x, axis, start, start + n);
    start += n;
    return part;
  });
}

const shapeOf = (v: Value): readonly Dim[] => (isKnown(v) ? v.shape : v.shape);

export const LOWERINGS: Readonly<Record<string, Lowering>> = Object.freeze({
  // ---- passing values on ----
  Identity: (c) => c.value(0),
  Dropout: (c) => {
    if ((c.node.output ?? []).length > 1 && c.node.output![1] !== '') throw new Error("Dropout's mask output is not imported");
    return c.value(0);
  },
  Constant: (c) => {
    const a = c.node.attribute?.[0];
    if (!a) throw new Error('a Constant without a value');
    const v = c.attr<number | number[]>(a.name!);
    if (a.name === 'value') return knownFromTensor(c.attr<ITensorProto>('value'));
    if (a.name === 'value_float') return known('float', [], [v as number]);
    if (a.name === 'value_int') return known('int', [], [v as number]);
    if (a.name === 'value_floats') return known('float', [(v as number[]).length], v as number[]);
    if (a.name === 'value_ints') return known('int', [(v as number[]).length], v as number[]);
    throw new Error(`a Constant's ${a.name} is not imported`);
  },
  Cast: (c) => {
    const to = TO[c.attr<number>('to')];
    if (!to) throw new Error(`Cast to type ${c.attr<number>('to')} is not imported`);
    const v = c.value(0);
    if (isKnown(v)) return castKnown(v, to);
    if (to !== 'float') throw new Error('a tensor computed from the image can only be cast to a float type');
    return v;
  },

  // ---- shape arithmetic (folded) ----
  Shape: (c) => {
    const dims = shapeOf(c.value(0));
    const rank = dims.length;
    const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + rank : v, 0), rank);
    const start = clamp(c.attr<number>('start', 0));
    const end = clamp(c.attr<number>('end', rank));
    const picked = dims.slice(start, end);
    return known('int', [picked.length], picked);
  },
  Size: (c) => {
    const dims = shapeOf(c.value(0));
    return known('int', [], [dims.reduce<Dim>((a, b) => mulDims(a, b), 1)]);
  },
  ConstantOfShape: foldOnly('ConstantOfShape', (c) => {
    const shape = numbers(c.known(0, 'shape'), 'ConstantOfShape shape');
    const fill = c.node.attribute?.some((a) => a.name === 'value')
      ? knownFromTensor(c.attr<ITensorProto>('value'))
      : known('float', [1], [0]);
    return known(fill.dtype, shape, new Array(shape.reduce((a, b) => a * b, 1)).fill(fill.values[0]));
  }),
  Equal: foldOnly('Equal', (c) => FOLD_BINARY.Equal(c.known(0, 'a'), c.known(1, 'b'))),
  Less: foldOnly('Less', (c) => FOLD_BINARY.Less(c.known(0, 'a'), c.known(1, 'b'))),
  Greater: foldOnly('Greater', (c) => FOLD_BINARY.Greater(c.known(0, 'a'), c.known(1, 'b'))),
  Not: foldOnly('Not', (c) => unaryKnown(c.known(0, 'x'), FOLD_UNARY.Not)),
  Where: foldOnly('Where', (c) => whereKnown(c.known(0, 'condition'), c.known(1, 'x'), c.known(2, 'y'))),
  Range: foldOnly('Range', (c) => rangeKnown(c.known(0, 'start'), c.known(1, 'limit'), c.known(2, 'delta'))),
  Max: foldOnly('Max', (c) => FOLD_BINARY.Max(c.known(0, 'a'), c.known(1, 'b'))),
  Min: foldOnly('Min', (c) => FOLD_BINARY.Min(c.known(0, 'a'), c.known(1, 'b'))),

  // ---- arithmetic ----
  Add: binary('Add', O.add),
  Sub: binary('Sub', O.sub),
  Mul: binary('Mul', O.mul),
  Div: binary('Div', O.div),
  Pow: (c) => {
    const base = c.value(0);
    const e = c.known(1, 'exponent');
    if (isKnown(base)) return FOLD_BINARY.Pow(base, e);
    const [exponent, ...rest] = numbers(e, 'Pow exponent');
    if (rest.some((r) => r !== exponent)) throw new Error('Pow with an exponent that varies by element is not imported');
    return O.pow(base, exponent);
  },
  Neg: unary('Neg', O.neg),
  Sqrt: unary('Sqrt', O.sqrt),
  Exp: unary('Exp', O.exp),
  Log: unary('Log', O.log),
  Tanh: unary('Tanh', O.tanh),
  Erf: unary('Erf', O.erf),
  Relu: unary('Relu', O.relu),
  Reciprocal: unary('Reciprocal', (x) => O.div(1, x)),
  Sigmoid: (c) => O.div(1, O.add(1, O.exp(O.neg(c.tensor(0))))),
  MatMul: (c) => O.matmul(c.tensor(0), c.tensor(1)),
  Gemm: gemm,
  Conv: conv,
  Softmax: softmax,
  LayerNormalization: layerNormalization,
  ReduceMean: reduce((x, axes, keep) => O.reduceMean(x, axes, keep), 18),
  ReduceSum: reduce((x, axes, keep) => O.reduceSum(x, axes, keep), 13),

  // ---- moving values around ----
  Reshape: (c) => {
    const data = c.value(0);
    const shape = c.known(1, 'shape').values as Dim[];
    if (c.attr<number>('allowzero', 0) === 1 && shape.includes(0))
      throw new Error('Reshape with allowzero and a 0 in the shape is not imported');
    if (isKnown(data)) {
      const size = data.values.length;
      const dims = shape.map((d, i) => (d === 0 ? data.shape[i] : (d as number)));
      const rest = dims.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
      return reshapeKnown(
        data,
        dims.map((d) => (d === -1 ? size / rest : d)),
      );
    }
    return reshapeTo(data, shape);
  },
  Flatten: (c) => {
    const x = c.tensor(0);
    const axis = c.attr<number>('axis', 1);
    const a = axis < 0 ? axis + x.shape.length : axis;
    const prod = (ds: readonly Dim[]) => ds.reduce<Dim>((p, d) => mulDims(p, d), 1);
    return reshapeTo(x, [prod(x.shape.slice(0, a)), prod(x.shape.slice(a))]);
  },
  Transpose: (c) => {
    const x = c.tensor(0);
    const perm = c.attr<number[]>('perm', [...x.shape.keys()].reverse());
    return O.transpose(x, perm);
  },
  Squeeze: (c) => {
    const v = c.value(0);
    const dims = shapeOf(v);
    const axes = (axesAttrOrInput(c, 1, 13) ?? dims.flatMap((d, i) => (d === 1 ? [i] : []))).map((a) =>
      normalizeAxis(a, dims.length, 'Squeeze'),
    );
    if (isKnown(v))
      return reshapeKnown(
        v,
        v.shape.filter((_d, i) => !axes.includes(i)),
      );
    return O.squeeze(v, axes);
  },
  Unsqueeze: (c) => {
    const v = c.value(0);
    const dims = shapeOf(v);
    const axes = axesAttrOrInput(c, 1, 13);
    if (!axes) throw new Error('Unsqueeze without axes');
    const rank = dims.length + axes.length;
    const at = axes.map((a) => normalizeAxis(a, rank, 'Unsqueeze'));
    const out: Dim[] = [];
    let k = 0;
    for (let i = 0; i < rank; i++) out.push(at.includes(i) ? 1 : dims[k++]);
    if (isKnown(v)) return reshapeKnown(v, out as number[]);
    return reshapeTo(v, out);
  },
  Concat: (c) => {
    const parts = Array.from({ length: c.arity }, (_, i) => c.value(i));
    const rank = shapeOf(parts[0]).length;
    const axis = normalizeAxis(c.attr<number>('axis'), rank, 'Concat');
    if (parts.every(isKnown)) return concatKnown(parts as Known[], axis);
    const tensors = parts.map((_p, i) => c.tensor(i)).filter((t) => t.shape[axis] !== 0);
    return tensors.length === 1 ? tensors[0] : O.concat(tensors, axis);
  },
  Expand: (c) => expandTo(c, c.tensor(0), c.known(1, 'shape').values as Dim[]),
  Gather: gather,
  Slice: slice,
  Split: split,
});
