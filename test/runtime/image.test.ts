// The model input of a large upload: the k x k block means of the view it was decoded to.

import t from 'tap';
import { prepareImage } from '../../runtime/image.js';
import { boxDownsample } from '../../runtime/pixels.js';
import { Rng } from '../../trainer/nn/random.js';
import { testImage } from '../helpers/server.js';

t.test('boxDownsample is the rounded mean of each k x k block', async (t) => {
  const rng = new Rng(5);
  for (const [w, h, k] of [
    [64, 64, 2],
    [96, 48, 3],
    [256, 256, 8],
  ]) {
    const rgb = Uint8Array.from({ length: w * h * 3 }, () => Math.floor(rng.next() * 256));
    const out = boxDownsample(rgb, w, h, k);
    let wrong = 0;
    for (let y = 0; y < h / k; y++)
      for (let x = 0; x < w / k; x++)
        for (let c = 0; c < 3; c++) {
          let sum = 0;
          for (let dy = 0; dy < k; dy++) for (let dx = 0; dx < k; dx++) sum += rgb[((y * k + dy) * w + x * k + dx) * 3 + c];
          if (out[(y * (w / k) + x) * 3 + c] !== Math.round(sum / (k * k))) wrong++;
        }
    t.equal(out.length, (w / k) * (h / k) * 3, `${w}x${h} by ${k}: size`);
    t.equal(wrong, 0, `${w}x${h} by ${k}: every value is its block's mean`);
  }
});

t.test('a large upload: the model input is the block means of the view', async (t) => {
  const m = { width: 32, height: 32, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] };
  const img = await prepareImage(await testImage('png', 300), m, { maxPixels: 1e6 });
  t.same([img.view.width, img.view.height], [256, 256], 'view: 8 times the input');
  const input = boxDownsample(img.view.data, 256, 256, 8);
  const expected = Float32Array.from({ length: 3 * 1024 }, (_, i) => (input[(i % 1024) * 3 + Math.floor(i / 1024)] / 255 - 0.5) / 0.5);
  t.ok(
    img.pixels.every((v, i) => Math.abs(v - expected[i]) < 1e-6),
    'pixels = normalized block means',
  );
});

t.test("normalize gives, for every byte, the float of the trainer's tables", async (t) => {
  const { normalize, normalizationTables } = await import('../../runtime/pixels.js');
  for (const spec of [
    { width: 16, height: 16, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] },
    { width: 16, height: 16, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], rescale: 1 },
    { width: 16, height: 16, mean: [0.4914, 0.4822, 0.4465], std: [0.247, 0.2435, 0.2616] },
  ]) {
    const hwc = Uint8Array.from({ length: 16 * 16 * 3 }, (_, i) => i % 256); // every byte value in every channel
    const out = normalize(hwc, spec);
    const tables = normalizationTables(spec);
    let differ = 0;
    for (let c = 0; c < 3; c++) for (let p = 0; p < 256; p++) if (out[c * 256 + p] !== tables[c][hwc[p * 3 + c]]) differ++;
    t.equal(differ, 0, `mean ${spec.mean}, rescale ${spec.rescale ?? '1/255'}: bit-identical`);
  }
});
