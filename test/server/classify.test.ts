import type { InjectOptions } from 'fastify';
import sharp from 'sharp';
import t from 'tap';
import { multipart, png, testApp, testImage } from '../helpers/server.js';
import { maxAbsDiff } from '../helpers/opcheck.js';
import { softmax, topPredictions } from '../../server/engine/classify.js';

const raw = (body: Buffer, type = 'image/png') => ({ payload: body, headers: { 'content-type': type } });

t.test('classify: multipart and raw bodies give the same answer', async (t) => {
  const app = await testApp(t);
  const img = await testImage();
  const a = await app.inject({ method: 'POST', url: '/classify', ...multipart('image', img) });
  t.equal(a.statusCode, 200, a.body);
  const body = a.json();
  t.equal(body.model, 'vit-cifar10');
  t.equal(body.predictions.length, 5, 'top 5 by default');
  t.equal(body.logits.length, 10);
  const probs = body.predictions.map((p: { probability: number }) => p.probability);
  t.same(
    probs,
    [...probs].sort((x: number, y: number) => y - x),
    'sorted by probability',
  );
  t.ok(body.predictions.every((p: { label: string; index: number }) => typeof p.label === 'string' && p.index >= 0 && p.index < 10));
  t.same(body.attention.grid, [8, 8]);
  t.equal(body.attention.method, 'rollout');
  t.equal(Math.max(...body.attention.values.flat()), 1, 'rollout scaled to max 1');
  t.same(body.image, { format: 'png', width: 32, height: 32 });
  t.ok(body.timings.total_ms > 0 && body.timings.batch_size >= 1);
  const b = await app.inject({ method: 'POST', url: '/classify?topk=2', ...raw(img) });
  t.equal(b.statusCode, 200);
  t.same(b.json().logits, body.logits, 'same logits from the raw body');
  t.equal(b.json().predictions.length, 2);
  const sum = body.logits.map((l: number) => Math.exp(l)).reduce((x: number, y: number) => x + y, 0);
  t.ok(
    Math.abs(body.predictions[0].probability - Math.exp(body.logits[body.predictions[0].index]) / sum) < 1e-9,
    'probabilities are the softmax of the logits',
  );
});

t.test('classify: every supported format decodes; orientation, alpha and gray are handled', async (t) => {
  const app = await testApp(t);
  for (const format of ['png', 'jpeg', 'webp', 'gif', 'tiff', 'avif'] as const) {
    const res = await app.inject({ method: 'POST', url: '/classify?attention=none', ...raw(await testImage(format), 'image/whatever') });
    t.equal(res.statusCode, 200, `${format}: ${res.body.slice(0, 200)}`);
    t.equal(res.json().image.format, format === 'avif' ? 'avif' : format, `${format} sniffed from the bytes`);
  }
  // EXIF orientation 6 (rotate 90°): a 40x20 stored image is 20x40 upright.
  const rotated = await sharp(await png(40, 20, [10, 200, 10]))
    .withMetadata({ orientation: 6 })
    .jpeg()
    .toBuffer();
  let res = await app.inject({ method: 'POST', url: '/classify', ...raw(rotated, 'image/jpeg') });
  t.equal(res.statusCode, 200);
  t.same(res.json().image, { format: 'jpeg', width: 20, height: 40 }, 'size after EXIF orientation');
  res = await app.inject({ method: 'POST', url: '/classify', ...raw(await png(32, 32, [200, 10, 10], 4)) });
  t.equal(res.statusCode, 200, 'RGBA flattened');
  const gray = await sharp(await testImage())
    .grayscale()
    .png()
    .toBuffer();
  res = await app.inject({ method: 'POST', url: '/classify', ...raw(gray) });
  t.equal(res.statusCode, 200, 'gray made RGB');
  res = await app.inject({ method: 'POST', url: '/classify', ...raw(await testImage('png', 300)) });
  t.equal(res.statusCode, 200, 'large image resized');
});

t.test('classify: attention=none|rollout|cls|full', async (t) => {
  const app = await testApp(t);
  const img = await testImage();
  const none = (await app.inject({ method: 'POST', url: '/classify?attention=none', ...raw(img) })).json();
  t.notOk('attention' in none);
  const cls = (await app.inject({ method: 'POST', url: '/classify?attention=cls', ...raw(img) })).json();
  t.equal(cls.attention.method, 'cls');
  t.equal(cls.attention.values.length, 8);
  const full = (await app.inject({ method: 'POST', url: '/classify?attention=full', ...raw(img) })).json();
  t.equal(full.attention.layers.length, 4, '4 layers');
  t.equal(full.attention.layers[0].length, 4, '4 heads');
  t.equal(full.attention.layers[0][0].length, 65, '65 tokens');
  const rowSum = full.attention.layers[2][1][7].reduce((a: number, b: number) => a + b, 0);
  t.ok(Math.abs(rowSum - 1) < 1e-4, `attention rows are distributions (${rowSum})`);
  // written by a drawing worker as text: every probability of the image's own run, to six decimals
  const kept = (await app.vitrine.results.get(full.id))!;
  const run = await app.vitrine.batcher.submit('vit-cifar10', kept.input, { attentions: true });
  const want = run.attentions!.map((l) =>
    Array.from({ length: 4 }, (_, h) =>
      Array.from({ length: 65 }, (_, i) => Array.from(l.subarray((h * 65 + i) * 65, (h * 65 + i + 1) * 65), (v) => +v.toFixed(6))),
    ),
  );
  t.same(full.attention.layers, want, 'the layers are the run attentions, every value');
  t.same(
    Object.keys(full).sort(),
    ['attention', 'id', 'image', 'logits', 'model', 'model_version', 'predictions', 'timings'],
    'the rest of the answer as with the other methods',
  );
  t.same(full.attention.grid, [8, 8]);
  t.equal(full.attention.method, 'full');
});

t.test('classify: bad input is a 4xx with one JSON shape, and the service keeps working', async (t) => {
  const app = await testApp(t, { bodyLimit: 64 * 1024, maxPixels: 1_000_000 });
  const img = await testImage();
  const cases: [string, InjectOptions, number, string][] = [
    [
      'not an image',
      { method: 'POST', url: '/classify', ...raw(Buffer.from('hello, this is text'), 'image/png') },
      415,
      'VIT_UNSUPPORTED_MEDIA',
    ],
    ['JSON body', { method: 'POST', url: '/classify', payload: { image: 'x' } }, 415, 'VIT_UNSUPPORTED_MEDIA'],
    ['text content type', { method: 'POST', url: '/classify', ...raw(img, 'text/plain') }, 415, 'VIT_UNSUPPORTED_MEDIA'],
    [
      'BMP (not decodable here)',
      { method: 'POST', url: '/classify', ...raw(Buffer.concat([Buffer.from('BM'), Buffer.alloc(60)]), 'image/bmp') },
      415,
      'VIT_UNSUPPORTED_MEDIA',
    ],
    ['truncated PNG', { method: 'POST', url: '/classify', ...raw(img.subarray(0, Math.floor(img.length / 2))) }, 400, 'VIT_BAD_IMAGE'],
    [
      'corrupt PNG',
      { method: 'POST', url: '/classify', ...raw(Buffer.concat([img.subarray(0, 40), Buffer.alloc(200, 7)])) },
      400,
      'VIT_BAD_IMAGE',
    ],
    ['empty body', { method: 'POST', url: '/classify', ...raw(Buffer.alloc(0)) }, 400, 'VIT_BAD_REQUEST'],
    ['no body', { method: 'POST', url: '/classify' }, 400, 'VIT_BAD_REQUEST'],
    ['multipart without the image field', { method: 'POST', url: '/classify', ...multipart('photo', img) }, 400, 'VIT_BAD_REQUEST'],
    [
      'body over the limit',
      { method: 'POST', url: '/classify', ...raw(Buffer.concat([img, Buffer.alloc(70 * 1024)])) },
      413,
      'VIT_PAYLOAD_TOO_LARGE',
    ],
    [
      'multipart file over the limit',
      { method: 'POST', url: '/classify', ...multipart('image', Buffer.concat([img, Buffer.alloc(70 * 1024)])) },
      413,
      'VIT_PAYLOAD_TOO_LARGE',
    ],
    ['unknown model', { method: 'POST', url: '/classify?model=resnet', ...raw(img) }, 404, 'VIT_UNKNOWN_MODEL'],
    ['bad topk', { method: 'POST', url: '/classify?topk=zero', ...raw(img) }, 400, 'VIT_BAD_REQUEST'],
    ['bad attention', { method: 'POST', url: '/classify?attention=everything', ...raw(img) }, 400, 'VIT_BAD_REQUEST'],
    ['unknown query key', { method: 'POST', url: '/classify?colour=red', ...raw(img) }, 400, 'VIT_BAD_REQUEST'],
    ['unknown route', { method: 'GET', url: '/classify/now' }, 404, 'VIT_NOT_FOUND'],
  ];
  for (const [name, req, status, code] of cases) {
    const res = await app.inject(req);
    t.equal(res.statusCode, status, `${name}: ${res.body.slice(0, 160)}`);
    const body = res.json();
    t.same(Object.keys(body).sort(), ['code', 'error', 'message'], `${name}: error shape`);
    t.equal(body.code, code, name);
  }
  // A decompression bomb: few bytes, many pixels.
  const bomb = await sharp({ create: { width: 4000, height: 4000, channels: 3, background: { r: 0, g: 0, b: 0 } } })
    .png({ compressionLevel: 9 })
    .toBuffer();
  t.ok(bomb.length < 64 * 1024, `the bomb is ${bomb.length} bytes`);
  const res = await app.inject({ method: 'POST', url: '/classify', ...raw(bomb) });
  t.equal(res.statusCode, 413);
  t.match(res.json().message, /16000000 pixels, over the limit of 1000000/);
  const ok = await app.inject({ method: 'POST', url: '/classify', ...raw(img) });
  t.equal(ok.statusCode, 200, 'still serving after all of that');
});

t.test('a model without attention outputs is served; attention routes answer 422', async (t) => {
  const app = await testApp(t);
  const img = await testImage();
  const res = await app.inject({ method: 'POST', url: '/classify?model=plain', ...raw(img) });
  t.equal(res.statusCode, 200);
  t.notOk('attention' in res.json(), 'no attention by default');
  const asked = await app.inject({ method: 'POST', url: '/classify?model=plain&attention=rollout', ...raw(img) });
  t.equal(asked.statusCode, 422);
  t.equal(asked.json().code, 'VIT_NO_ATTENTION');
  const ours = (await app.inject({ method: 'POST', url: '/classify', ...raw(img) })).json();
  t.same(res.json().logits, ours.logits, 'same graph, same logits');
});

t.test('API key and CORS', async (t) => {
  const app = await testApp(t, { apiKey: 's3cret', corsOrigin: ['https://example.org'] });
  const img = await testImage();
  let res = await app.inject({ method: 'POST', url: '/classify', ...raw(img) });
  t.equal(res.statusCode, 401);
  t.equal(res.json().code, 'VIT_UNAUTHORIZED');
  res = await app.inject({
    method: 'POST',
    url: '/classify',
    payload: img,
    headers: { 'content-type': 'image/png', authorization: 'Bearer wrong' },
  });
  t.equal(res.statusCode, 401);
  res = await app.inject({
    method: 'POST',
    url: '/classify',
    payload: img,
    headers: { 'content-type': 'image/png', authorization: 'Bearer s3cret', origin: 'https://example.org' },
  });
  t.equal(res.statusCode, 200);
  t.equal(res.headers['access-control-allow-origin'], 'https://example.org');
  t.equal((await app.inject({ method: 'GET', url: '/models' })).statusCode, 401, '/models needs the key');
  t.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200, '/healthz does not');
  // the maps and the Open Inference Protocol need it too
  const key = { authorization: 'Bearer s3cret' };
  const { id } = res.json();
  t.equal((await app.inject(`/attention/${id}`)).statusCode, 401, '/attention/:id needs the key');
  t.equal((await app.inject({ url: `/attention/${id}`, headers: { authorization: 'Bearer wrong' } })).statusCode, 401);
  t.equal((await app.inject({ url: `/attention/${id}`, headers: key })).statusCode, 200, 'and answers with it');
  const v2 = { inputs: [{ name: 'pixel_values', datatype: 'FP32', shape: [1, 3, 32, 32], data: Array(3072).fill(0) }] };
  for (const [method, url] of [
    ['GET', '/v2/models/vit-cifar10'],
    ['POST', '/v2/models/vit-cifar10/infer'],
  ] as const) {
    const denied = await app.inject({
      method,
      url,
      ...(method === 'POST' ? { payload: JSON.stringify(v2), headers: { 'content-type': 'application/json' } } : {}),
    });
    t.equal(denied.statusCode, 401, `${method} ${url} needs the key`);
    t.match(denied.json(), { error: /API key/ }, "in the protocol's error shape");
    const allowed = await app.inject({
      method,
      url,
      headers: { ...key, 'content-type': 'application/json' },
      ...(method === 'POST' ? { payload: JSON.stringify(v2) } : {}),
    });
    t.equal(allowed.statusCode, 200, `${method} ${url} with the key`);
  }
  t.equal((await app.inject('/v2/health/live')).statusCode, 200, 'the v2 health routes do not');
});

t.test('request errors name what was wrong and what is accepted', async (t) => {
  const app = await testApp(t);
  const m = multipart('image', await testImage());
  let r = await app.inject({ method: 'POST', url: '/classify?foo=bar', ...m });
  t.equal(r.statusCode, 400);
  t.match(r.json().message, /unknown query parameter 'foo' \(accepted: .*topk.*\)/);

  r = await app.inject({ method: 'GET', url: '/classify' });
  t.equal(r.statusCode, 405);
  t.equal(r.headers.allow, 'POST');
  t.match(r.json(), { code: 'VIT_METHOD_NOT_ALLOWED', message: 'GET /classify is not served: use POST' });
  t.equal((await app.inject({ method: 'GET', url: '/nowhere' })).statusCode, 404);

  const id = (await app.inject({ method: 'POST', url: '/classify', ...m })).json().id;
  r = await app.inject(`/attention/${id}?method=rollout&layer=2&format=json`);
  t.equal(r.statusCode, 400);
  t.match(r.json().message, /layer applies to method=cls only/);
  r = await app.inject(`/attention/${id}?method=cls&discard=0.5&format=json`);
  t.equal(r.statusCode, 400);
  t.match(r.json().message, /discard applies to method=rollout only/);
  r = await app.inject(`/attention/${id}?colour=red`);
  t.equal(r.statusCode, 400);
  t.match(r.json().message, /unknown query parameter 'colour' \(accepted: .*colormap.*\)/);
});

t.test("classify: tta=flip averages the logits with the mirror image's, in one batch; the map is of the image itself", async (t) => {
  const app = await testApp(t, { maxDelayMs: 50 });
  const img = await testImage();
  const mirrored = await sharp(img).flop().png().toBuffer();
  const one = (await app.inject({ method: 'POST', url: '/classify', ...raw(img) })).json();
  const other = (await app.inject({ method: 'POST', url: '/classify', ...raw(mirrored) })).json();
  const both = await app.inject({ method: 'POST', url: '/classify?tta=flip', ...raw(img) });
  t.equal(both.statusCode, 200, both.body);
  const b = both.json();
  const mean = (one.logits as number[]).map((v, i) => (v + other.logits[i]) / 2);
  t.ok(maxAbsDiff(mean, b.logits) < 1e-5, 'the mean of the two classifications');
  t.notSame(one.logits, other.logits, 'the mirror image is classified differently (the check means something)');
  t.equal(b.timings.batch_size, 2, 'the image and its mirror ran in one batch');
  t.same(b.attention.values, one.attention.values, "the rollout map is the image's own");
  const max = Math.max(...(b.logits as number[]));
  const z = (b.logits as number[]).reduce((s, v) => s + Math.exp(v - max), 0);
  t.ok(Math.abs(b.predictions[0].probability - 1 / z) < 1e-9, "the probabilities are the averaged logits' softmax");
  t.equal((await app.inject({ method: 'POST', url: '/classify?tta=rotate', ...raw(img) })).statusCode, 400);
});

t.test('with a key set, nothing names a model without it, and the OpenAPI document says which routes need it', async (t) => {
  const app = await testApp(t, { apiKey: 's3cret' });
  const key = { authorization: 'Bearer s3cret' };
  const open = (await app.inject('/readyz')).json();
  t.equal(open.status, 'ready', 'a probe without the key still learns readiness');
  t.equal(open.models, undefined, 'but no model names');
  t.equal(open.devices, undefined);
  t.notMatch(JSON.stringify(open), /vit-cifar10|plain/);
  t.same((await app.inject({ url: '/readyz', headers: key })).json().models, ['plain', 'vit-cifar10'], 'with the key, the models');
  t.equal((await app.inject('/metrics')).statusCode, 401, '/metrics (model labels) needs the key');
  t.match((await app.inject({ url: '/metrics', headers: key })).body, /vitrine_provider_info\{model="vit-cifar10"/);
  for (const name of ['vit-cifar10', 'no-such-model'])
    t.equal(
      (await app.inject(`/v2/models/${name}/ready`)).statusCode,
      401,
      `/v2/models/${name}/ready: 401 whether or not the model exists`,
    );
  t.equal((await app.inject({ url: '/v2/models/vit-cifar10/ready', headers: key })).statusCode, 200);
  const doc = (await app.inject('/docs/json')).json();
  t.same(doc.security, undefined, 'no blanket requirement');
  t.same(doc.paths['/classify'].post.security, [{ bearer: [] }], '/classify needs the key');
  t.same(doc.paths['/models'].get.security, [{ bearer: [] }]);
  t.equal(doc.paths['/healthz'].get.security, undefined, '/healthz does not');
  t.equal(doc.paths['/readyz'].get.security, undefined);
});

t.test('top predictions: the k most probable, ties in class order, as a sort of every class gives', async (t) => {
  const labels = Array.from({ length: 1000 }, (_, i) => `c${i}`);
  // few distinct values, so that ties are everywhere
  const logits = Float32Array.from(labels, (_, i) => Math.round(Math.sin(i * 12.9898) * 4) / 2);
  const probs = softmax(logits);
  const sorted = Array.from(probs.keys()).sort((a, b) => probs[b] - probs[a] || a - b);
  for (const k of [1, 5, 37, 1000, 5000]) {
    const top = topPredictions(logits, labels, k);
    t.same(
      top.map((p) => p.index),
      sorted.slice(0, k),
      `k = ${k}`,
    );
    t.ok(
      top.every((p) => p.label === labels[p.index] && p.probability === probs[p.index]),
      `k = ${k}: labels and probabilities`,
    );
  }
  t.same(
    topPredictions(Float32Array.of(1, 3, 2), ['a', 'b', 'c'], 2).map((p) => p.label),
    ['b', 'c'],
  );
});
