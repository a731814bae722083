// A Hugging Face-layout ONNX folder (as optimum exports one: config.json with id2label,
// preprocessor_config.json, model.onnx pixel_values -> logits) served as it is, with no hand-written
// file: its logits equal PyTorch's for the fixture's images (test/fixtures/make-hf-vit.py).

import { cp, readFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import t from 'tap';
import { ROOT } from '../helpers/cli.js';
import { tmpDir } from '../helpers/data.js';
import { multipart, testApp } from '../helpers/server.js';
import { maxAbsDiff } from '../helpers/opcheck.js';

const fixture = path.join(ROOT, 'test', 'fixtures', 'hf-vit');
const expected = JSON.parse(await readFile(path.join(ROOT, 'test', 'fixtures', 'hf-vit-expected.json'), 'utf8')) as {
  size: number;
  images: number[][];
  logits: number[][];
};

async function models(): Promise<string> {
  const root = await tmpDir('vitrine-models-');
  await cp(fixture, path.join(root, 'tiny-hf'), { recursive: true });
  return root;
}

t.test("an optimum-layout folder answers /classify with PyTorch's logits, labels from id2label", async (t) => {
  const app = await testApp(t, { models: await models(), defaultModel: 'tiny-hf' });
  const listed = (await app.inject('/models')).json();
  t.match(listed, {
    models: [
      {
        name: 'tiny-hf',
        labels: ['apple', 'boat', 'cloud', 'door', 'eagle'],
        methods: [],
        class_methods: [],
        input: { shape: ['batch', 3, 24, 24], fit: 'fill', resample: 'linear' },
      },
    ],
  });
  for (let i = 0; i < expected.images.length; i++) {
    const png = await sharp(Buffer.from(expected.images[i]), { raw: { width: expected.size, height: expected.size, channels: 3 } })
      .png()
      .toBuffer();
    const r = await app.inject({ method: 'POST', url: '/classify', ...multipart('image', png) });
    t.equal(r.statusCode, 200, r.statusCode === 200 ? 'answered' : r.body);
    const body = r.json();
    t.equal(body.logits.length, 5);
    const worst = maxAbsDiff(body.logits, expected.logits[i]);
    t.ok(worst < 1e-4, `image ${i}: logits within 1e-4 of PyTorch's (worst ${worst.toExponential(2)})`);
    const top = expected.logits[i].indexOf(Math.max(...expected.logits[i]));
    t.equal(body.predictions[0].label, ['apple', 'boat', 'cloud', 'door', 'eagle'][top]);
  }
});

t.test('attention routes answer 422 for it; other sizes are stretched to its input, as its processor does', async (t) => {
  const app = await testApp(t, { models: await models(), defaultModel: 'tiny-hf' });
  const wide = await sharp({ create: { width: 60, height: 24, channels: 3, background: { r: 200, g: 30, b: 90 } } })
    .jpeg()
    .toBuffer();
  const r = await app.inject({ method: 'POST', url: '/classify', ...multipart('image', wide, 'wide.jpg', 'image/jpeg') });
  t.equal(r.statusCode, 200, r.statusCode === 200 ? 'answered' : r.body);
  t.same(r.json().image, { format: 'jpeg', width: 60, height: 24 });
  const a = await app.inject({ method: 'POST', url: '/classify?attention=rollout', ...multipart('image', wide, 'wide.jpg', 'image/jpeg') });
  t.equal(a.statusCode, 422);
  t.match(a.json().message, /model tiny-hf has no attention outputs/);
  const g = await app.inject(`/attention/${r.json().id}`);
  t.equal(g.statusCode, 422, g.body);
  t.match(g.json().message, /model tiny-hf has no attention outputs, so it gives no maps: vitrine import/);
  t.equal((await app.inject('/attention/00000000-0000-4000-8000-000000000000')).statusCode, 404, 'an unknown id is still 404');
});
