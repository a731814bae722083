// A folder of class folders: root/<class>/*.jpg|png|webp|gif|avif|tiff. Labels are the folder names
// (sorted). Images go through the service's pipeline (runtime/image.ts: orientation, alpha onto white,
// sRGB, cover-crop, area resampling to size x size), so that a model sees in training exactly what it
// is given when served (test/image-pipeline.test.ts).
// Validation: root/train + root/val (or root/test) folders when present, else a seeded, per-class
// split of `valRatio`.

import { promises as fs } from 'node:fs';
import path from 'node:path';
import { decodeImage } from '../../runtime/image.js';
import { type Geometry, toChw } from '../../runtime/pixels.js';
import { type ImageDataset, makeDataset, subset } from './dataset.js';
import { Rng } from '../nn/random.js';

export const IMAGE_EXTENSIONS = Object.freeze(['.jpg', '.jpeg', '.png', '.webp', '.gif', '.avif', '.tif', '.tiff']);

export type BadImagePolicy = 'skip' | 'fail';

export interface FolderOptions {
  size: number;
  /** How images are fitted to size x size (a served model's fit and resampling); default cover, area. */
  fit?: Geometry['fit'];
  resample?: Geometry['resample'];
  valRatio: number;
  seed: number;
  onBadImage: BadImagePolicy;
  warn?: (line: string) => void;
  progress?: (line: string, done: number, total: number) => void;
}

export interface FolderData {
  train: ImageDataset;
  val: ImageDataset | null;
  classes: string[];
  /** Where `val` came from: the folder's own val/ (or test/), a seeded split, or nowhere. */
  split: 'folders' | 'seeded' | 'none';
  /** The held-out folder's name when split is 'folders'. */
  valName?: string;
}

async function isDir(p: string): Promise<boolean> {
  try {
    return (await fs.stat(p)).isDirectory();
  } catch {
    return false;
  }
}

async function listClasses(root: string): Promise<Map<string, string[]>> {
  const entries = await fs.readdir(root, { withFileTypes: true });
  const classes = entries
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort();
  if (classes.length === 0) throw new Error(`${root} has no class folders (expected ${path.join(root, '<class>', '*.jpg')})`);
  const out = new Map<string, string[]>();
  for (const c of classes) {
    const files = (await fs.readdir(path.join(root, c), { withFileTypes: true }))
      .filter((e) => e.isFile() && IMAGE_EXTENSIONS.includes(path.extname(e.name).toLowerCase()))
      .map((e) => path.join(root, c, e.name))
      .sort();
    if (files.length === 0) throw new Error(`class folder ${path.join(root, c)} has no images (${IMAGE_EXTENSIONS.join(' ')})`);
    out.set(c, files);
  }
  return out;
}

/** Images with more pixels than this are refused (as bad images). */
const MAX_PIXELS = 100_000_000;

/** Decodes one image file to CHW bytes of the geometry's size. */
export async function decodeFile(file: string, g: Geometry): Promise<Uint8Array> {
  const d = await decodeImage(await fs.readFile(file), g, { maxPixels: MAX_PIXELS });
  return toChw(d.input, g.width, g.height);
}

/** `what`: the images' part ('training', 'validation'), or '' for a folder decoded whole before it is split. */
async function decodeAll(files: readonly [string, number][], classes: string[], o: FolderOptions, what: string): Promise<ImageDataset> {
  const which = what ? `${what} ` : '';
  const per = 3 * o.size * o.size;
  const geometry: Geometry = { width: o.size, height: o.size, fit: o.fit, resample: o.resample };
  const images = new Uint8Array(files.length * per);
  const labels = new Uint16Array(files.length);
  let next = 0;
  let done = 0;
  let failed = false;
  const ok = new Array<boolean>(files.length).fill(false);
  const worker = async () => {
    while (next < files.length && !failed) {
      const i = next++;
      const [file, label] = files[i];
      try {
        images.set(await decodeFile(file, geometry), i * per);
        labels[i] = label;
        ok[i] = true;
      } catch (err) {
        const reason = (err as Error).message.split('\n')[0];
        if (o.onBadImage === 'fail') {
          failed = true;
          throw new Error(`${file}: cannot decode (${reason}); pass --on-bad-image skip to skip such files`);
        }
        o.warn?.(`skipping ${file}: cannot decode (${reason})`);
      }
      if (!failed) o.progress?.(`decoding ${which}images`, ++done, files.length);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  const keep = ok.flatMap((k, i) => (k ? [i] : []));
  if (keep.length === 0) throw new Error(`no ${which}image could be decoded`);
  return subset(makeDataset(images, labels, { channels: 3, height: o.size, width: o.size }, classes), keep);
}

const flatten = (m: Map<string, string[]>, classes: string[]): [string, number][] =>
  [...m].flatMap(([c, files]) => files.map((f) => [f, classes.indexOf(c)] as [string, number]));

export async function loadImageFolder(root: string, o: FolderOptions): Promise<FolderData> {
  if (!(await isDir(root))) throw new Error(`data folder ${root} does not exist or is not a folder`);
  const valName = (await isDir(path.join(root, 'val'))) ? 'val' : (await isDir(path.join(root, 'test'))) ? 'test' : null;
  if ((await isDir(path.join(root, 'train'))) && valName) {
    const train = await listClasses(path.join(root, 'train'));
    const val = await listClasses(path.join(root, valName));
    const classes = [...train.keys()];
    const stray = [...val.keys()].find((c) => !train.has(c));
    if (stray) throw new Error(`${path.join(root, valName, stray)}: class '${stray}' is not among the training classes`);
    return {
      classes,
      split: 'folders',
      valName,
      train: await decodeAll(flatten(train, classes), classes, o, 'training'),
      val: await decodeAll(flatten(val, classes), classes, o, 'validation'),
    };
  }
  const all = await listClasses(root);
  const classes = [...all.keys()];
  const data = await decodeAll(flatten(all, classes), classes, o, '');
  if (o.valRatio <= 0) return { classes, train: data, val: null, split: 'none' };
  // Stratified split: the same share of every class goes to validation.
  const rng = new Rng(o.seed ^ 0x5eed);
  const trainIdx: number[] = [];
  const valIdx: number[] = [];
  for (let c = 0; c < classes.length; c++) {
    const members = [...data.labels.keys()].filter((i) => data.labels[i] === c);
    const order = rng.permutation(members.length);
    const nVal = members.length > 1 ? Math.max(1, Math.round(members.length * o.valRatio)) : 0;
    if (members.length < 2)
      o.warn?.(
        `class '${classes[c]}' has ` +
          `${members.length === 1 ? 'one image' : 'no image that decodes'}: none ` +
          `of it can be held out for validation, and a class needs several ` +
          `images to be learnt`,
      );
    order.forEach((k, j) => (j < nVal ? valIdx : trainIdx).push(members[k]));
  }
  if (valIdx.length === 0)
    o.warn?.(
      `no image is held out for validation (val_ratio ${o.valRatio} of ${data.count} images): the run can report no held-out accuracy`,
    );
  return {
    classes,
    train: subset(data, trainIdx),
    val: valIdx.length > 0 ? subset(data, valIdx) : null,
    split: valIdx.length > 0 ? 'seeded' : 'none',
  };
}
