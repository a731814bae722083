// The README's folder example, run as written on a folder of one's own photos: 216 CIFAR-10 training
// images of 3 classes (the first 72 each of airplane, automobile and bird) as PNGs in class folders,
// then `vitrine train --data <folder> --out <run>` with nothing else. Reported: what the run chose,
// its held-out accuracy (the seeded split's 21 images), and the model's accuracy on 900 other images
// of those classes (the first 300 of each in CIFAR-10's test set), a steadier figure.
//   npm run bench:folder [-- --seed N]

import { spawnSync } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchArgs } from './common.js';
import { progressPrinter } from '../bin/cli-util.js';
import { encodePng } from '../runtime/image.js';
import { ensureCifar10, readCifarBinaryFolder } from '../trainer/data/cifar10.js';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const OUT = path.join(ROOT, 'data', 'bench', 'folder');
const CLI = path.join(ROOT, 'dist', 'bin', 'vitrine.js');
const CLASSES = [0, 1, 2];
const { arg } = benchArgs('npx tsx bench/folder.ts [--seed 0]', { strings: ['seed'] });
const seed = arg('seed', '0');

async function writeFolder(split: 'train' | 'test', perClass: number, dir: string): Promise<void> {
  if (existsSync(dir)) return;
  const d = await readCifarBinaryFolder(await ensureCifar10(path.join(ROOT, 'data', 'cifar10'), progressPrinter().progress), split);
  const taken = new Map<number, number>();
  for (let i = 0; i < d.count; i++) {
    const label = d.labels[i];
    if (!CLASSES.includes(label) || (taken.get(label) ?? 0) >= perClass) continue;
    taken.set(label, (taken.get(label) ?? 0) + 1);
    const rgb = Buffer.alloc(32 * 32 * 3);
    for (let c = 0; c < 3; c++) for (let p = 0; p < 1024; p++) rgb[p * 3 + c] = d.images[i * 3072 + c * 1024 + p];
    const folder = path.join(dir, d.classes[label]);
    await fs.mkdir(folder, { recursive: true });
    await fs.writeFile(path.join(folder, `${i}.png`), await encodePng(rgb, 32, 32));
  }
}

const photos = path.join(OUT, 'photos');
const others = path.join(OUT, 'test-images');
await writeFolder('train', 72, photos);
await writeFolder('test', 300, others);
const run = path.join(OUT, `run-seed${seed}`);
await fs.rm(run, { recursive: true, force: true });
const t = spawnSync(process.execPath, [CLI, 'train', '--data', photos, '--out', run, ...(seed !== '0' ? ['--seed', seed] : [])], {
  encoding: 'utf8',
});
await fs.writeFile(path.join(OUT, `run-seed${seed}.log`), t.stdout + t.stderr);
if (t.status !== 0) throw new Error(`vitrine train exited ${t.status}: ${t.stderr.split('\n').slice(-3).join(' ')}`);
const chose = /a folder of .*/.exec(t.stderr)?.[0];
const last = JSON.parse((await fs.readFile(path.join(run, 'metrics.jsonl'), 'utf8')).trim().split('\n').at(-1)!);
const e = spawnSync(process.execPath, [CLI, 'eval', '--model', path.join(run, 'model'), '--data', others, '--json', '--device', 'cpu'], {
  encoding: 'utf8',
});
const other = JSON.parse(e.stdout.trim().split('\n').at(-1)!);
console.log(
  JSON.stringify({
    bench: 'folder',
    command: `vitrine train --data <folder> --out <run>${seed !== '0' ? ` --seed ${seed}` : ''}`,
    images: 216,
    classes: 3,
    chose,
    epochs: last.epoch,
    held_out_accuracy: last.test_accuracy,
    held_out_images: 21,
    other_images_accuracy: other.accuracy,
    other_images: other.images,
    wall_s: last.elapsed_s,
  }),
);
