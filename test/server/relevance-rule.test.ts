import t from 'tap';
import { relevanceInto } from '../../server/relevance.js';
import { Rng } from '../../trainer/nn/random.js';

/** The rule as written, with full T x T matrices. */
function direct(layers: Float32Array[], grads: Float32Array[], image: number, heads: number, T: number): Float64Array {
  let R = new Float64Array(T * T);
  for (let i = 0; i < T; i++) R[i * T + i] = 1;
  for (let l = 0; l < layers.length; l++) {
    const A = new Float64Array(T * T);
    for (let h = 0; h < heads; h++)
      for (let i = 0; i < T * T; i++) {
        const k = (image * heads + h) * T * T + i;
        A[i] += Math.max(0, layers[l][k] * grads[l][k]) / heads;
      }
    const next = R.slice();
    for (let i = 0; i < T; i++) for (let j = 0; j < T; j++) for (let k = 0; k < T; k++) next[i * T + j] += A[i * T + k] * R[k * T + j];
    R = next;
  }
  return R.subarray(1, T);
}

t.test('the row-vector form equals R = prod (I + Abar_l) of the rule, row 0', async (t) => {
  const rng = new Rng(3);
  const [n, heads, T, L] = [3, 2, 6, 4];
  const layers = Array.from({ length: L }, () => Float32Array.from({ length: n * heads * T * T }, () => rng.next()));
  const grads = Array.from({ length: L }, () => Float32Array.from({ length: n * heads * T * T }, () => rng.normal()));
  const out = new Float32Array(n * (T - 1));
  for (let i = 0; i < n; i++) {
    relevanceInto(layers, grads, i, heads, T, out, i * (T - 1));
    const want = direct(layers, grads, i, heads, T);
    for (let j = 0; j < T - 1; j++) if (Math.abs(out[i * (T - 1) + j] - want[j]) > 1e-5 * Math.max(1, Math.abs(want[j]))) t.fail(`image ${i} patch ${j}: ${out[i * (T - 1) + j]} vs ${want[j]}`);
  }
  t.pass('all images agree with the direct product');
  // negative contributions are clipped: all-negative gradients give no relevance
  const neg = grads.map((g) => g.map((v) => -Math.abs(v)));
  const zero = new Float32Array(T - 1);
  relevanceInto(layers, neg, 0, heads, T, zero, 0);
  t.same(Array.from(zero), new Array(T - 1).fill(0));
});
