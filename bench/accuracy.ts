// Accuracy through the service: every CIFAR-10 test image, encoded as a PNG, POSTed to /classify over
// real HTTP; the top prediction against the label. What a user of the API gets, decode and all.
//   npm run bench:accuracy [-- --models models] [--model NAME ...] [--images 10000] [--url http://host:port]
//                          [--concurrency 16] [--data-dir data] [--tta none|flip|none,flip]
// Without --url the service is started here on the models folder (default options, CPU), on a free
// port. `--tta flip` posts with `tta=flip` (the logits averaged with the mirror image's); a list runs
// each model once per value. One JSON line per model and tta: accuracy, per-class accuracy, images,
// seconds; then a summary line. `--model-folder NAME=DIR` serves a folder beside (or without) --models.
// `--agreement`: the first model is the reference (a float graph), and each other model's row also says
// on how many images its top prediction is the reference's, and how its default maps (the rollout
// /classify returns) correlate with the reference's, image by image (Pearson; the mean, the median and
// the lowest 5%):
//   npm run bench:accuracy -- --model-folder float=models/vit-cifar10 \
//     --model-folder int8=data/bench/quantized/vit-cifar10 --model float --model int8 --agreement

import path from 'node:path';
import sharp from 'sharp';
import { buildApp } from '../server/http/app.js';
import { defaultServeConfig } from '../server/config.js';
import { resolveSources } from '../server/engine/models.js';
import { ensureCifar10, readCifarBinaryFolder } from '../trainer/data/cifar10.js';
import { Results, benchArgs } from './common.js';

const { arg, all, flag } = benchArgs(
  'npm run bench:accuracy [-- --models models] [--model-folder NAME=DIR ...] [--model NAME ...] [--agreement] [--images 10000] ' +
    '[--url http://host:port]',
  {
    strings: ['concurrency', 'data-dir', 'images', 'model', 'model-folder', 'models', 'tta', 'url'],
    multiple: ['model', 'model-folder'],
    booleans: ['agreement'],
  },
);
const agreement = flag('agreement');
/** The folders given, by the name each is served under (said in each model's row): the server's own reading. */
const { folders } = resolveSources({ models: null, modelFolder: all('model-folder') });

const N = Number(arg('images', '10000'));
const concurrency = Number(arg('concurrency', '16'));
const dataDir = arg('data-dir', 'data');
const ttas = arg('tta', 'none').split(',');
for (const t of ttas) {
  if (t !== 'none' && t !== 'flip') {
    process.stderr.write(`bench:accuracy: --tta must be none, flip or a list of them (none,flip), got '${t}'\n`);
    process.exit(2);
  }
}

let base = arg('url', '');
let close = async () => {};
if (!base) {
  const app = await buildApp(
    {
      ...defaultServeConfig(),
      models: arg('models', all('model-folder').length > 0 ? '' : 'models') || null,
      modelFolder: all('model-folder'),
      device: 'cpu',
      logLevel: 'silent',
    },
    { logger: false },
  );
  base = await app.listen({ port: 0, host: '127.0.0.1' });
  close = () => app.close();
}

const listed = (await (await fetch(`${base}/models`)).json()) as { models: { name: string }[] };
const models = all('model').length > 0 ? all('model') : listed.models.map((m) => m.name);

const test = await readCifarBinaryFolder(await ensureCifar10(path.join(dataDir, 'cifar10')), 'test');
const n = Math.min(N, test.count);
const side = 32;
const plane = side * side;
process.stderr.write(`encoding ${n} test images as PNG\n`);
const pngs: Buffer[] = [];
for (let i = 0; i < n; i++) {
  const hwc = Buffer.alloc(3 * plane);
  for (let p = 0; p < plane; p++) for (let c = 0; c < 3; c++) hwc[p * 3 + c] = test.images[i * 3 * plane + c * plane + p];
  pngs.push(
    await sharp(hwc, { raw: { width: side, height: side, channels: 3 } })
      .png()
      .toBuffer(),
  );
}

/** Pearson's correlation of two maps. */
function correlation(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  let [ma, mb] = [0, 0];
  for (let k = 0; k < n; k++) [ma, mb] = [ma + a[k] / n, mb + b[k] / n];
  let [ab, aa, bb] = [0, 0, 0];
  for (let k = 0; k < n; k++) [ab, aa, bb] = [ab + (a[k] - ma) * (b[k] - mb), aa + (a[k] - ma) ** 2, bb + (b[k] - mb) ** 2];
  return aa > 0 && bb > 0 ? ab / Math.sqrt(aa * bb) : aa === bb ? 1 : 0;
}
/** Each model's top prediction and default map per image (with --agreement). */
const seenBy = new Map<string, { top: Int32Array; maps: (number[] | null)[] }>();

const summary: Record<string, number> = {};
const results = new Results('accuracy', 'CIFAR-10 test accuracy through the service: each test image a PNG posted to /classify');
for (const model of models)
  for (const tta of ttas) {
    const key = tta === 'none' ? model : `${model} tta=flip`;
    const t0 = performance.now();
    const correct = new Int32Array(test.classes.length);
    const seen = new Int32Array(test.classes.length);
    let next = 0;
    let failed = 0;
    const top = new Int32Array(n);
    const maps: (number[] | null)[] = new Array(n).fill(null);
    const worker = async () => {
      while (next < n) {
        const i = next++;
        const flip = tta === 'flip' ? '&tta=flip' : '';
        const query = `model=${encodeURIComponent(model)}&attention=${agreement ? 'rollout' : 'none'}&topk=1${flip}`;
        const res = await fetch(`${base}/classify?${query}`, { method: 'POST', body: pngs[i], headers: { 'content-type': 'image/png' } });
        if (res.status !== 200) {
          failed++;
          await res.arrayBuffer();
          continue;
        }
        const body = (await res.json()) as { predictions: { index: number }[]; attention?: { values: number[][] } };
        top[i] = body.predictions[0].index;
        maps[i] = body.attention ? body.attention.values.flat() : null;
        const label = test.labels[i];
        seen[label]++;
        if (body.predictions[0].index === label) correct[label]++;
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    if (failed > 0) throw new Error(`${key}: ${failed} requests failed`);
    const total = correct.reduce((a, b) => a + b, 0);
    const perClass = Object.fromEntries(test.classes.map((c, k) => [c, Number((correct[k] / seen[k]).toFixed(4))]));
    summary[key] = total / n;
    const reference = agreement ? seenBy.get(`${models[0]}:${tta}`) : undefined;
    let agreed: Record<string, number | string> = {};
    if (reference) {
      let same = 0;
      const r: number[] = [];
      for (let i = 0; i < n; i++) {
        if (top[i] === reference.top[i]) same++;
        if (maps[i] && reference.maps[i]) r.push(correlation(maps[i]!, reference.maps[i]!));
      }
      r.sort((a, b) => a - b);
      agreed = {
        agreement_with: models[0],
        top1_agreement: Number((same / n).toFixed(4)),
        ...(r.length > 0
          ? {
              rollout_correlation_mean: Number((r.reduce((a, b) => a + b, 0) / r.length).toFixed(4)),
              rollout_correlation_median: Number(r[r.length >> 1].toFixed(4)),
              rollout_correlation_p5: Number(r[Math.floor(r.length * 0.05)].toFixed(4)),
            }
          : {}),
      };
    } else if (agreement) seenBy.set(`${model}:${tta}`, { top, maps });
    results.add({
      model,
      ...(folders[model] ? { folder: folders[model] } : {}),
      tta,
      images: n,
      accuracy: Number((total / n).toFixed(4)),
      correct: total,
      per_class: perClass,
      ...agreed,
      seconds: Number(((performance.now() - t0) / 1000).toFixed(1)),
      via: 'POST /classify',
    });
  }
console.log(JSON.stringify({ summary: Object.fromEntries(Object.entries(summary).map(([k, v]) => [k, `${(100 * v).toFixed(2)}%`])) }));
results.save();
await close();
