// How faithful each served map is to the model's own prediction, through HTTP: `vitrine serve` on the
// bundled models, the first N CIFAR-10 test images posted to POST /classify as PNGs, every method's
// map fetched from GET /attention/:id?format=json (what a user gets), and the perturbed images
// classified by POST /v2/models/{name}/infer (FP32 binary, 100 images a request).
//   npm run bench:explain [-- --models cct-cifar10,vit-cifar10] [--images 1000] [--data-dir data] [--methods relevance,rollout,cls]
// Methods: relevance (the default explanation), chefer, grad-input, combined (for the predicted class c),
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
import { softmax } from '../server/engine/classify.js';
import { type Geometry, blurred, patchOrder, perturbationArea, pixelOrder, predictionScores, riseArea } from './faithfulness.js';
import { waitReady } from './ready.js';
import { Results, benchArgs } from './common.js';

const { arg } = benchArgs(
  'npm run bench:explain [-- --models cct-cifar10,vit-cifar10] [--images 1000] [--data-dir data] [--methods relevance,rollout,cls]',
  { strings: ['data-dir', 'images', 'methods', 'models'] },
);
const table = new Results(
  'explain',
  'Faithfulness of each served map through HTTP: perturbation (positive lower, negative higher is better) ' +
    'and RISE deletion (lower) and insertion (higher)',
);

const models = arg('models', 'cct-cifar10,vit-cifar10').split(',');
const N = Number(arg('images', '1000'));
const dataDir = arg('data-dir', 'data');
const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const ALL_METHODS = ['relevance', 'chefer', 'grad-input', 'combined', 'rollout', 'cls', 'random'] as const;
type Method = (typeof ALL_METHODS)[number];
// --methods a,b: only these (the summary line needs relevance, rollout and cls)
const asked = arg('methods', '').split(',').filter(Boolean);
const unknown = asked.filter((m) => !(ALL_METHODS as readonly string[]).includes(m));
if (unknown.length) throw new Error(`unknown method ${unknown.join(', ')}: ${ALL_METHODS.join(', ')}`);
const METHODS = asked.length ? ALL_METHODS.filter((m) => asked.includes(m)) : ALL_METHODS;
const BATCH = 100;

const port = 19000 + Math.floor(Math.random() * 1000);
const base = `http://127.0.0.1:${port}`;
const server = spawn(
  process.execPath,
  [
    '--import',
    'tsx',
    path.join(root, 'bin', 'vitrine.ts'),
    'serve',
    '--models',
    path.join(root, 'models'),
    '--port',
    String(port),
    '--host',
    '127.0.0.1',
    '--log-level',
    'warn',
    '--results-capacity',
    String(N + 16),
  ],
  { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] },
);
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
    const png = await sharp(hwc, { raw: { width: W, height: H, channels: 3 } })
      .png()
      .toBuffer();
    const r = await fetch(`${base}/classify?model=${name}&attention=none`, {
      method: 'POST',
      headers: { 'content-type': 'image/png' },
      body: png,
    });
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
      const header = Buffer.from(
        JSON.stringify({
          inputs: [
            { name: config.input_name, datatype: 'FP32', shape: [count, 3, H, W], parameters: { binary_data_size: data.byteLength } },
          ],
          outputs: [{ name: config.logits_output }],
        }),
      );
      const r = await fetch(`${base}/v2/models/${name}/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(header.length) },
        body: Buffer.concat([header, Buffer.from(data.buffer, data.byteOffset, data.byteLength)]),
      });
      const logits = ((await r.json()) as { outputs: { data: number[] }[] }).outputs[0].data;
      for (let b = 0; b < count; b++) out.set(softmax(Float32Array.from(logits.slice(b * K, (b + 1) * K))), (s + b) * K);
    }
    return out;
  }
  const g: Geometry = { n, height: H, width: W, patch: P };
  const { kept, meanProbability } = predictionScores(probabilities, predicted, K);
  const blur = blurred(x, g);

  const results: Record<string, Record<string, number>> = {};
  for (const method of METHODS) {
    const m = maps[method];
    const most = Array.from({ length: n }, (_, i) => patchOrder(m, i, g, true));
    const least = Array.from({ length: n }, (_, i) => patchOrder(m, i, g, false));
    const pixels = Array.from({ length: n }, (_, i) => pixelOrder(m, i, g));
    results[method] = {
      positive: await perturbationArea(x, most, g, kept),
      negative: await perturbationArea(x, least, g, kept),
      deletion: await riseArea(x, null, most, 'patch', g, meanProbability),
      insertion: await riseArea(x, blur, most, 'patch', g, meanProbability),
      deletion_pixels: await riseArea(x, null, pixels, 'pixel', g, meanProbability),
      insertion_pixels: await riseArea(x, blur, pixels, 'pixel', g, meanProbability),
    };
    table.add({ model: name, images: n, method, ...results[method] });
  }
  if (!results.relevance || !results.rollout || !results.cls) continue;
  const d = results.relevance;
  const beats = (o: Record<string, number>) =>
    d.positive < o.positive &&
    d.negative > o.negative &&
    d.deletion < o.deletion &&
    d.insertion > o.insertion &&
    d.deletion_pixels < o.deletion_pixels &&
    d.insertion_pixels > o.insertion_pixels;
  table.add({
    model: name,
    images: n,
    summary: 'relevance ahead of rollout and cls on all six',
    value: beats(results.rollout) && beats(results.cls),
    maps_s: +mapsS.toFixed(1),
  });
}
table.save();
server.kill('SIGTERM');
