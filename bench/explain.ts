// The perturbation test of Chefer, Gur & Wolf (CVPR 2021 / ICCV 2021) on the first N CIFAR-10 test
// images: how faithful each attention map is to the model's own prediction.
//   npm run bench:explain [-- --model models/vit-cifar10] [--images 1000] [--data-dir data]
// For each image the model predicts a class c. Each method gives a map over the patches:
//   relevance  gradient-weighted attention (needs the model's relevance.onnx), for class c
//   rollout    attention rollout (heads averaged, identity added), class-agnostic
//   cls        the last layer's [CLS] attention, heads averaged, class-agnostic
//   random     a seeded random order (the floor)
// Patches are masked with the model's mean colour (0 after normalization) in order of the map,
// 10%, 20%, ... 90% of them: most relevant first ("positive": a faithful map destroys the prediction
// fast, lower area is better) and least relevant first ("negative": higher is better). The curve is the
// share of images whose prediction is still c; the figure is the area under it over 10-90%, as a
// percentage (trapezoids, divided by the 0.8 span). One JSON line per method, then a summary line.

import path from 'node:path';
import { relevanceInto, rolloutMeanInto } from '../server/attention.js';
import { ensureCifar10, readCifarBinaryFolder } from '../trainer/data/cifar10.js';
import { Rng } from '../trainer/nn/random.js';
import { argmax } from '../trainer/train/evaluate.js';
import { createSession, runSession } from '../runtime/ort.js';
import { modelFileIn, readModelConfig } from '../runtime/model-config.js';

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const dir = arg('model', 'models/vit-cifar10');
const N = Number(arg('images', '1000'));
const dataDir = arg('data-dir', 'data');
const BATCH = 100;

const config = await readModelConfig(dir);
if (!config.relevance) throw new Error(`${dir}: no relevance graph in config.json (export the model again)`);
const [H, W] = config.image_size;
const P = config.patch_size!;
const rows = H / P;
const cols = W / P;
const patches = rows * cols;
const prefix = config.prefix_tokens ?? 1; // [CLS] and any other tokens before the patches (imported models say)
const model = await createSession(modelFileIn(dir)!, { device: 'cpu' });
const explain = await createSession(path.join(dir, config.relevance.file), { device: 'cpu' });

const test = await readCifarBinaryFolder(await ensureCifar10(path.join(dataDir, 'cifar10')), 'test');
const n = Math.min(N, test.count);
const per = 3 * H * W;
const pixels = new Float32Array(n * per);
for (let i = 0; i < n * per; i++) {
  const c = Math.floor((i % per) / (H * W));
  pixels[i] = (test.images[i] / 255 - config.mean[c]) / config.std[c];
}

async function predict(x: Float32Array, count: number): Promise<Int32Array> {
  const out = await runSession(model, { [config.input_name]: { data: x, dims: [count, 3, H, W] } }, [config.logits_output]);
  const logits = out[config.logits_output].data;
  const K = logits.length / count;
  return Int32Array.from({ length: count }, (_, b) => argmax(logits, b * K, K));
}

// Predictions and the four maps of every image.
const METHODS = ['relevance', 'rollout', 'cls', 'random'] as const;
type Method = (typeof METHODS)[number];
const maps: Record<Method, Float32Array> = Object.fromEntries(METHODS.map((m) => [m, new Float32Array(n * patches)])) as Record<Method, Float32Array>;
const predicted = new Int32Array(n);
const rng = new Rng(0);
const t0 = performance.now();
for (let s = 0; s < n; s += BATCH) {
  const count = Math.min(BATCH, n - s);
  const x = pixels.slice(s * per, (s + count) * per);
  const out = await runSession(model, { [config.input_name]: { data: x, dims: [count, 3, H, W] } }, [config.logits_output, ...config.attention_outputs]);
  const logits = out[config.logits_output].data;
  const K = logits.length / count;
  const classes = new Float32Array(count);
  for (let b = 0; b < count; b++) predicted[s + b] = classes[b] = argmax(logits, b * K, K);
  const layers = config.attention_outputs.map((o) => out[o].data);
  const [, heads, tokens] = out[config.attention_outputs[0]].dims as number[];
  const rel = await runSession(explain, { [config.input_name]: { data: x, dims: [count, 3, H, W] }, [config.relevance.class_input]: { data: classes, dims: [count] } }, [...config.attention_outputs, ...config.relevance.gradient_outputs]);
  const relLayers = config.attention_outputs.map((o) => rel[o].data);
  const grads = config.relevance.gradient_outputs.map((o) => rel[o].data);
  const last = layers[layers.length - 1];
  for (let b = 0; b < count; b++) {
    const at = (s + b) * patches;
    relevanceInto(relLayers, grads, b, heads, tokens, maps.relevance, at, prefix);
    rolloutMeanInto(layers, b, heads, tokens, maps.rollout, at, prefix);
    for (let p = 0; p < patches; p++) {
      let v = 0;
      for (let h = 0; h < heads; h++) v += last[((b * heads + h) * tokens + 0) * tokens + prefix + p];
      maps.cls[at + p] = v / heads;
      maps.random[at + p] = rng.next();
    }
  }
}
const mapsS = (performance.now() - t0) / 1000;

const FRACTIONS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];

/** The share of images whose prediction survives masking a fraction of patches in map order. */
async function curve(method: Method, mostFirst: boolean): Promise<number[]> {
  const kept: number[] = [];
  for (const f of FRACTIONS) {
    const k = Math.round(f * patches);
    const masked = pixels.slice(0, n * per);
    for (let i = 0; i < n; i++) {
      const m = maps[method].subarray(i * patches, (i + 1) * patches);
      const order = Array.from({ length: patches }, (_, p) => p).sort((a, b) => (mostFirst ? m[b] - m[a] : m[a] - m[b]));
      for (const p of order.slice(0, k)) {
        const r0 = Math.floor(p / cols) * P;
        const c0 = (p % cols) * P;
        for (let c = 0; c < 3; c++) for (let y = r0; y < r0 + P; y++) masked.fill(0, i * per + (c * H + y) * W + c0, i * per + (c * H + y) * W + c0 + P);
      }
    }
    let same = 0;
    for (let s = 0; s < n; s += BATCH) {
      const count = Math.min(BATCH, n - s);
      const pred = await predict(masked.slice(s * per, (s + count) * per), count);
      for (let b = 0; b < count; b++) if (pred[b] === predicted[s + b]) same++;
    }
    kept.push(same / n);
  }
  return kept;
}

const auc = (ys: number[]) => {
  let a = 0;
  for (let i = 1; i < ys.length; i++) a += ((ys[i] + ys[i - 1]) / 2) * (FRACTIONS[i] - FRACTIONS[i - 1]);
  return +((100 * a) / (FRACTIONS.at(-1)! - FRACTIONS[0])).toFixed(2);
};

const results: Record<string, { positive: number; negative: number }> = {};
for (const method of METHODS) {
  const positive = await curve(method, true);
  const negative = await curve(method, false);
  results[method] = { positive: auc(positive), negative: auc(negative) };
  console.log(JSON.stringify({ bench: 'explain', model: dir, images: n, method, positive_auc: results[method].positive, negative_auc: results[method].negative, positive_curve: positive.map((v) => +v.toFixed(4)), negative_curve: negative.map((v) => +v.toFixed(4)) }));
}
const others = METHODS.filter((m) => m !== 'relevance' && m !== 'random');
console.log(
  JSON.stringify({
    bench: 'explain-summary',
    model: dir,
    images: n,
    maps_s: +mapsS.toFixed(2),
    relevance_beats_rollout_and_cls: others.every((m) => results.relevance.positive < results[m].positive && results.relevance.negative > results[m].negative),
  }),
);
