// The data a run trains and evaluates on, from the config's `data`: 'cifar10' (downloaded and cached
// on first use), a cifar-10-batches-bin folder, or a folder of class folders.

import { existsSync } from 'node:fs';
import path from 'node:path';
import { BIN_FOLDER, ensureCifar10, readCifarBinaryFolder, type Progress } from '../data/cifar10.js';
import { type ImageDataset, subset } from '../data/dataset.js';
import { loadImageFolder } from '../data/folder.js';
import type { Geometry } from '../../runtime/pixels.js';

export interface RunData {
  train: ImageDataset;
  /** What accuracy is reported on: CIFAR-10's test set, or the folder's validation images. */
  eval: ImageDataset | null;
  evalName: 'test' | 'val';
  classes: string[];
  source: string;
  /** In words, which images `eval` holds (for reports). */
  evalDescription: string;
  /** How the held-out images were chosen: CIFAR-10's test set, a folder's own train/ and val/, a
   *  seeded share of one folder, or none at all (then `eval` is null). */
  split: 'cifar10' | 'folders' | 'seeded' | 'none';
}

export interface DataOptions {
  data: string;
  dataDir: string;
  imageSize: number;
  /** A folder's images fitted as a served model takes them (eval passes its model's; default cover, area). */
  fit?: Geometry['fit'];
  resample?: Geometry['resample'];
  valRatio: number;
  seed: number;
  onBadImage: 'skip' | 'fail';
  limitTrain: number;
  limitEval: number;
  warn: (line: string) => void;
  progress: Progress;
}

export const isCifarBinary = (dir: string) =>
  existsSync(path.join(dir, 'data_batch_1.bin')) || existsSync(path.join(dir, BIN_FOLDER, 'data_batch_1.bin'));

const first = (d: ImageDataset, n: number) =>
  n > 0 && n < d.count
    ? subset(
        d,
        Uint32Array.from({ length: n }, (_, i) => i),
      )
    : d;

/** Loads the split ('train' or 'test'/'val') of the data that a run or an evaluation needs. */
export async function loadRunData(o: DataOptions): Promise<RunData> {
  let train: ImageDataset;
  let evalSet: ImageDataset | null;
  let evalName: 'test' | 'val' = 'test';
  let split: RunData['split'] = 'cifar10';
  let evalDescription = 'the CIFAR-10 test images';
  if (o.data === 'cifar10' || isCifarBinary(o.data)) {
    if (o.imageSize !== 32) throw new Error(`CIFAR-10 images are 32x32 but the model takes ${o.imageSize}x${o.imageSize}`);
    const dir = o.data === 'cifar10' ? await ensureCifar10(path.join(o.dataDir, 'cifar10'), o.progress) : o.data;
    train = await readCifarBinaryFolder(dir, 'train');
    evalSet = await readCifarBinaryFolder(dir, 'test');
  } else {
    const f = await loadImageFolder(o.data, {
      size: o.imageSize,
      fit: o.fit,
      resample: o.resample,
      valRatio: o.valRatio,
      seed: o.seed,
      onBadImage: o.onBadImage,
      warn: o.warn,
      progress: o.progress,
    });
    train = f.train;
    evalSet = f.val;
    evalName = 'val';
    split = f.split;
    evalDescription =
      f.split === 'folders'
        ? `the images of ${path.join(o.data, f.valName!)}`
        : f.split === 'seeded'
          ? `the images held out by the seeded split (val_ratio ${o.valRatio}, seed ${o.seed})`
          : 'no held-out images';
  }
  return {
    train: first(train, o.limitTrain),
    eval: evalSet ? first(evalSet, o.limitEval) : null,
    evalName,
    classes: [...train.classes],
    source: o.data,
    evalDescription,
    split,
  };
}
