// Resizing against an independent reference: two larger non-square images, a smaller one, and
// Pillow's resize of each to a square and a non-square input, every resampling, stretched and cover-cropped
// (test/fixtures/make-resize-reference.py wrote them once). Reduced (libvips), vitrine's model input
// must be Pillow's up to the kernels' rounding: a mean difference of at most 2.5 of 255; 'nearest' is
// compared loosely (libvips reduces by whole factors with a box before it picks, Pillow picks from the
// source). Enlarged (runtime/resample.ts, Pillow's own arithmetic), within one level everywhere.

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { prepareImage } from '../../runtime/image.js';
import type { Resample } from '../../runtime/model-config.js';
import { ROOT } from '../helpers/cli.js';

const DIR = path.join(ROOT, 'test', 'fixtures', 'resize');
type Case = { image: string; size: [number, number]; fit: 'fill' | 'cover'; resample: Resample; rgb: string };

t.test('the model input is Pillow resize of the image, for every fit and resampling', async (t) => {
  const { cases } = JSON.parse(await readFile(path.join(DIR, 'reference.json'), 'utf8')) as { cases: Case[] };
  t.equal(cases.length, 60, 'three images, two sizes, five resamplings, two fits');
  for (const c of cases) {
    const [height, width] = c.size;
    const prepared = await prepareImage(
      await readFile(path.join(DIR, c.image)),
      { height, width, mean: [0, 0, 0], std: [1, 1, 1], fit: c.fit, resample: c.resample },
      { maxPixels: 1e7 },
    );
    const want = Buffer.from(c.rgb, 'base64');
    t.equal(prepared.pixels.length, want.length, `${c.image} to ${height}x${width}: as many values`);
    // the input is CHW floats of byte / 255; the reference HWC bytes
    const plane = height * width;
    let sum = 0;
    let max = 0;
    for (let p = 0; p < plane; p++)
      for (let ch = 0; ch < 3; ch++) {
        const d = Math.abs(Math.round(prepared.pixels[ch * plane + p] * 255) - want[p * 3 + ch]);
        sum += d;
        max = Math.max(max, d);
      }
    const mean = sum / want.length;
    // an enlargement is resized as Pillow resizes (runtime/resample.ts): within one level, rounding
    const what = `${c.image} to ${height}x${width}, ${c.fit}, ${c.resample}`;
    if (c.image === 'small.png')
      t.ok(max <= 1, `${what}: enlarged as Pillow enlarges (largest difference ${max}, mean ${mean.toFixed(3)})`);
    else {
      const bound = c.resample === 'nearest' ? 6 : 2.5;
      t.ok(
        mean <= bound && (c.resample === 'nearest' || max <= 48),
        `${what}: mean difference ${mean.toFixed(2)} (at most ${bound}), largest ${max}`,
      );
    }
  }
});
