// Per-op checks: the reference kernel against the op's ONNX emission run by ONNX Runtime, and the
// vector-Jacobian rule against central finite differences in float64.

import type { Test } from 'tap';
import type { Dim, Tensor } from '../../trainer/autograd/graph.js';
import { grad } from '../../trainer/autograd/grad.js';
import { interpret } from '../../trainer/autograd/interpreter.js';
import { type NDArray, nd, sizeOf } from '../../trainer/autograd/ndarray.js';
import { constant, input, mul, param, reduceSum } from '../../trainer/autograd/ops.js';
import { OrtGraph } from '../../trainer/autograd/ort-executor.js';
import { Rng } from '../../trainer/nn/random.js';

export interface InputSpec {
  shape: Dim[];
  /** Values drawn in [lo, hi); default [-2, 2). */
  range?: [number, number];
}

export const spec = (shape: Dim[], range?: [number, number]): InputSpec => ({ shape, range });

function concrete(shape: Dim[], batch: number): number[] {
  return shape.map((d) => (typeof d === 'number' ? d : batch));
}

function randomArray(rng: Rng, shape: number[], [lo, hi]: [number, number] = [-2, 2]): NDArray {
  return nd(
    Float64Array.from({ length: sizeOf(shape) }, () => lo + (hi - lo) * rng.next()),
    shape,
  );
}

/** Largest |a - b|; the lengths must agree and not be zero (an empty or short answer is not "close"). */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} and ${b.length}`);
  if (a.length === 0) throw new Error('nothing to compare');
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Asserts |a - b| <= atol + rtol * |b| elementwise, reporting the worst element. */
export function assertClose(
  t: Test,
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  rtol: number,
  atol: number,
  what: string,
): void {
  if (actual.length !== expected.length) {
    t.fail(`${what}: ${actual.length} values, expected ${expected.length}`);
    return;
  }
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < actual.length; i++) {
    const excess = Math.abs(actual[i] - expected[i]) - (atol + rtol * Math.abs(expected[i]));
    if (!(excess <= worstExcess)) {
      worstExcess = Number.isNaN(excess) ? Infinity : excess;
      worst = i;
    }
  }
  t.ok(worst < 0, worst < 0 ? what : `${what}: element ${worst} is ${actual[worst]}, expected ${expected[worst]}`);
}

/** Runs build() on the interpreter and on ONNX Runtime (inputs with symbolic dims fed at two batch sizes). */
export async function checkForward(t: Test, name: string, inputs: InputSpec[], build: (xs: Tensor[]) => Tensor, seed = 1): Promise<void> {
  const nodes = inputs.map((s, i) => input(`x${i}`, s.shape));
  const out = build(nodes);
  const graph = await OrtGraph.create({ outputs: [['y', out]] });
  for (const batch of [2, 3]) {
    const rng = new Rng(seed + batch);
    const values = inputs.map((s) => randomArray(rng, concrete(s.shape, batch), s.range));
    const feeds = Object.fromEntries(values.map((v, i) => [`x${i}`, v]));
    const [ref] = interpret([out], feeds);
    const ortFeeds = Object.fromEntries(values.map((v, i) => [`x${i}`, { data: Float32Array.from(v.data), dims: v.shape }]));
    const { y } = await graph.run(ortFeeds);
    t.same([...y.dims], [...ref.shape], `${name}: ONNX Runtime shape at batch ${batch}`);
    assertClose(t, y.data, ref.data, 1e-4, 1e-5, `${name}: ONNX Runtime matches the reference kernel at batch ${batch}`);
  }
}

/** Compares grad()'s gradients of sum(build(xs) * R), R random, with central differences in float64. */
export function checkGrad(t: Test, name: string, inputs: InputSpec[], build: (xs: Tensor[]) => Tensor, seed = 7): void {
  const rng = new Rng(seed);
  const shapes = inputs.map((s) => concrete(s.shape, 2));
  const nodes = shapes.map((s, i) => param(`x${i}`, s));
  const out = build(nodes);
  const outShape = out.shape as number[];
  const weights = constant(randomArray(rng, outShape).data, outShape);
  const loss = reduceSum(mul(out, weights), [...outShape.keys()], false);
  const grads = grad(loss, nodes);
  const values = inputs.map((s, i) => randomArray(rng, shapes[i], s.range));
  const feeds = () => Object.fromEntries(values.map((v, i) => [`x${i}`, v]));
  const analytic = interpret(grads, feeds());
  const eps = 1e-6;
  values.forEach((v, i) => {
    const numeric = new Float64Array(v.data.length);
    for (let k = 0; k < v.data.length; k++) {
      const keep = v.data[k];
      v.data[k] = keep + eps;
      const [up] = interpret([loss], feeds());
      v.data[k] = keep - eps;
      const [down] = interpret([loss], feeds());
      v.data[k] = keep;
      numeric[k] = (up.data[0] - down.data[0]) / (2 * eps);
    }
    assertClose(t, analytic[i].data, numeric, 1e-5, 1e-6, `${name}: gradient of input ${i} matches central differences`);
  });
}
