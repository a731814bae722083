// One image pipeline: a file becomes the same model input, bit for bit, through vitrine eval on a
// folder and through POST /classify: for the seed model (cover-crop, area resampling, x/255) on the
// PNG fast path and on sharp's path (a large JPEG, EXIF orientation, alpha), and for a Hugging Face
// model (stretched with its processor's kernel, its own rescale).

import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import t, { type Test } from 'tap';
import { evaluateModel } from '../bin/eval.js';
import { type ModelConfig, readModelConfig } from '../runtime/model-config.js';
import { imageSpec, normalize } from '../runtime/pixels.js';
import { ROOT } from './helpers/cli.js';
import { tmpDir } from './helpers/data.js';
import { testApp, testImage, testModels } from './helpers/server.js';

/** Files of a folder of class folders, in the order a data set lists them (classes, then names, sorted). */
async function writeFolder(root: string, classes: Record<string, [string, Buffer][]>): Promise<Buffer[]> {
  const files: Buffer[] = [];
  for (const c of Object.keys(classes).sort()) {
    await mkdir(path.join(root, c), { recursive: true });
    for (const [name, bytes] of [...classes[c]].sort((a, b) => a[0].localeCompare(b[0]))) {
      await writeFile(path.join(root, c, name), bytes);
      files.push(bytes);
    }
  }
  return files;
}

/** The input tensors vitrine eval gives the model for the folder's images, one per image. */
async function evalInputs(dir: string, config: ModelConfig, folder: string): Promise<Float32Array[]> {
  const per = config.mean.length * config.image_size[0] * config.image_size[1];
  const seen: Float32Array[] = [];
  await evaluateModel(dir, config, { data: folder, dataDir: folder, limit: 0, batchSize: 3 }, async (pixels, n) => {
    for (let i = 0; i < n; i++) seen.push(pixels.slice(i * per, (i + 1) * per));
    return new Float32Array(n * config.labels.length);
  });
  return seen;
}

/** The input tensors POST /classify gives the model for each file (read where the batcher takes them). */
async function classifyInputs(t: Test, models: string, model: string, files: Buffer[]): Promise<Float32Array[]> {
  const app = await testApp(t, { models, defaultModel: model });
  const seen: Float32Array[] = [];
  const batcher = app.vitrine.batcher;
  const submit = batcher.submit.bind(batcher);
  const spec = imageSpec(app.vitrine.model(model).config);
  batcher.submit = (m, input, o) => {
    // an image decoded for the model comes as bytes, normalized where the worker makes its batch
    seen.push(input instanceof Float32Array ? input.slice() : normalize(input, spec));
    return submit(m, input, o);
  };
  for (const bytes of files) {
    const res = await app.inject({
      method: 'POST',
      url: `/classify?model=${model}&attention=none`,
      payload: bytes,
      headers: { 'content-type': 'application/octet-stream' },
    });
    t.equal(res.statusCode, 200, res.body);
  }
  return seen;
}

const same = (a: Float32Array, b: Float32Array) =>
  a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

t.test('the seed model: eval on a folder and /classify give the model identical tensors', async (t) => {
  const models = await testModels();
  const dir = path.join(models, 'vit-cifar10');
  const big = await testImage('png', 300);
  const folder = path.join(await tmpDir(), 'images');
  const files = await writeFolder(folder, {
    cat: [
      ['a.png', await testImage('png')], // the PNG fast path
      ['b.jpg', await sharp(big).resize(300, 200, { fit: 'fill' }).jpeg().toBuffer()], // sharp, cover-crop, an 8x view
      ['c.jpg', await sharp(big).resize(120, 90, { fit: 'fill' }).jpeg().withMetadata({ orientation: 6 }).toBuffer()], // EXIF rotation
    ],
    dog: [
      [
        'd.png',
        await sharp(await testImage('png', 64))
          .ensureAlpha(0.3)
          .png()
          .toBuffer(),
      ], // alpha onto white, a 2x view
      ['e.webp', await testImage('webp', 32)],
    ],
  });
  const viaEval = await evalInputs(dir, await readModelConfig(dir), folder);
  const viaClassify = await classifyInputs(t, models, 'vit-cifar10', files);
  t.equal(viaEval.length, files.length, 'eval fed every image');
  t.equal(viaClassify.length, files.length, '/classify fed every image');
  const names = ['a.png', 'b.jpg', 'c.jpg', 'd.png', 'e.webp'];
  viaEval.forEach((x, i) => t.ok(same(x, viaClassify[i]), `${names[i]}: bit-identical input`));
  t.notOk(same(viaEval[0], viaEval[1]), 'control: different images, different tensors');
});

t.test('a Hugging Face model: its fit, kernel and rescale hold in eval as in /classify', async (t) => {
  const models = path.join(await tmpDir(), 'models');
  const dir = path.join(models, 'hf');
  await cp(path.join(ROOT, 'test', 'fixtures', 'hf-vit'), dir, { recursive: true });
  const pre = path.join(dir, 'preprocessor_config.json');
  await writeFile(pre, JSON.stringify({ ...JSON.parse(await readFile(pre, 'utf8')), do_rescale: false })); // pixels 0..255, not 0..1
  const config = await readModelConfig(dir);
  t.same([config.fit, config.resample, config.rescale], ['fill', 'linear', 1], 'the processor: stretch, bilinear, no rescale');
  const folder = path.join(await tmpDir(), 'images');
  const files = await writeFolder(folder, {
    apple: [
      [
        'a.jpg',
        await sharp(await testImage('png', 300))
          .resize(300, 120, { fit: 'fill' })
          .jpeg()
          .toBuffer(),
      ],
    ],
    boat: [['b.png', await testImage('png', 24)]],
  });
  const viaEval = await evalInputs(dir, config, folder);
  const viaClassify = await classifyInputs(t, models, 'hf', files);
  t.equal(viaEval.length, 2);
  viaEval.forEach((x, i) => t.ok(same(x, viaClassify[i]), `image ${i}: bit-identical input`));
  t.ok(Math.max(...viaEval[1]) > 100, 'the rescale holds: values on the 0-255 scale');
});
