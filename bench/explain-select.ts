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
import { relevanceInto, rolloutMeanInto } from '../server/attention.js';
import { ensureCifar10, readCifarBinaryFolder } from '../trainer/data/cifar10.js';
import { Rng } from '../trainer/nn/random.js';
import { grad } from '../trainer/autograd/grad.js';
import { input, mul, oneHot, reduceSum } from '../trainer/autograd/ops.js';
import { OrtGraph } from '../trainer/autograd/ort-executor.js';
import { GraphContext } from '../trainer/nn/module.js';
import { BATCH, pixelInput } from '../trainer/vit/model.js';
import { initConfig, initModel, readInit } from '../trainer/vit/init.js';
import { readModelConfig } from '../runtime/model-config.js';

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
const argmax = (a: Float32Array, o: number, k: number) => { let b = 0; for (let i = 1; i < k; i++) if (a[o + i] > a[o + b]) b = i; return b; };
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
      M('chefer_x_gxi0')[at + p] = M('chefer')[at + p] * Math.max(0, M('gxi0')[at + p]);
      M('chefer_x_pxabs')[at + p] = M('chefer')[at + p] * M('pixel_gxi_abs')[at + p];
    }
  }
}

// perturbation (keep rate) 10..90% and deletion/insertion (prob of predicted class), patch level, 16 steps
const FR = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];
function orderOf(m: Float32Array, i: number, most: boolean): number[] {
  const v = m.subarray(i * patches, (i + 1) * patches);
  return Array.from({ length: patches }, (_, p) => p).sort((a, b) => (most ? v[b] - v[a] : v[a] - v[b]));
}
function setPatch(dst: Float32Array, src: Float32Array, i: number, p: number) {
  const r0 = Math.floor(p / cols) * P, c0 = (p % cols) * P;
  for (let ch = 0; ch < 3; ch++) for (let y = r0; y < r0 + P; y++) { const o = i * per + (ch * H + y) * W + c0; for (let k = 0; k < P; k++) dst[o + k] = src[o + k]; }
}
const ZERO = new Float32Array(n * per);
// blurred: gaussian klen 11 sigma 5, per channel, zero padded (as RISE's conv2d padding klen//2)
const BLUR = new Float32Array(n * per);
{
  const kl = 11, sg = 5, half = 5;
  const k1 = Array.from({ length: kl }, (_, i) => Math.exp(-((i - half) ** 2) / (2 * sg * sg)));
  const ks = k1.reduce((a, b) => a + b, 0);
  const kn = k1.map((v) => v / ks);
  const tmp = new Float32Array(H * W);
  for (let i = 0; i < n; i++) for (let ch = 0; ch < 3; ch++) {
    const o = (i * 3 + ch) * H * W;
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) { let v = 0; for (let k = 0; k < kl; k++) { const xx = x + k - half; if (xx >= 0 && xx < W) v += kn[k] * X[o + y * W + xx]; } tmp[y * W + x] = v; }
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) { let v = 0; for (let k = 0; k < kl; k++) { const yy = y + k - half; if (yy >= 0 && yy < H) v += kn[k] * tmp[yy * W + x]; } BLUR[o + y * W + x] = v; }
  }
}
async function evalAll(imgs: Float32Array): Promise<Float32Array> {
  const pr = new Float32Array(n);
  for (let s = 0; s < n; s += BATCHN) {
    const count = Math.min(BATCHN, n - s);
    const p = await probs(imgs.slice(s * per, (s + count) * per), count);
    for (let b = 0; b < count; b++) pr[s + b] = p[b * K + predicted[s + b]] ;
  }
  return pr;
}
async function keepRate(imgs: Float32Array): Promise<number> {
  let same = 0;
  for (let s = 0; s < n; s += BATCHN) {
    const count = Math.min(BATCHN, n - s);
    const p = await probs(imgs.slice(s * per, (s + count) * per), count);
    for (let b = 0; b < count; b++) if (argmax(p, b * K, K) === predicted[s + b]) same++;
  }
  return same / n;
}
const STEPS = 16;
const res: Record<string, Record<string, number>> = {};
const only = arg('methods', '').split(',').filter(Boolean);
for (const [name, m] of Object.entries(methods).filter(([k]) => only.length === 0 || only.includes(k))) {
  const orders = { most: Array.from({ length: n }, (_, i) => orderOf(m, i, true)), least: Array.from({ length: n }, (_, i) => orderOf(m, i, false)) };
  const pert = async (most: boolean) => {
    const ys: number[] = [];
    for (const f of FR) {
      const k = Math.round(f * patches);
      const img = X.slice();
      for (let i = 0; i < n; i++) for (const p of orders[most ? 'most' : 'least'][i].slice(0, k)) setPatch(img, ZERO, i, p);
      ys.push(await keepRate(img));
    }
    let a = 0; for (let i = 1; i < ys.length; i++) a += (ys[i] + ys[i - 1]) / 2 * 0.1; return +(100 * a / 0.8).toFixed(2);
  };
  const curve = async (insert: boolean) => {
    const ys: number[] = [];
    for (let st = 0; st <= STEPS; st++) {
      const k = Math.round((st / STEPS) * patches);
      const img = insert ? BLUR.slice() : X.slice();
      for (let i = 0; i < n; i++) for (const p of orders.most[i].slice(0, k)) setPatch(img, insert ? X : ZERO, i, p);
      const pr = await evalAll(img);
      ys.push(pr.reduce((a, b) => a + b, 0) / n);
    }
    let a = 0; for (let i = 1; i < ys.length; i++) a += (ys[i] + ys[i - 1]) / 2 / STEPS; return +(100 * a).toFixed(2);
  };
  res[name] = { pos: await pert(true), neg: await pert(false), del: await curve(false), ins: await curve(true) };
  console.log(JSON.stringify({ model: dir, method: name, ...res[name] }));
}
