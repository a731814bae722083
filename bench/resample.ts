// The cost of an enlargement as vitrine does it (runtime/resample.ts, Pillow's arithmetic, on the event
// loop) against libvips doing the same resize (sharp, on its own threads), and how far libvips' result
// lies from it: a 32x32 example stretched to 224x224 (an image smaller than a Hugging Face model's input).
//   npm run bench:resample [-- --runs 200]

import path from 'node:path';
import sharp from 'sharp';
import { resizeLikePillow } from '../runtime/resample.js';
import { Results, benchFlags } from './common.js';

const flags = benchFlags('npm run bench:resample [-- --runs 200]', { runs: { type: 'string', default: '200' } });
const runs = Number(flags.runs) || 200;
const results = new Results(
  'resample',
  "An enlargement, 32x32 to 224x224: Pillow's arithmetic on the event loop against sharp's resize on its threads",
);
const file = path.join(import.meta.dirname, '..', 'server', 'web', 'examples', 'cat.png');
const rgb = await sharp(file).removeAlpha().raw().toBuffer();
for (const kernel of ['linear', 'cubic', 'lanczos3'] as const) {
  for (let i = 0; i < 20; i++) resizeLikePillow(rgb, 32, 32, 224, 224, kernel);
  let t0 = performance.now();
  for (let i = 0; i < runs; i++) resizeLikePillow(rgb, 32, 32, 224, 224, kernel);
  const ours = (performance.now() - t0) / runs;
  t0 = performance.now();
  let vips: Buffer = Buffer.alloc(0);
  for (let i = 0; i < runs; i++)
    vips = await sharp(rgb, { raw: { width: 32, height: 32, channels: 3 } })
      .resize(224, 224, { fit: 'fill', kernel })
      .raw()
      .toBuffer();
  const theirs = (performance.now() - t0) / runs;
  const mine = resizeLikePillow(rgb, 32, 32, 224, 224, kernel);
  let diff = 0;
  for (let i = 0; i < mine.length; i++) diff += Math.abs(mine[i] - vips[i]);
  results.add({
    kernel,
    from: '32x32',
    to: '224x224',
    vitrine_ms: +ours.toFixed(3),
    sharp_ms: +theirs.toFixed(3),
    sharp_mean_difference: +(diff / mine.length).toFixed(2),
    runs,
  });
}
results.save();
