// How faithful each served map is to the model's own prediction, through HTTP: `vitrine serve` on the
// bundled models, the first N CIFAR-10 test images posted to POST /classify as PNGs, every method's
// map fetched from GET /attention/:id?format=json (what a user gets), and the perturbed images
// classified by POST /v2/models/{name}/infer (FP32 binary, 100 images a request).
//   npm run bench:explain [-- --models cct-cifar10,vit-cifar10] [--images 1000] [--data-dir data]
// Methods: relevance (the default explanation), chefer, grad-input (for the predicted class c),
// rollout, cls (class-agnostic) and a seeded random order (the floor). Two tests:
//   perturbation (Chefer, Gur & Wolf): patches masked with the mean colour (0 after normalization) in
//     map order, 10%, 20%, ... 90% of them, most relevant first ("positive": lower is better) and least
//     relevant first ("negative": higher is better); the curve is the share of images still predicted
//     c, the figure its area over 10-90% in percent (trapezoids over the 0.8 span).
//   deletion and insertion (RISE, Petsiuk et al. 2018): in map order, most relevant first, 16 equal
//     steps, the image's pixels are set to the mean colour (deletion, lower is better) or revealed over
//     a blurred copy (insertion, Gaussian kernel 11, sigma 5, zero-padded, as RISE's; higher is
//     better); the figure is the mean over images of the area under the probability of c, in percent.
//     Patch level: whole patches in the grid's order. Pixel level: each pixel ranked by the map
//     bilinearly interpolated between patch centres (ties: the grid's order).
// One JSON line per model and method, then a summary line per model.

import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { ensureCifar10, readCifarBinaryFolder } from '../trainer/data/cifar10.js';
import { Rng } from '../trainer/nn/random.js';
import { readModelConfig } from '../runtime/model-config.js';
import { waitReady } from './ready.js';

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const models = arg('models', 'cct-cifar10,vit-cifar10').split(',');
const N = Number(arg('images', '1000'));
const dataDir = arg('data-dir', 'data');
const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const METHODS = ['relevance', 'chefer', 'grad-input', 'rollout', 'cls', 'random'] as const;
type Method = (typeof METHODS)[number];
const STEPS = 16;
const FRACTIONS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];
const BATCH = 100;

const port = 19000 + Math.floor(Math.random() * 1000);
const base = `http://127.0.0.1:${port}`;
const server = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'bin', 'vitrine.ts'), 'serve', '--models', path.join(root, 'models'), '--port', String(port), '--host', '127.0.0.1', '--log-level', 'warn', '--results-capacity', String(N + 16)], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
process.on('exit', () => server.kill('SIGTERM'));
await waitReady(base, 60);
const test = await readCifarBinaryFolder(await ensureCifar10(path.join(dataDir, 'cifar10')), 'test');

for (const name of models) {
  const config = await readModelConfig(path.join(root, 'models', name));
  const [H, W] = config.image_size;
  const P = config.patch_size!;
  const rows = H / P;
  const cols = W / P;
  const patches = rows * cols;
  const per = 3 * H * W;
  const n = Math.min(N, test.count);
  const K = config.labels.length;
  const x = new Float32Array(n * per); // normalized, as the service makes them from the PNGs (tested bit for bit)
  for (let i = 0; i < n * per; i++) {
    const c = Math.floor((i % per) / (H * W));
    x[i] = (test.images[i] / 255 - config.mean[c]) / config.std[c];
  }

  // Predictions and maps, as served.
  const predicted = new Int32Array(n);
  const maps = Object.fromEntries(METHODS.map((m) => [m, new Float32Array(n * patches)])) as Record<Method, Float32Array>;
  const rng = new Rng(0);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const hwc = Buffer.alloc(H * W * 3);
    for (let p = 0; p < H * W; p++) for (let c = 0; c < 3; c++) hwc[p * 3 + c] = test.images[i * per + c * H * W + p];
    const png = await sharp(hwc, { raw: { width: W, height: H, channels: 3 } }).png().toBuffer();
    const r = await fetch(`${base}/classify?model=${name}&attention=none`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: png });
    const body = (await r.json()) as { id: string; predictions: { index: number }[] };
    predicted[i] = body.predictions[0].index;
    for (const m of METHODS) {
      if (m === 'random') {
        for (let p = 0; p < patches; p++) maps.random[i * patches + p] = rng.next();
        continue;
      }
      const a = (await (await fetch(`${base}/attention/${body.id}?method=${m}&format=json`)).json()) as { values: number[][] };
      maps[m].set(a.values.flat(), i * patches);
    }
  }
  const mapsS = (performance.now() - t0) / 1000;

  /** Probabilities of the predicted classes of images [0, n) of `imgs`, through /v2 infer. */
  async function probabilities(imgs: Float32Array): Promise<Float64Array> {
    const out = new Float64Array(n * K);
    for (let s = 0; s < n; s += BATCH) {
      const count = Math.min(BATCH, n - s);
      const data = imgs.subarray(s * per, (s + count) * per);
      const header = Buffer.from(JSON.stringify({ inputs: [{ name: config.input_name, datatype: 'FP32', shape: [count, 3, H, W], parameters: { binary_data_size: data.byteLength } }], outputs: [{ name: config.logits_output }] }));
      const r = await fetch(`${base}/v2/models/${name}/infer`, { method: 'POST', headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(header.length) }, body: Buffer.concat([header, Buffer.from(data.buffer, data.byteOffset, data.byteLength)]) });
      const logits = ((await r.json()) as { outputs: { data: number[] }[] }).outputs[0].data;
      for (let b = 0; b < count; b++) {
        const row = logits.slice(b * K, (b + 1) * K);
        const max = Math.max(...row);
        const e = row.map((v) => Math.exp(v - max));
        const z = e.reduce((a, v) => a + v, 0);
        for (let k = 0; k < K; k++) out[(s + b) * K + k] = e[k] / z;
      }
    }
    return out;
  }
  const argmaxOf = (p: Float64Array, i: number) => {
    let best = 0;
    for (let k = 1; k < K; k++) if (p[i * K + k] > p[i * K + best]) best = k;
    return best;
  };

  // Orders: patches by the map (most first), and pixels by the bilinear map.
  const patchOrder = (m: Float32Array, i: number, most: boolean) => {
    const v = m.subarray(i * patches, (i + 1) * patches);
    return Array.from({ length: patches }, (_, p) => p).sort((a, b) => (most ? v[b] - v[a] : v[a] - v[b]));
  };
  const pixelOrder = (m: Float32Array, i: number) => {
    const v = m.subarray(i * patches, (i + 1) * patches);
    const at = (r: number, c: number) => v[Math.min(rows - 1, Math.max(0, r)) * cols + Math.min(cols - 1, Math.max(0, c))];
    const score = new Float64Array(H * W);
    for (let y = 0; y < H; y++)
      for (let xx = 0; xx < W; xx++) {
        const fy = (y + 0.5) / P - 0.5;
        const fx = (xx + 0.5) / P - 0.5;
        const r0 = Math.floor(fy);
        const c0 = Math.floor(fx);
        const dy = fy - r0;
        const dx = fx - c0;
        score[y * W + xx] = (1 - dy) * ((1 - dx) * at(r0, c0) + dx * at(r0, c0 + 1)) + dy * ((1 - dx) * at(r0 + 1, c0) + dx * at(r0 + 1, c0 + 1));
      }
    return Array.from({ length: H * W }, (_, p) => p).sort((a, b) => score[b] - score[a] || a - b);
  };
  const copyPatch = (dst: Float32Array, src: Float32Array | null, i: number, p: number) => {
    const r0 = Math.floor(p / cols) * P;
    const c0 = (p % cols) * P;
    for (let c = 0; c < 3; c++) for (let y = r0; y < r0 + P; y++) for (let k = 0; k < P; k++) { const o = i * per + (c * H + y) * W + c0 + k; dst[o] = src ? src[o] : 0; }
  };
  const copyPixel = (dst: Float32Array, src: Float32Array | null, i: number, q: number) => {
    for (let c = 0; c < 3; c++) { const o = i * per + c * H * W + q; dst[o] = src ? src[o] : 0; }
  };

  // The blurred start of insertion.
  const blurred = new Float32Array(n * per);
  {
    const half = 5;
    const k1 = Array.from({ length: 11 }, (_, i) => Math.exp(-((i - half) ** 2) / 50));
    const z = k1.reduce((a, b) => a + b, 0);
    const k = k1.map((v) => v / z);
    const tmp = new Float64Array(H * W);
    for (let img = 0; img < n * 3; img++) {
      const o = img * H * W;
      for (let y = 0; y < H; y++) for (let xx = 0; xx < W; xx++) { let s = 0; for (let j = 0; j < 11; j++) { const q = xx + j - half; if (q >= 0 && q < W) s += k[j] * x[o + y * W + q]; } tmp[y * W + xx] = s; }
      for (let y = 0; y < H; y++) for (let xx = 0; xx < W; xx++) { let s = 0; for (let j = 0; j < 11; j++) { const q = y + j - half; if (q >= 0 && q < H) s += k[j] * tmp[q * W + xx]; } blurred[o + y * W + xx] = s; }
    }
  }

  const results: Record<string, Record<string, number>> = {};
  for (const method of METHODS) {
    const m = maps[method];
    const most = Array.from({ length: n }, (_, i) => patchOrder(m, i, true));
    const least = Array.from({ length: n }, (_, i) => patchOrder(m, i, false));
    const pixels = Array.from({ length: n }, (_, i) => pixelOrder(m, i));
    const perturbation = async (orders: number[][]) => {
      const ys: number[] = [];
      for (const f of FRACTIONS) {
        const k = Math.round(f * patches);
        const img = x.slice();
        for (let i = 0; i < n; i++) for (const p of orders[i].slice(0, k)) copyPatch(img, null, i, p);
        const pr = await probabilities(img);
        let same = 0;
        for (let i = 0; i < n; i++) if (argmaxOf(pr, i) === predicted[i]) same++;
        ys.push(same / n);
      }
      let a = 0;
      for (let i = 1; i < ys.length; i++) a += ((ys[i] + ys[i - 1]) / 2) * (FRACTIONS[i] - FRACTIONS[i - 1]);
      return +((100 * a) / (FRACTIONS.at(-1)! - FRACTIONS[0])).toFixed(2);
    };
    const rise = async (insert: boolean, level: 'patch' | 'pixel') => {
      const total = level === 'patch' ? patches : H * W;
      const ys: number[] = [];
      for (let st = 0; st <= STEPS; st++) {
        const k = Math.round((st / STEPS) * total);
        const img = insert ? blurred.slice() : x.slice();
        for (let i = 0; i < n; i++) {
          const order = level === 'patch' ? most[i] : pixels[i];
          for (const q of order.slice(0, k)) (level === 'patch' ? copyPatch : copyPixel)(img, insert ? x : null, i, q);
        }
        const pr = await probabilities(img);
        let sum = 0;
        for (let i = 0; i < n; i++) sum += pr[i * K + predicted[i]];
        ys.push(sum / n);
      }
      let a = 0;
      for (let i = 1; i < ys.length; i++) a += (ys[i] + ys[i - 1]) / 2 / STEPS;
      return +(100 * a).toFixed(2);
    };
    results[method] = {
      positive: await perturbation(most),
      negative: await perturbation(least),
      deletion: await rise(false, 'patch'),
      insertion: await rise(true, 'patch'),
      deletion_pixels: await rise(false, 'pixel'),
      insertion_pixels: await rise(true, 'pixel'),
    };
    console.log(JSON.stringify({ bench: 'explain', model: name, images: n, method, ...results[method] }));
  }
  const d = results.relevance;
  const beats = (o: Record<string, number>) => d.positive < o.positive && d.negative > o.negative && d.deletion < o.deletion && d.insertion > o.insertion && d.deletion_pixels < o.deletion_pixels && d.insertion_pixels > o.insertion_pixels;
  console.log(JSON.stringify({ bench: 'explain-summary', model: name, images: n, maps_s: +mapsS.toFixed(1), relevance_beats_rollout_and_cls_on_every_test: beats(results.rollout) && beats(results.cls) }));
}
server.kill('SIGTERM');
