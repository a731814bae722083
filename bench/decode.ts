// Preparing one upload for the model, on this thread: the 32x32 example PNG on the fast path
// (runtime/png.ts) and through sharp, and a 300x300 JPEG of it through sharp. CPU time per image
// (process CPU, so sharp's own threads count), one image at a time. One JSON line per measurement.
//   npm run bench:decode [-- --seconds 3]

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { decodeWithSharp, prepareImage } from '../runtime/image.js';
import { Results, benchFlags } from './common.js';

const flags = benchFlags('npm run bench:decode [-- --seconds 3]', { seconds: { type: 'string', default: '3' } });
const seconds = Number(flags.seconds) || 3;
const results = new Results('decode', "Preparing one upload on this thread: CPU time per image (sharp's own threads counted)");
const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const example = path.join(root, 'server', 'web', 'examples', 'cat.png');
const png = await sharp(example).png().toBuffer();
const jpeg = await sharp(example).resize(300, 300).jpeg().toBuffer();
const m = { width: 32, height: 32, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] };

async function measure(name: string, fn: () => Promise<unknown>) {
  for (let i = 0; i < 20; i++) await fn();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let n = 0;
  while (performance.now() - t0 < seconds * 1000) {
    await fn();
    n++;
  }
  const cpu = process.cpuUsage(cpu0);
  const wall = performance.now() - t0;
  results.add({
    path: name,
    cpu_us_per_image: Math.round((cpu.user + cpu.system) / n),
    wall_us_per_image: Math.round((wall * 1000) / n),
    images: n,
  });
}

await measure('png 32x32, fast path', () => prepareImage(png, m, { maxPixels: 1e8 }));
await measure('png 32x32, sharp', () => decodeWithSharp(png, 'png', m, { maxPixels: 1e8 }));
await measure('jpeg 300x300, sharp', () => prepareImage(jpeg, m, { maxPixels: 1e8 }));
results.save();
