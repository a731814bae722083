import t from 'tap';
import { ROLL_SHARE, lastLayerRelevanceInto, relevanceInto } from '../../server/engine/relevance.js';
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
    for (let j = 0; j < T - 1; j++)
      if (Math.abs(out[i * (T - 1) + j] - want[j]) > 1e-5 * Math.max(1, Math.abs(want[j])))
        t.fail(`image ${i} patch ${j}: ${out[i * (T - 1) + j]} vs ${want[j]}`);
  }
  t.pass('all images agree with the direct product');
  // negative contributions are clipped: all-negative gradients give no relevance
  const neg = grads.map((g) => g.map((v) => -Math.abs(v)));
  const zero = new Float32Array(T - 1);
  relevanceInto(layers, neg, 0, heads, T, zero, 0);
  t.same(Array.from(zero), new Array(T - 1).fill(0));
});

/** The default rule with full matrices: v = e_0 + sum of the prefix rows of Abar_L, then
 *  v <- v ((1 - w) mean_h A_l + w I) for the blocks below, last to first. */
function directLast(
  layers: Float32Array[],
  last: Float32Array,
  image: number,
  heads: number,
  T: number,
  prefix: number,
  w: number,
): Float64Array {
  let v = new Float64Array(T);
  v[0] = 1;
  const L = layers.length;
  for (let h = 0; h < heads; h++)
    for (let i = 0; i < prefix; i++)
      for (let j = 0; j < T; j++) {
        const k = (image * heads + h) * T * T + i * T + j;
        v[j] += Math.max(0, layers[L - 1][k] * last[k]) / heads;
      }
  for (let l = L - 2; l >= 0; l--) {
    const M = new Float64Array(T * T);
    for (let i = 0; i < T; i++)
      for (let j = 0; j < T; j++) {
        let a = 0;
        for (let h = 0; h < heads; h++) a += layers[l][(image * heads + h) * T * T + i * T + j] / heads;
        M[i * T + j] = (1 - w) * a + (i === j ? w : 0);
      }
    const next = new Float64Array(T);
    for (let i = 0; i < T; i++) for (let j = 0; j < T; j++) next[j] += v[i] * M[i * T + j];
    v = next;
  }
  return v.subarray(prefix);
}

t.test(
  "the default rule: the last block's Chefer rows rolled out below, as written with full matrices (3 blocks: w = sqrt(0.6))",
  async (t) => {
    const rng = new Rng(4);
    const [n, heads, T, L] = [3, 2, 7, 3];
    const softmaxRows = () => {
      const a = Float32Array.from({ length: n * heads * T * T }, () => Math.exp(rng.normal()));
      for (let r = 0; r < n * heads * T; r++) {
        let s = 0;
        for (let j = 0; j < T; j++) s += a[r * T + j];
        for (let j = 0; j < T; j++) a[r * T + j] /= s;
      }
      return a;
    };
    const layers = Array.from({ length: L }, softmaxRows);
    const last = Float32Array.from({ length: n * heads * T * T }, () => rng.normal());
    for (const prefix of [1, 2]) {
      const P = T - prefix;
      const out = new Float32Array(n * P);
      for (let i = 0; i < n; i++) {
        lastLayerRelevanceInto(layers, last, i, heads, T, out, i * P, prefix);
        const want = directLast(layers, last, i, heads, T, prefix, Math.sqrt(ROLL_SHARE));
        t.ok(
          want.every((v, j) => Math.abs(out[i * P + j] - v) <= 1e-6 * Math.max(1, Math.abs(v))),
          `prefix ${prefix}, image ${i}: as written`,
        );
      }
    }
    // one block: the last block's Chefer row itself, which is Chefer's rule for a one-block model
    const one = new Float32Array(T - 1);
    const cheferOne = new Float32Array(T - 1);
    lastLayerRelevanceInto([layers[0]], last, 1, heads, T, one, 0);
    relevanceInto([layers[0]], [last], 1, heads, T, cheferOne, 0);
    t.same(Array.from(one), Array.from(cheferOne), "one block: Chefer's rule");
    // identity 1 keeps the last block's row; 0 is the attention alone below
    const keep = new Float32Array(T - 1);
    lastLayerRelevanceInto(layers, last, 0, heads, T, keep, 0, 1, 1);
    const top = directLast([layers[L - 1]], last, 0, heads, T, 1, 1);
    t.ok(
      Array.from(keep).every((v, j) => Math.abs(v - top[j]) < 1e-6),
      "identity 1: the last block's row",
    );
    // nothing positive at the top leaves the [CLS] token's own rollout below
    const neg = new Float32Array(T - 1);
    lastLayerRelevanceInto(
      layers,
      last.map((g, k) => -Math.abs(g) * Math.sign(layers[L - 1][k])),
      0,
      heads,
      T,
      neg,
      0,
    );
    const e0 = directLast(layers, new Float32Array(last.length), 0, heads, T, 1, Math.sqrt(ROLL_SHARE));
    t.ok(
      Array.from(neg).every((v, j) => Math.abs(v - e0[j]) < 1e-6),
      'no positive contribution: e_CLS rolled out',
    );
  },
);
