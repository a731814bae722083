// Tiny generated data sets: never the real CIFAR-10 download.

import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { type ImageDataset, makeDataset } from '../../trainer/data/dataset.js';
import { Rng } from '../../trainer/nn/random.js';

export const tmpDir = (prefix = 'vitrine-test-') => mkdtemp(path.join(os.tmpdir(), prefix));

/** Images whose class is the dominant colour channel (separable), with noise. CHW uint8. */
export function colourDataset(count: number, size: number, classes = 3, seed = 1): ImageDataset {
  const rng = new Rng(seed);
  const plane = size * size;
  const images = new Uint8Array(count * 3 * plane);
  const labels = new Uint16Array(count);
  for (let i = 0; i < count; i++) {
    const label = i % classes;
    labels[i] = label;
    for (let c = 0; c < 3; c++)
      for (let p = 0; p < plane; p++) images[i * 3 * plane + c * plane + p] = Math.min(255, (c === label % 3 ? 150 : 40) + rng.int(60));
  }
  return makeDataset(
    images,
    labels,
    { channels: 3, height: size, width: size },
    Array.from({ length: classes }, (_, k) => `class${k}`),
  );
}

/** Writes CHW image k of a data set as a PNG (or JPEG) file. */
export async function writeImage(d: ImageDataset, k: number, file: string): Promise<void> {
  const plane = d.height * d.width;
  const hwc = Buffer.alloc(3 * plane);
  for (let c = 0; c < 3; c++) for (let p = 0; p < plane; p++) hwc[p * 3 + c] = d.images[k * 3 * plane + c * plane + p];
  const img = sharp(hwc, { raw: { width: d.width, height: d.height, channels: 3 } });
  await (file.endsWith('.jpg') ? img.jpeg({ quality: 95 }) : img.png()).toFile(file);
}

/** root/<class>/<i>.png for every image of the data set. */
export async function writeImageFolder(d: ImageDataset, root: string, ext = '.png'): Promise<void> {
  for (const c of d.classes) await mkdir(path.join(root, c), { recursive: true });
  for (let k = 0; k < d.count; k++) await writeImage(d, k, path.join(root, d.classes[d.labels[k]], `${k}${ext}`));
}

export async function writeCorrupt(file: string): Promise<void> {
  await writeFile(file, Buffer.from('\x89PNG\r\n\x1a\nthis is not really a png'));
}
