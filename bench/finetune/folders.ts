// The transfer task's data, as CIFAR-10 binary folders the trainer reads: `pretrain` holds classes 0-4
// (airplane … deer: all 25,000 training and 5,000 test images), `target` holds classes 5-9 (dog … truck)
// with the first 100 training images of each class (500) and all 5,000 of their test images, relabelled
// 0-4. Nothing of the target classes is in the pretraining data.

import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { CIFAR10_CLASSES, encodeCifarBinary, readCifarBinaryFolder } from '../../trainer/data/cifar10.js';
import { makeDataset, type ImageDataset } from '../../trainer/data/dataset.js';

const TRAIN = ['data_batch_1.bin', 'data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin'];

function subset(d: ImageDataset, classes: readonly number[], perClass: number): ImageDataset {
  const per = d.images.length / d.count;
  const taken = new Map(classes.map((c) => [c, 0]));
  const keep: number[] = [];
  for (let i = 0; i < d.count; i++) {
    const n = taken.get(d.labels[i]);
    if (n === undefined || n >= perClass) continue;
    taken.set(d.labels[i], n + 1);
    keep.push(i);
  }
  const images = new Uint8Array(keep.length * per);
  const labels = new Uint16Array(keep.length);
  keep.forEach((i, j) => {
    images.set(d.images.subarray(i * per, (i + 1) * per), j * per);
    labels[j] = classes.indexOf(d.labels[i]);
  });
  return makeDataset(
    images,
    labels,
    { channels: 3, height: 32, width: 32 },
    classes.map((c) => CIFAR10_CLASSES[c]),
  );
}

async function write(dir: string, train: ImageDataset, test: ImageDataset): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  await fs.writeFile(path.join(dir, TRAIN[0]), encodeCifarBinary(train));
  for (const f of TRAIN.slice(1)) await fs.writeFile(path.join(dir, f), Buffer.alloc(0));
  await fs.writeFile(path.join(dir, 'test_batch.bin'), encodeCifarBinary(test));
  await fs.writeFile(path.join(dir, 'batches.meta.txt'), train.classes.join('\n') + '\n');
}

/** Writes <root>/pretrain and <root>/target from the CIFAR-10 binary folder `cifar`, unless there. */
export async function transferFolders(cifar: string, root: string, perClass = 100): Promise<{ pretrain: string; target: string }> {
  const pretrain = path.join(root, 'pretrain-data');
  const target = path.join(root, `target-data-${perClass}`);
  if (!existsSync(path.join(pretrain, 'test_batch.bin')) || !existsSync(path.join(target, 'test_batch.bin'))) {
    const [train, test] = await Promise.all([readCifarBinaryFolder(cifar, 'train'), readCifarBinaryFolder(cifar, 'test')]);
    await write(pretrain, subset(train, [0, 1, 2, 3, 4], Infinity), subset(test, [0, 1, 2, 3, 4], Infinity));
    await write(target, subset(train, [5, 6, 7, 8, 9], perClass), subset(test, [5, 6, 7, 8, 9], Infinity));
  }
  return { pretrain, target };
}
