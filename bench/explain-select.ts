// How the default explanation (`relevance`, server/engine/relevance.ts's lastLayerRelevanceInto) and the
// `combined` map (combinedRelevance) were chosen: the candidate maps of one model, from its own
// autograd graph (attention probabilities, the residual stream entering each block, the input, and the
// class logit's gradient with respect to each), scored in-process by the perturbation test of
// bench/explain.ts (patches masked with the mean colour, 10% to 90%: the share of predictions kept;
// positive lower is better, negative higher) and by RISE's deletion (patches set to the mean colour in
// map order, 16 steps; the area under the predicted class's probability, lower is better) and
// insertion (revealed over a Gaussian blur, kernel 11, sigma 5, as RISE's; higher is better), patch
// level. One JSON line per candidate.
//   npx tsx bench/explain-select.ts --model models/cct-cifar10 --images 300 --offset 5000 [--methods a,b,…]
// Candidates that need a backward pass through the model: chefer (Chefer's rule), chefer_top<K> (its
// last K blocks alone) and chefer_top<K>_rollout (then rolled out below), rollout, cls, random,
// gxi0 / gxi0_abs / gxi_last (gradient x input at the embedded tokens, or the last block's input),
// attcat (each block's token gradient x input weighted by its [CLS] attention, summed), pixel_gxi /
// pixel_gxi_abs (gradient x input at the pixels, summed over each patch), grad_rollout (rollout over
// max(0, grad x attention), rows normalized), Chefer's rule times pixel_gxi_abs to the power 1, 0.5 or
// 0.25, chefer_rollout_x_sqrtpx (what `combined` serves) and other products and sums. At the cost of
// about a forward pass (the last block's attention gradient of the [CLS] row needs only that token's
// own MLP and LayerNorm Jacobians, computed here from the weights and checked against the graph's):
// fwd_last_rollout (the last block's Chefer row rolled out below), fwd_last_id<w x 10> (rolled out with
// identity weight w; relevance serves w = 0.7, and `relevance` is the served function itself),
// fwd_last_resid (w from the norms of the residual stream and of the attention's output), vnorm_rollout
// and fwd_last_vnorm (attention weighted by the norm of what it carries, Kobayashi et al. 2020).
import path from 'node:path';
import { rolloutMeanInto } from '../server/engine/attention.js';
import { combinedRelevance, lastLayerRelevanceInto, relevanceInto, rollIdentity } from '../server/engine/relevance.js';
import { ensureCifar10, readCifarBinaryFolder } from '../trainer/data/cifar10.js';
import { Rng } from '../trainer/nn/random.js';
import { grad } from '../trainer/autograd/grad.js';
import { input, mul, oneHot, reduceSum } from '../trainer/autograd/ops.js';
import { OrtGraph } from '../trainer/autograd/ort-executor.js';
import { GraphContext } from '../trainer/nn/module.js';
import { BATCH, pixelInput } from '../trainer/vit/model.js';
import { initConfig, initModel, readInit } from '../trainer/vit/init.js';
import { readModelConfig } from '../runtime/model-config.js';
import { argmax } from '../trainer/train/evaluate.js';
import { type Geometry, blurred, patchOrder, perturbationArea, predictionScores, riseArea } from './faithfulness.js';
import { BENCH_ROOT, benchArgs } from './common.js';

const { arg } = benchArgs('npx tsx bench/explain-select.ts --model models/cct-cifar10 --images 300 --offset 5000 [--methods a,b,…]', {
  strings: ['images', 'methods', 'model', 'offset'],
});

const dir = arg('model', 'models/cct-cifar10');
const N = Number(arg('images', '1000'));
const BATCHN = 100;
const config = await readModelConfig(dir);
const src = await readInit(dir);
const { model } = initModel(src, initConfig(src, config.labels.length), config.labels, 0);
const c = model.config;
const ctx = new GraphContext(false);
const pixels = pixelInput(c);
const target = input('target_class', [BATCH]);
const out = model.forward(ctx, pixels);
const score = reduceSum(mul(out.logits, oneHot(target, c.num_classes)), [0, 1], false);
const L = out.attentions.length;
const gs = grad(score, [...out.attentions, ...out.hidden, pixels]);
const outputs: [string, any][] = [
  ['logits', out.logits],
  ...out.attentions.map((a, i) => [`a${i}`, a] as [string, any]),
  ...out.hidden.map((h, i) => [`h${i}`, h] as [string, any]),
  ...gs.map((g, i) => [`g${i}`, g] as [string, any]),
];
const graph = await OrtGraph.create({
  outputs,
  initializers: new Map(model.namedParameters().map(([n, p]) => [n, p.data])),
  graphName: 'proto',
});
const fwd = await OrtGraph.create({
  outputs: [['logits', out.logits]],
  initializers: new Map(model.namedParameters().map(([n, p]) => [n, p.data])),
  graphName: 'fwd',
});

const [H, W] = config.image_size;
const P = config.patch_size!;
const rows = H / P,
  cols = W / P,
  patches = rows * cols;
const prefix = config.prefix_tokens ?? 1;
const test = await readCifarBinaryFolder(await ensureCifar10(path.join(BENCH_ROOT, 'data', 'cifar10')), 'test');
const n = Math.min(N, test.count);
const per = 3 * H * W;
const OFF = Number(arg('offset', '0')) * per;
const X = new Float32Array(n * per);
for (let i = 0; i < n * per; i++) {
  const ch = Math.floor((i % per) / (H * W));
  X[i] = (test.images[OFF + i] / 255 - config.mean[ch]) / config.std[ch];
}
const K = config.labels.length;
async function probs(x: Float32Array, count: number): Promise<Float32Array> {
  const o = (await fwd.run({ pixel_values: { data: x, dims: [count, 3, H, W] } }))['logits'].data;
  const p = new Float32Array(o.length);
  for (let b = 0; b < count; b++) {
    let m = -Infinity;
    for (let k = 0; k < K; k++) m = Math.max(m, o[b * K + k]);
    let s = 0;
    for (let k = 0; k < K; k++) s += p[b * K + k] = Math.exp(o[b * K + k] - m);
    for (let k = 0; k < K; k++) p[b * K + k] /= s;
  }
  return p;
}
const methods: Record<string, Float32Array> = {};

// Forward-only candidates (no backward through the network): the last block's attention weighted
// by the exact gradient of the class logit for the [CLS] row, which needs only the [CLS] token's own
// local Jacobian (its MLP and LayerNorm), then rolled out through the earlier layers; and rollout
// with each attention weighted by the norm of what it carries (Kobayashi et al. 2020).
const P_ = new Map(model.namedParameters().map(([name, p]) => [name, p.data as Float32Array]));
const param = (name: string) => {
  const v = P_.get(name);
  if (!v) throw new Error(`no parameter ${name}`);
  return v;
};
const HSZ = c.hidden_size / c.num_attention_heads;
const geluPrime = (z: number) => {
  if (c.hidden_act === 'gelu') return 0.5 * (1 + erfApprox(z / Math.SQRT2)) + (z * Math.exp(-0.5 * z * z)) / Math.sqrt(2 * Math.PI);
  const k = Math.sqrt(2 / Math.PI),
    u = k * (z + 0.044715 * z * z * z),
    t = Math.tanh(u);
  return 0.5 * (1 + t) + 0.5 * z * (1 - t * t) * k * (1 + 3 * 0.044715 * z * z);
};
function erfApprox(x: number): number {
  const t = 1 / (1 + 0.3275911 * Math.abs(x));
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
  return x >= 0 ? y : -y;
}
function layerNormRows(
  x: Float32Array,
  off: number,
  T: number,
  D: number,
  w: Float32Array,
  bias: Float32Array,
  eps: number,
): { y: Float64Array; xhat: Float64Array; rstd: Float64Array } {
  const y = new Float64Array(T * D),
    xhat = new Float64Array(T * D),
    rstd = new Float64Array(T);
  for (let t = 0; t < T; t++) {
    let m = 0;
    for (let d = 0; d < D; d++) m += x[off + t * D + d];
    m /= D;
    let v = 0;
    for (let d = 0; d < D; d++) v += (x[off + t * D + d] - m) ** 2;
    v /= D;
    const r = 1 / Math.sqrt(v + eps);
    rstd[t] = r;
    for (let d = 0; d < D; d++) {
      const h = (x[off + t * D + d] - m) * r;
      xhat[t * D + d] = h;
      y[t * D + d] = h * w[d] + bias[d];
    }
  }
  return { y, xhat, rstd };
}
/** Per head, each token's value vector through the output projection: o[(h * T + j) * D + d]. */
function headOutputs(l: number, hs: Float32Array, b: number, T: number, heads: number): Float64Array {
  const D = c.hidden_size;
  const pre = `encoder.blocks.${l}.`;
  const { y } = layerNormRows(hs, b * T * D, T, D, param(pre + 'layernorm_1.weight'), param(pre + 'layernorm_1.bias'), c.layer_norm_eps);
  const wo = param(pre + 'attention.output_projection.weight'); // [D, D] (out, in)
  const o = new Float64Array(heads * T * D);
  const v = new Float64Array(HSZ);
  for (let h = 0; h < heads; h++) {
    const wv = param(`${pre}attention.heads.${h}.value.weight`),
      bv = c.qkv_bias ? param(`${pre}attention.heads.${h}.value.bias`) : null;
    for (let j = 0; j < T; j++) {
      for (let k = 0; k < HSZ; k++) {
        let s = bv ? bv[k] : 0;
        for (let d = 0; d < D; d++) s += wv[k * D + d] * y[j * D + d];
        v[k] = s;
      }
      for (let d = 0; d < D; d++) {
        let s = 0;
        for (let k = 0; k < HSZ; k++) s += wo[d * D + h * HSZ + k] * v[k];
        o[(h * T + j) * D + d] = s;
      }
    }
  }
  return o;
}
let gradCheck = 0;
let gradScale = 0;
/** v <- v . normalize_rows(0.5 W + 0.5 I) for the layers below `top` (w: per layer, a [T, T] weighting, heads fused). */
function rollDown(v: Float64Array, ws: Float64Array[], T: number): Float64Array {
  for (let l = ws.length - 1; l >= 0; l--) {
    const next = new Float64Array(T);
    for (let i = 0; i < T; i++) {
      if (v[i] === 0) continue;
      let sum = 0;
      for (let j = 0; j < T; j++) sum += ws[l][i * T + j];
      const scale = v[i] / (0.5 * sum + 0.5);
      for (let j = 0; j < T; j++) next[j] += scale * 0.5 * ws[l][i * T + j];
      next[i] += scale * 0.5;
    }
    v = next;
  }
  return v;
}
function forwardCandidates(
  b: number,
  A: Float32Array[],
  Hs: Float32Array[],
  GA: Float32Array[],
  heads: number,
  T: number,
  at: number,
): void {
  const D = c.hidden_size;
  const Lx = A.length;
  const os = Array.from({ length: Lx }, (_, l) => headOutputs(l, Hs[l], b, T, heads));
  // the class direction at the [CLS] attention output of the last block: u + J_mlp^T u
  const top = `encoder.blocks.${Lx - 1}.`;
  const last = os[Lx - 1];
  const attnOut = Float64Array.from(param(top + 'attention.output_projection.bias'));
  for (let h = 0; h < heads; h++)
    for (let j = 0; j < T; j++) {
      const a = A[Lx - 1][((b * heads + h) * T + 0) * T + j];
      for (let d = 0; d < D; d++) attnOut[d] += a * last[(h * T + j) * D + d];
    }
  const h0 = new Float32Array(D);
  for (let d = 0; d < D; d++) h0[d] = Hs[Lx - 1][b * T * D + d] + attnOut[d];
  const ln2 = layerNormRows(h0, 0, 1, D, param(top + 'layernorm_2.weight'), param(top + 'layernorm_2.bias'), c.layer_norm_eps);
  const w1 = param(top + 'mlp.dense_1.weight'),
    b1 = param(top + 'mlp.dense_1.bias'),
    w2 = param(top + 'mlp.dense_2.weight');
  const I = c.intermediate_size;
  const wc = param('classifier.weight');
  const k = currentClass;
  const u = Float64Array.from({ length: D }, (_, d) => wc[k * D + d]);
  const gz = new Float64Array(I);
  for (let i = 0; i < I; i++) {
    let z = b1[i];
    for (let d = 0; d < D; d++) z += w1[i * D + d] * ln2.y[d];
    let ga = 0;
    for (let d = 0; d < D; d++) ga += w2[d * I + i] * u[d];
    gz[i] = ga * geluPrime(z);
  }
  const gy = new Float64Array(D);
  for (let d = 0; d < D; d++) {
    let s = 0;
    for (let i = 0; i < I; i++) s += w1[i * D + d] * gz[i];
    gy[d] = s * param(top + 'layernorm_2.weight')[d];
  }
  let mg = 0,
    mgx = 0;
  for (let d = 0; d < D; d++) {
    mg += gy[d];
    mgx += gy[d] * ln2.xhat[d];
  }
  mg /= D;
  mgx /= D;
  const uu = Float64Array.from({ length: D }, (_, d) => u[d] + ln2.rstd[0] * (gy[d] - mg - ln2.xhat[d] * mgx));
  // the [CLS] row's gradient per head, and Chefer's positive part of gradient x attention
  const v = new Float64Array(T);
  v[0] = 1;
  for (let h = 0; h < heads; h++)
    for (let j = 0; j < T; j++) {
      let g = 0;
      for (let d = 0; d < D; d++) g += last[(h * T + j) * D + d] * uu[d];
      const q = ((b * heads + h) * T + 0) * T + j;
      gradCheck = Math.max(gradCheck, Math.abs(g - GA[Lx - 1][q]));
      gradScale = Math.max(gradScale, Math.abs(GA[Lx - 1][q]));
      const w = A[Lx - 1][q] * g;
      if (w > 0) v[j] += w / heads;
    }
  const plain = Array.from({ length: Lx - 1 }, (_, l) => {
    const w = new Float64Array(T * T);
    for (let h = 0; h < heads; h++) for (let q = 0; q < T * T; q++) w[q] += A[l][(b * heads + h) * T * T + q] / heads;
    return w;
  });
  const normed = Array.from({ length: Lx }, (_, l) => {
    const w = new Float64Array(T * T);
    const o = os[l];
    const sum = new Float64Array(D);
    for (let i = 0; i < T; i++)
      for (let j = 0; j < T; j++) {
        sum.fill(0);
        for (let h = 0; h < heads; h++) {
          const a = A[l][((b * heads + h) * T + i) * T + j];
          for (let d = 0; d < D; d++) sum[d] += a * o[(h * T + j) * D + d];
        }
        let n2 = 0;
        for (let d = 0; d < D; d++) n2 += sum[d] * sum[d];
        w[i * T + j] = Math.sqrt(n2);
      }
    return w;
  });
  // the last block's Chefer row (from the [CLS] gradient computed here) rolled down with an identity weight per block
  // and token: rows (1 - w) A + w I
  const rollWith = (start: Float64Array, weight: (l: number, i: number) => number) => {
    let r = start;
    for (let l = Lx - 2; l >= 0; l--) {
      const next = new Float64Array(T);
      for (let i = 0; i < T; i++) {
        if (r[i] === 0) continue;
        const w = weight(l, i);
        for (let j = 0; j < T; j++) next[j] += r[i] * (1 - w) * plain[l][i * T + j];
        next[i] += r[i] * w;
      }
      r = next;
    }
    return r;
  };
  // the served rule (relevance.ts) with other identity weights: a constant w, or w^(blocks below) = share
  for (const w of [0.6, 0.7, 0.8, 0.9])
    lastLayerRelevanceInto(A, GA[Lx - 1], b, heads, T, M(`fwd_last_id${Math.round(w * 10)}`), at, prefix, w);
  for (const share of [0.5, 0.6])
    lastLayerRelevanceInto(A, GA[Lx - 1], b, heads, T, M(`fwd_last_depth${Math.round(share * 10)}`), at, prefix, rollIdentity(Lx, share));
  // identity weight from the norms: what the residual carries against what the attention adds
  const ratio = Array.from({ length: Lx - 1 }, (_, l) => {
    const o = os[l];
    const out = new Float64Array(T);
    const bo = param(`encoder.blocks.${l}.attention.output_projection.bias`);
    for (let i = 0; i < T; i++) {
      const sum = Float64Array.from(bo);
      for (let h = 0; h < heads; h++)
        for (let j = 0; j < T; j++) {
          const a = A[l][((b * heads + h) * T + i) * T + j];
          for (let d = 0; d < D; d++) sum[d] += a * o[(h * T + j) * D + d];
        }
      let na = 0,
        nx = 0;
      for (let d = 0; d < D; d++) {
        na += sum[d] * sum[d];
        nx += Hs[l][(b * T + i) * D + d] ** 2;
      }
      out[i] = Math.sqrt(nx) / (Math.sqrt(nx) + Math.sqrt(na));
    }
    return out;
  });
  {
    const r = rollWith(v, (l, i) => ratio[l][i]);
    for (let p = 0; p < patches; p++) M('fwd_last_resid')[at + p] = r[prefix + p];
  }
  const pre = prefix;
  const a1 = rollDown(v, plain, T),
    a2 = rollDown(v, normed.slice(0, Lx - 1), T);
  const e0 = new Float64Array(T);
  e0[0] = 1;
  const a3 = rollDown(e0, normed, T);
  for (let p = 0; p < patches; p++) {
    M('fwd_last_rollout')[at + p] = a1[pre + p];
    M('fwd_last_vnorm')[at + p] = a2[pre + p];
    M('vnorm_rollout')[at + p] = a3[pre + p];
  }
}
let currentClass = 0;
const M = (name: string) => (methods[name] ??= new Float32Array(n * patches));
const predicted = new Int32Array(n);
const rng = new Rng(0);
for (let s = 0; s < n; s += BATCHN) {
  const count = Math.min(BATCHN, n - s);
  const x = X.slice(s * per, (s + count) * per);
  const first = (await fwd.run({ pixel_values: { data: x, dims: [count, 3, H, W] } }))['logits'].data;
  const cls = new Float32Array(count);
  for (let b = 0; b < count; b++) predicted[s + b] = cls[b] = argmax(first, b * K, K);
  const r = await graph.run({ pixel_values: { data: x, dims: [count, 3, H, W] }, target_class: { data: cls, dims: [count] } });
  const A = Array.from({ length: L }, (_, l) => r[`a${l}`].data);
  const GA = Array.from({ length: L }, (_, l) => r[`g${l}`].data);
  const Hs = Array.from({ length: L }, (_, l) => r[`h${l}`].data);
  const GH = Array.from({ length: L }, (_, l) => r[`g${L + l}`].data);
  const GX = r[`g${2 * L}`].data;
  const [, heads, T] = r.a0.dims as number[];
  const D = c.hidden_size;
  for (let b = 0; b < count; b++) {
    const at = (s + b) * patches;
    currentClass = cls[b];
    relevanceInto(A, GA, b, heads, T, M('chefer'), at, prefix);
    lastLayerRelevanceInto(A, GA[L - 1], b, heads, T, M('relevance'), at, prefix);
    rolloutMeanInto(A, b, heads, T, M('rollout'), at, prefix);
    // chefer on the last layer only
    relevanceInto(A.slice(L - 1), GA.slice(L - 1), b, heads, T, M('chefer_last'), at, prefix);
    for (let p = 0; p < patches; p++) {
      const t = prefix + p;
      let v = 0;
      for (let h = 0; h < heads; h++) v += A[L - 1][((b * heads + h) * T + 0) * T + t];
      M('cls')[at + p] = v / heads;
      M('random')[at + p] = rng.next();
      const gxi = (l: number) => {
        let g = 0;
        for (let d = 0; d < D; d++) g += Hs[l][(b * T + t) * D + d] * GH[l][(b * T + t) * D + d];
        return g;
      };
      const g0 = gxi(0);
      M('gxi0')[at + p] = g0;
      M('gxi0_abs')[at + p] = Math.abs(g0);
      M('gxi_last')[at + p] = gxi(L - 1);
      let att = 0;
      for (let l = 0; l < L; l++) {
        let a = 0;
        for (let h = 0; h < heads; h++) a += A[l][((b * heads + h) * T + 0) * T + t];
        a /= heads;
        att += a * gxi(l);
      }
      M('attcat')[at + p] = att;
      // pixel grad x input over the patch
      const r0 = Math.floor(p / cols) * P,
        c0 = (p % cols) * P;
      let px = 0,
        pxAbs = 0;
      for (let ch = 0; ch < 3; ch++)
        for (let y = r0; y < r0 + P; y++)
          for (let xx = c0; xx < c0 + P; xx++) {
            const i = (b * 3 + ch) * H * W + y * W + xx;
            px += x[i] * GX[i];
            pxAbs += Math.abs(x[i] * GX[i]);
          }
      M('pixel_gxi')[at + p] = px;
      M('pixel_gxi_abs')[at + p] = pxAbs;
    }
    // gradient-weighted rollout: per layer Abar = mean_h relu(grad*A), rows normalized, 0.5 residual
    {
      const gr = new Float64Array(T);
      gr[0] = 1;
      for (let l = L - 1; l >= 0; l--) {
        const next = new Float64Array(T);
        for (let i = 0; i < T; i++) {
          if (gr[i] === 0) continue;
          const row = new Float64Array(T);
          let sum = 0;
          for (let j = 0; j < T; j++) {
            let v = 0;
            for (let h = 0; h < heads; h++) {
              const q = ((b * heads + h) * T + i) * T + j;
              const w = A[l][q] * GA[l][q];
              if (w > 0) v += w / heads;
            }
            row[j] = v;
            sum += v;
          }
          if (sum > 0) for (let j = 0; j < T; j++) next[j] += (gr[i] * 0.5 * row[j]) / sum;
          else next[i] += gr[i] * 0.5;
          next[i] += gr[i] * 0.5;
        }
        gr.set(next);
      }
      for (let p = 0; p < patches; p++) M('grad_rollout')[at + p] = gr[prefix + p];
    }
    for (let p = 0; p < patches; p++) {
      M('chefer_x_sqrtpx')[at + p] = M('chefer')[at + p] * Math.sqrt(M('pixel_gxi_abs')[at + p]);
      M('chefer_x_px025')[at + p] = M('chefer')[at + p] * M('pixel_gxi_abs')[at + p] ** 0.25;
      M('rollout_x_pxabs')[at + p] = M('rollout')[at + p] * M('pixel_gxi_abs')[at + p];
      M('chefer_x_gxi0abs')[at + p] = M('chefer')[at + p] * M('gxi0_abs')[at + p];
      M('chefer_x_sqrtgxi0abs')[at + p] = M('chefer')[at + p] * Math.sqrt(M('gxi0_abs')[at + p]);
      M('chefer_x_gxi0')[at + p] = M('chefer')[at + p] * Math.max(0, M('gxi0')[at + p]);
      M('chefer_x_pxabs')[at + p] = M('chefer')[at + p] * M('pixel_gxi_abs')[at + p];
      M('rollout_x_sqrtpx')[at + p] = M('rollout')[at + p] * Math.sqrt(M('pixel_gxi_abs')[at + p]);
    }
    forwardCandidates(b, A, Hs, GA, heads, T, at);
    // Chefer's rule over the last K blocks only (a backward through K blocks), rolled out below
    for (let K = 1; K < L; K++) {
      let r = new Float64Array(T);
      r[0] = 1;
      for (let l = L - 1; l >= L - K; l--) {
        const next = Float64Array.from(r);
        for (let i = 0; i < T; i++) {
          if (r[i] === 0) continue;
          for (let j = 0; j < T; j++) {
            let v = 0;
            for (let h = 0; h < heads; h++) {
              const q = ((b * heads + h) * T + i) * T + j;
              const w = A[l][q] * GA[l][q];
              if (w > 0) v += w / heads;
            }
            next[j] += r[i] * v;
          }
        }
        r = next;
      }
      const plainBelow = Array.from({ length: L - K }, (_, l) => {
        const w = new Float64Array(T * T);
        for (let h = 0; h < heads; h++) for (let q = 0; q < T * T; q++) w[q] += A[l][(b * heads + h) * T * T + q] / heads;
        return w;
      });
      const rolled = rollDown(r, plainBelow, T);
      for (let p = 0; p < patches; p++) {
        M(`chefer_top${K}`)[at + p] = r[prefix + p];
        M(`chefer_top${K}_rollout`)[at + p] = rolled[prefix + p];
      }
    }
    {
      const part = (name: string) => M(name).subarray(at, at + patches);
      M('chefer_rollout_x_sqrtgxi0').set(combinedRelevance(part('chefer'), part('rollout'), part('gxi0_abs'), patches), at);
      const ones = new Float32Array(patches).fill(1);
      M('fwd_last_plus_rollout').set(combinedRelevance(part('fwd_last_rollout'), part('rollout'), ones, patches), at);
      M('fwd_last_plus_vnorm').set(combinedRelevance(part('fwd_last_vnorm'), part('vnorm_rollout'), ones, patches), at);
      M('top1_plus_top1r').set(combinedRelevance(part('chefer_top1'), part('chefer_top1_rollout'), ones, patches), at);
      for (let p = 0; p < patches; p++) {
        M('top1_x_top1r')[at + p] = M('chefer_top1')[at + p] * M('chefer_top1_rollout')[at + p];
        M('top1_x_sqrt_top1r')[at + p] = M('chefer_top1')[at + p] * Math.sqrt(M('chefer_top1_rollout')[at + p]);
      }
      M('chefer_plus_rollout').set(combinedRelevance(part('chefer'), part('rollout'), ones, patches), at);
    }
    // Chefer's rule and rollout, each scaled to a maximum of 1, summed, times the square root of
    // pixel_gxi_abs: the served rule itself
    const part = (name: string) => M(name).subarray(at, at + patches);
    M('chefer_rollout_x_sqrtpx').set(combinedRelevance(part('chefer'), part('rollout'), part('pixel_gxi_abs'), patches), at);
  }
}

// the tests of bench/faithfulness.ts, patch level, on the model's own probabilities
const g: Geometry = { n, height: H, width: W, patch: P };
async function probabilitiesOf(imgs: Float32Array): Promise<Float32Array> {
  const out = new Float32Array(n * K);
  for (let s = 0; s < n; s += BATCHN) {
    const count = Math.min(BATCHN, n - s);
    out.set(await probs(imgs.slice(s * per, (s + count) * per), count), s * K);
  }
  return out;
}
const { kept, meanProbability } = predictionScores(probabilitiesOf, predicted, K);
const blur = blurred(X, g);
const only = arg('methods', '').split(',').filter(Boolean);
for (const [name, m] of Object.entries(methods).filter(([k]) => only.length === 0 || only.includes(k))) {
  const most = Array.from({ length: n }, (_, i) => patchOrder(m, i, g, true));
  const least = Array.from({ length: n }, (_, i) => patchOrder(m, i, g, false));
  const res = {
    pos: await perturbationArea(X, most, g, kept),
    neg: await perturbationArea(X, least, g, kept),
    del: await riseArea(X, null, most, 'patch', g, meanProbability),
    ins: await riseArea(X, blur, most, 'patch', g, meanProbability),
  };
  console.log(JSON.stringify({ model: dir, method: name, ...res }));
}
console.error(
  `forward-only [CLS] gradient of the last block: largest disagreement ` +
    `with the graph's ${gradCheck.toExponential(2)} (its largest value ` +
    `${gradScale.toExponential(2)})`,
);
