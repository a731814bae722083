// How the default explanation (`relevance`, server/attention.ts's combinedRelevance) was chosen: the
// candidate maps of one model, from its own autograd graph (attention probabilities, the residual
// stream entering each block, the input, and the class logit's gradient with respect to each), scored
// in-process by the perturbation test of bench/explain.ts (patches masked with the mean colour, 10%
// to 90%: the share of predictions kept; positive lower is better, negative higher) and by RISE's
// deletion (patches set to the mean colour in map order, 16 steps; the area under the predicted
// class's probability, lower is better) and insertion (revealed over a Gaussian blur, kernel 11,
// sigma 5, as RISE's; higher is better), patch level. One JSON line per candidate.
//   npx tsx bench/explain-select.ts --model models/cct-cifar10 --images 300 --offset 5000 [--methods a,b,…]
// Candidates: chefer (Chefer's rule), chefer_last (its last layer alone), rollout, cls, random,
// gxi0 / gxi0_abs / gxi_last (gradient x input at the embedded tokens, or the last block's input),
// attcat (each block's token gradient x input weighted by its [CLS] attention, summed), pixel_gxi /
// pixel_gxi_abs (gradient x input at the pixels, summed over each patch), grad_rollout (rollout over
// max(0, grad x attention), rows normalized), and Chefer's rule times pixel_gxi_abs to the power 1
// (chefer_x_pxabs), 0.5 (chefer_x_sqrtpx: what relevance serves) or 0.25 (chefer_x_px025), and other
// products.
import { combinedRelevance, relevanceInto, rolloutMeanInto } from '../server/attention.js';
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

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
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
const outputs: [string, any][] = [['logits', out.logits], ...out.attentions.map((a, i) => [`a${i}`, a] as [string, any]), ...out.hidden.map((h, i) => [`h${i}`, h] as [string, any]), ...gs.map((g, i) => [`g${i}`, g] as [string, any])];
const graph = await OrtGraph.create({ outputs, initializers: new Map(model.namedParameters().map(([n, p]) => [n, p.data])), graphName: 'proto' });
const fwd = await OrtGraph.create({ outputs: [['logits', out.logits]], initializers: new Map(model.namedParameters().map(([n, p]) => [n, p.data])), graphName: 'fwd' });

const [H, W] = config.image_size;
const P = config.patch_size!;
const rows = H / P, cols = W / P, patches = rows * cols;
const prefix = config.prefix_tokens ?? 1;
const test = await readCifarBinaryFolder(await ensureCifar10('data/cifar10'), 'test');
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
  for (let b = 0; b < count; b++) { let m = -Infinity; for (let k = 0; k < K; k++) m = Math.max(m, o[b * K + k]); let s = 0; for (let k = 0; k < K; k++) s += (p[b * K + k] = Math.exp(o[b * K + k] - m)); for (let k = 0; k < K; k++) p[b * K + k] /= s; }
  return p;
}
const methods: Record<string, Float32Array> = {};
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
    relevanceInto(A, GA, b, heads, T, M('chefer'), at, prefix);
    rolloutMeanInto(A, b, heads, T, M('rollout'), at, prefix);
    // chefer on the last layer only
    relevanceInto(A.slice(L - 1), GA.slice(L - 1), b, heads, T, M('chefer_last'), at, prefix);
    for (let p = 0; p < patches; p++) {
      const t = prefix + p;
      let v = 0;
      for (let h = 0; h < heads; h++) v += A[L - 1][((b * heads + h) * T + 0) * T + t];
      M('cls')[at + p] = v / heads;
      M('random')[at + p] = rng.next();
      const gxi = (l: number) => { let g = 0; for (let d = 0; d < D; d++) g += Hs[l][(b * T + t) * D + d] * GH[l][(b * T + t) * D + d]; return g; };
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
      const r0 = Math.floor(p / cols) * P, c0 = (p % cols) * P;
      let px = 0, pxAbs = 0;
      for (let ch = 0; ch < 3; ch++) for (let y = r0; y < r0 + P; y++) for (let xx = c0; xx < c0 + P; xx++) { const i = (b * 3 + ch) * H * W + y * W + xx; px += x[i] * GX[i]; pxAbs += Math.abs(x[i] * GX[i]); }
      M('pixel_gxi')[at + p] = px;
      M('pixel_gxi_abs')[at + p] = pxAbs;
    }
    // gradient-weighted rollout: per layer Abar = mean_h relu(grad*A), rows normalized, 0.5 residual
    {
      const gr = new Float64Array(T); gr[0] = 1;
      for (let l = L - 1; l >= 0; l--) {
        const next = new Float64Array(T);
        for (let i = 0; i < T; i++) {
          if (gr[i] === 0) continue;
          const row = new Float64Array(T); let sum = 0;
          for (let j = 0; j < T; j++) { let v = 0; for (let h = 0; h < heads; h++) { const q = ((b * heads + h) * T + i) * T + j; const w = A[l][q] * GA[l][q]; if (w > 0) v += w / heads; } row[j] = v; sum += v; }
          if (sum > 0) for (let j = 0; j < T; j++) next[j] += gr[i] * 0.5 * row[j] / sum; else next[i] += gr[i] * 0.5;
          next[i] += gr[i] * 0.5;
        }
        gr.set(next);
      }
      for (let p = 0; p < patches; p++) M('grad_rollout')[at + p] = gr[prefix + p];
    }
    for (let p = 0; p < patches; p++) {
      M('chefer_x_sqrtpx')[at + p] = M('chefer')[at + p] * Math.sqrt(M('pixel_gxi_abs')[at + p]);
      M('chefer_x_px025')[at + p] = M('chefer')[at + p] * Math.pow(M('pixel_gxi_abs')[at + p], 0.25);
      M('rollout_x_pxabs')[at + p] = M('rollout')[at + p] * M('pixel_gxi_abs')[at + p];
      M('chefer_x_gxi0abs')[at + p] = M('chefer')[at + p] * M('gxi0_abs')[at + p];
      M('chefer_x_sqrtgxi0abs')[at + p] = M('chefer')[at + p] * Math.sqrt(M('gxi0_abs')[at + p]);
      M('chefer_x_gxi0')[at + p] = M('chefer')[at + p] * Math.max(0, M('gxi0')[at + p]);
      M('chefer_x_pxabs')[at + p] = M('chefer')[at + p] * M('pixel_gxi_abs')[at + p];
      M('rollout_x_sqrtpx')[at + p] = M('rollout')[at + p] * Math.sqrt(M('pixel_gxi_abs')[at + p]);
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
  const res = { pos: await perturbationArea(X, most, g, kept), neg: await perturbationArea(X, least, g, kept), del: await riseArea(X, null, most, 'patch', g, meanProbability), ins: await riseArea(X, blur, most, 'patch', g, meanProbability) };
  console.log(JSON.stringify({ model: dir, method: name, ...res }));
}
