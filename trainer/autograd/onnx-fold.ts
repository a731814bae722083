// Values an imported ONNX graph knows before it runs: constants, initializers of integer type, and the
// shape arithmetic exporters wrap around every Reshape and Expand (Shape -> Gather -> Unsqueeze ->
// Concat -> Reshape). They are folded while importing, before any node of the autograd graph exists;
// a symbolic dim (the batch) is carried through as a product of symbols ('2*batch_size'), so the
// graph that comes out still takes any batch.

import { type Dim, canonicalDim, factorDim, mulDims, productDim } from './graph.js';
import { broadcastNumeric, erf, stridesOf } from './ndarray.js';

export type Scalar = number | string; // a string: a symbolic dim (a product, as graph.ts writes them)

export interface Known {
  readonly known: true;
  readonly dtype: 'float' | 'int' | 'bool';
  readonly shape: readonly number[];
  readonly values: readonly Scalar[];
}

export function known(dtype: Known['dtype'], shape: readonly number[], values: readonly Scalar[]): Known {
  const size = shape.reduce((a, b) => a * b, 1);
  if (values.length !== size) throw new Error(`a known value of shape [${shape}] needs ${size} values, got ${values.length}`);
  return Object.freeze({ known: true as const, dtype, shape: [...shape], values: [...values] });
}

export const isKnown = (v: unknown): v is Known => typeof v === 'object' && v !== null && (v as Known).known === true;

/** The value as plain numbers; throws naming `what` when a dim is symbolic. */
export function numbers(k: Known, what: string): number[] {
  return k.values.map((v) => {
    if (typeof v !== 'number') throw new Error(`${what} depends on the symbolic dim ${v}, and must be a number here`);
    return v;
  });
}

const symbolic = (v: Scalar): v is string => typeof v === 'string';

function addScalar(a: Scalar, b: Scalar): Scalar {
  if (!symbolic(a) && !symbolic(b)) return a + b;
  if (b === 0) return a;
  if (a === 0) return b;
  throw new Error(`cannot add ${a} and ${b} while importing`);
}

function subScalar(a: Scalar, b: Scalar): Scalar {
  if (!symbolic(a) && !symbolic(b)) return a - b;
  if (b === 0) return a;
  if (a === b) return 0;
  throw new Error(`cannot subtract ${b} from ${a} while importing`);
}

function mulScalar(a: Scalar, b: Scalar): Scalar {
  if (!symbolic(a) && !symbolic(b)) return a * b;
  if ([a, b].some((v) => typeof v === 'number' && !Number.isInteger(v))) throw new Error(`cannot multiply ${a} by ${b} while importing`);
  return mulDims(a as Dim, b as Dim);
}

function divScalar(a: Scalar, b: Scalar, integer: boolean): Scalar {
  if (!symbolic(a) && !symbolic(b)) {
    if (!integer) return a / b;
    if (b === 0) throw new Error('integer division by zero while importing');
    return Math.trunc(a / b);
  }
  const x = factorDim(a as Dim);
  const y = factorDim(b as Dim);
  const rest = [...x.symbols];
  for (const s of y.symbols) {
    const k = rest.indexOf(s);
    if (k < 0) throw new Error(`cannot divide ${a} by ${b} while importing`);
    rest.splice(k, 1);
  }
  if (y.coef === 0 || x.coef % y.coef !== 0) throw new Error(`cannot divide ${a} by ${b} while importing`);
  return productDim(x.coef / y.coef, rest);
}

/** A symbolic dim is a size: never negative, so never equal to -1 (exporters test dims against -1). */
function equalScalar(a: Scalar, b: Scalar): boolean {
  if (!symbolic(a) && !symbolic(b)) return a === b;
  if (symbolic(a) && symbolic(b)) return canonicalDim(a) === canonicalDim(b);
  const n = (symbolic(a) ? b : a) as number;
  if (n < 0 || !Number.isInteger(n)) return false;
  throw new Error(`cannot compare the symbolic dim ${symbolic(a) ? a : b} with ${n} while importing`);
}

function broadcast(a: Known, b: Known, f: (x: Scalar, y: Scalar) => Scalar, dtype: Known['dtype']): Known {
  const shape = broadcastNumeric(a.shape, b.shape);
  const out: Scalar[] = [];
  const sa = stretched(a.shape, shape);
  const sb = stretched(b.shape, shape);
  const strides = stridesOf(shape);
  const size = shape.reduce((p, d) => p * d, 1);
  for (let i = 0; i < size; i++) {
    let ia = 0;
    let ib = 0;
    let rest = i;
    for (let d = 0; d < shape.length; d++) {
      const idx = Math.floor(rest / strides[d]);
      rest -= idx * strides[d];
      ia += idx * sa[d];
      ib += idx * sb[d];
    }
    out.push(f(a.values[ia], b.values[ib]));
  }
  return known(dtype, shape, out);
}

/** Strides of `shape` inside the broadcast `outShape`: 0 on stretched axes. */
function stretched(shape: readonly number[], outShape: readonly number[]): number[] {
  const own = stridesOf(shape);
  const lead = outShape.length - shape.length;
  return outShape.map((_d, i) => (i < lead || shape[i - lead] === 1 ? 0 : own[i - lead]));
}

const resultType = (a: Known, b: Known): Known['dtype'] => (a.dtype === 'float' || b.dtype === 'float' ? 'float' : 'int');

export const FOLD_BINARY: Readonly<Record<string, (a: Known, b: Known) => Known>> = Object.freeze({
  Add: (a, b) => broadcast(a, b, addScalar, resultType(a, b)),
  Sub: (a, b) => broadcast(a, b, subScalar, resultType(a, b)),
  Mul: (a, b) => broadcast(a, b, mulScalar, resultType(a, b)),
  Div: (a, b) => broadcast(a, b, (x, y) => divScalar(x, y, resultType(a, b) === 'int'), resultType(a, b)),
  Pow: (a, b) => broadcast(a, b, (x, y) => plain(x) ** plain(y), a.dtype),
  Equal: (a, b) => broadcast(a, b, (x, y) => (equalScalar(x, y) ? 1 : 0), 'bool'),
  Less: (a, b) => broadcast(a, b, (x, y) => (plain(x) < plain(y) ? 1 : 0), 'bool'),
  Greater: (a, b) => broadcast(a, b, (x, y) => (plain(x) > plain(y) ? 1 : 0), 'bool'),
  Max: (a, b) => broadcast(a, b, (x, y) => Math.max(plain(x), plain(y)), resultType(a, b)),
  Min: (a, b) => broadcast(a, b, (x, y) => Math.min(plain(x), plain(y)), resultType(a, b)),
});

export const FOLD_UNARY: Readonly<Record<string, (x: number) => number>> = Object.freeze({
  Neg: (x) => -x,
  Sqrt: Math.sqrt,
  Exp: Math.exp,
  Log: Math.log,
  Tanh: Math.tanh,
  Erf: erf,
  Reciprocal: (x) => 1 / x,
  Relu: (x) => Math.max(0, x),
  Abs: Math.abs,
  Floor: Math.floor,
  Ceil: Math.ceil,
  Not: (x) => (x ? 0 : 1),
});

function plain(v: Scalar): number {
  if (symbolic(v)) throw new Error(`the symbolic dim ${v} cannot take part in this arithmetic while importing`);
  return v;
}

export function unaryKnown(k: Known, f: (x: number) => number): Known {
  return known(
    k.dtype === 'bool' ? 'bool' : k.dtype,
    k.shape,
    k.values.map((v) => f(plain(v))),
  );
}

export function whereKnown(cond: Known, a: Known, b: Known): Known {
  const ab = broadcast(a, b, (x) => x, resultType(a, b)); // the shape of a and b together
  const pick = broadcast(cond, ab, (c) => c, 'bool');
  const ta = broadcast(a, pick, (x) => x, a.dtype);
  const tb = broadcast(b, pick, (x) => x, b.dtype);
  return known(
    resultType(a, b),
    pick.shape,
    pick.values.map((c, i) => (c ? ta.values[i] : tb.values[i])),
  );
}

export function castKnown(k: Known, to: Known['dtype']): Known {
  if (to === 'float') return known('float', k.shape, k.values.map(plain));
  if (to === 'bool')
    return known(
      'bool',
      k.shape,
      k.values.map((v) => (symbolic(v) || v !== 0 ? 1 : 0)),
    );
  return known(
    'int',
    k.shape,
    k.values.map((v) => (symbolic(v) ? v : Math.trunc(v))),
  );
}

export function reshapeKnown(k: Known, shape: readonly number[]): Known {
  return known(k.dtype, shape, k.values);
}

export function gatherKnown(data: Known, indices: Known, axis: number): Known {
  const idx = numbers(indices, 'Gather indices').map((i) => (i < 0 ? i + data.shape[axis] : i));
  if (idx.some((i) => i < 0 || i >= data.shape[axis])) throw new Error(`Gather: an index is outside axis ${axis} of [${data.shape}]`);
  const outer = data.shape.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = data.shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const out: Scalar[] = [];
  for (let o = 0; o < outer; o++)
    for (const i of idx) for (let j = 0; j < inner; j++) out.push(data.values[(o * data.shape[axis] + i) * inner + j]);
  return known(data.dtype, [...data.shape.slice(0, axis), ...indices.shape, ...data.shape.slice(axis + 1)], out);
}

export function concatKnown(parts: readonly Known[], axis: number): Known {
  const first = parts[0];
  const outer = first.shape.slice(0, axis).reduce((a, b) => a * b, 1);
  const out: Scalar[] = [];
  for (let o = 0; o < outer; o++) {
    for (const p of parts) {
      const chunk = p.shape.slice(axis).reduce((a, b) => a * b, 1);
      out.push(...p.values.slice(o * chunk, (o + 1) * chunk));
    }
  }
  const total = parts.reduce((s, p) => s + p.shape[axis], 0);
  const dtype = parts.some((p) => p.dtype === 'float') ? 'float' : first.dtype;
  return known(
    dtype,
    first.shape.map((d, i) => (i === axis ? total : d)),
    out,
  );
}

/** One axis sliced [start, end) with step (already clamped as ONNX Slice does). */
export function sliceKnown(k: Known, axis: number, start: number, end: number, step: number): Known {
  const picks: number[] = [];
  for (let i = start; step > 0 ? i < end : i > end; i += step) picks.push(i);
  return gatherKnown(k, known('int', [picks.length], picks), axis);
}

/** ONNX Slice's clamping of one axis's start and end. */
export function clampSlice(start: number, end: number, step: number, size: number): [number, number] {
  const norm = (v: number) => (v < 0 ? v + size : v);
  let s = norm(start);
  let e = norm(end);
  if (step > 0) {
    s = Math.min(Math.max(s, 0), size);
    e = Math.min(Math.max(e, 0), size);
  } else {
    s = Math.min(Math.max(s, 0), size - 1);
    e = Math.min(Math.max(e, -1), size - 1);
  }
  return [s, e];
}

export function rangeKnown(start: Known, limit: Known, delta: Known): Known {
  const [s, l, d] = [start, limit, delta].map((k) => numbers(k, 'Range')[0]);
  if (d === 0) throw new Error('Range: a delta of 0');
  const n = Math.max(Math.ceil((l - s) / d), 0);
  return known(
    start.dtype,
    [n],
    Array.from({ length: n }, (_, i) => s + i * d),
  );
}
