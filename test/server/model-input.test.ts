// An image reaches the model as its RGB bytes (a decode's output, normalized where the worker makes its
// batch) or as its normalized floats (an FP32 tensor): the model must see the same input either way,
// alone or in a batch that mixes the two, and an input of the wrong size is refused with the sizes.

import t from 'tap';
import { decodeImage } from '../../runtime/image.js';
import { imageSpec, mirrorImages, mirrorRgb, normalize } from '../../runtime/pixels.js';
import { testApp, testImage } from '../helpers/server.js';

const bits = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
const worst = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

t.test('bytes and floats of one image give the same logits and rollout, alone and in mixed batches', async (t) => {
  const app = await testApp(t);
  const model = app.vitrine.model('vit-cifar10');
  const spec = imageSpec(model.config);
  const bytes = (await decodeImage(await testImage('png', 96), spec, { maxPixels: 1e6 })).input;
  const floats = normalize(bytes, spec);
  const mirroredBytes = mirrorRgb(bytes, spec.width, spec.height);
  const mirroredFloats = new Float32Array(floats.length);
  mirrorImages(floats, mirroredFloats, 1, 3, spec.height, spec.width);
  const { batcher } = app.vitrine;

  const [a, b] = [await batcher.submit(model.key, bytes), await batcher.submit(model.key, floats)];
  t.equal(a.batchSize, 1);
  t.ok(bits(a.logits).equals(bits(b.logits)), 'alone: the same logits, bit for bit');
  t.ok(bits(a.rollout!).equals(bits(b.rollout!)), 'alone: the same rollout, bit for bit');
  const m = await batcher.submit(model.key, mirroredFloats);
  t.ok(worst(m.logits, a.logits) > 1e-3, 'control: the mirror image gives other logits');

  // submitted at once, they gather into batches that mix bytes and floats
  const inputs = [bytes, floats, mirroredBytes, mirroredFloats, bytes];
  const runs = await Promise.all(inputs.map((x) => batcher.submit(model.key, x)));
  t.ok(
    runs.some((r) => r.batchSize > 1),
    `a batch of several (sizes ${runs.map((r) => r.batchSize)})`,
  );
  const alone = [a, b, m, m, a];
  runs.forEach((r, i) => t.ok(worst(r.logits, alone[i].logits) < 1e-5, `image ${i} in its batch: the logits it has alone`));
});

t.test('an input of the wrong size is refused with the sizes, and the service goes on', async (t) => {
  const app = await testApp(t);
  const model = app.vitrine.model('vit-cifar10');
  await t.rejects(app.vitrine.batcher.submit(model.key, new Uint8Array(5)), /image 0 has 5 values; it takes 3072 floats or 3072 bytes/);
  await t.rejects(app.vitrine.batcher.submit(model.key, new Float32Array(3071)), /image 0 has 3071 values/);
  const spec = imageSpec(model.config);
  const ok = await app.vitrine.batcher.submit(model.key, (await decodeImage(await testImage(), spec, { maxPixels: 1e6 })).input);
  t.equal(ok.logits.length, 10, 'the next image is answered');
});
