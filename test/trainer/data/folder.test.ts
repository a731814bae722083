import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { loadImageFolder } from '../../../trainer/data/folder.js';
import { colourDataset, tmpDir, writeCorrupt, writeImageFolder } from '../../helpers/data.js';

const opts = { size: 8, valRatio: 0.25, seed: 1, onBadImage: 'skip' as const };

t.test('a folder of class folders loads with labels from folder names and a stratified split', async (t) => {
  const root = await tmpDir();
  const d = colourDataset(12, 8, 3);
  await writeImageFolder(d, root);
  const { train, val, classes } = await loadImageFolder(root, opts);
  t.same(classes, ['class0', 'class1', 'class2']);
  t.equal(train.count + val!.count, 12);
  t.same([...val!.labels].sort(), [0, 1, 2], 'one image of each class held out');
  t.same([train.channels, train.height, train.width], [3, 8, 8]);
  // PNG is lossless and the size matches, so the pixels survive exactly.
  const k = [...train.labels].indexOf(1);
  const pixel = train.images[k * 192 + 64]; // green channel, first pixel
  t.ok(pixel >= 150, 'class1 images are green-dominant');
});

t.test('train/ and val/ folders are used as given; images are resized to the model size', async (t) => {
  const root = await tmpDir();
  await writeImageFolder(colourDataset(6, 16, 2), path.join(root, 'train'), '.jpg');
  await writeImageFolder(colourDataset(4, 16, 2, 5), path.join(root, 'val'));
  const { train, val } = await loadImageFolder(root, opts);
  t.equal(train.count, 6);
  t.equal(val!.count, 4);
  t.equal(train.height, 8);
});

t.test('a corrupt image is skipped with its path, or stops the load with --on-bad-image fail', async (t) => {
  const root = await tmpDir();
  await writeImageFolder(colourDataset(6, 8, 2), root);
  const bad = path.join(root, 'class1', 'broken.png');
  await writeCorrupt(bad);
  const warnings: string[] = [];
  const { train, val } = await loadImageFolder(root, { ...opts, valRatio: 0, warn: (l) => warnings.push(l) });
  t.equal(train.count, 6, 'the six good images load');
  t.equal(val, null);
  t.equal(warnings.length, 1);
  t.match(warnings[0], `skipping ${bad}: cannot decode`);
  await t.rejects(
    loadImageFolder(root, { ...opts, onBadImage: 'fail' }),
    new RegExp(`${bad.replace(/[.]/g, '\\.')}: cannot decode .*--on-bad-image skip`),
  );
});

t.test('missing, empty and image-less folders are clear errors', async (t) => {
  const root = await tmpDir();
  await t.rejects(loadImageFolder(path.join(root, 'nope'), opts), /data folder .*nope does not exist or is not a folder/);
  await t.rejects(loadImageFolder(root, opts), /has no class folders \(expected .*<class>/);
  await mkdir(path.join(root, 'cats'));
  await writeFile(path.join(root, 'cats', 'notes.txt'), 'hello');
  await t.rejects(loadImageFolder(root, opts), /class folder .*cats has no images/);
});
