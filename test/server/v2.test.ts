// The Open Inference Protocol (v2) endpoints: metadata, health, JSON and binary tensors, BYTES images,
// the classification extension, output filtering, and the protocol's errors; logits agree with
// POST /classify for the same images.

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import type { FastifyInstance } from 'fastify';
import { prepareImage } from '../../runtime/image.js';
import { png, testApp, testImage } from '../helpers/server.js';
import { until } from '../helpers/wait.js';
import { ROOT } from '../helpers/cli.js';
import { assertClose } from '../helpers/opcheck.js';

const URL = '/v2/models/vit-cifar10/infer';

async function classifyLogits(app: FastifyInstance, img: Buffer): Promise<number[]> {
  const res = await app.inject({ method: 'POST', url: '/classify?attention=none', payload: img, headers: { 'content-type': 'image/png' } });
  return res.json().logits;
}

async function pixelsOf(app: FastifyInstance, img: Buffer): Promise<Float32Array> {
  const m = app.vitrine.model('vit-cifar10').config;
  const [height, width] = m.image_size;
  return (await prepareImage(img, { height, width, mean: m.mean, std: m.std }, { maxPixels: 1e6 })).pixels;
}

const infer = (app: FastifyInstance, body: unknown, url = URL) =>
  app.inject({ method: 'POST', url, payload: JSON.stringify(body), headers: { 'content-type': 'application/json' } });

/** A request with a JSON header and binary tensors after it. */
function binaryRequest(header: object, ...parts: Buffer[]) {
  const json = Buffer.from(JSON.stringify(header));
  return {
    payload: Buffer.concat([json, ...parts]),
    headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(json.length) },
  };
}

const floatsLE = (values: ArrayLike<number>) => {
  const b = Buffer.alloc(values.length * 4);
  for (let i = 0; i < values.length; i++) b.writeFloatLE(values[i], i * 4);
  return b;
};
const bytesElements = (...items: Buffer[]) => Buffer.concat(items.flatMap((b) => [Buffer.from(Uint32Array.of(b.length).buffer), b]));

function splitBinaryResponse(res: { rawPayload: Buffer; headers: Record<string, unknown> }) {
  const n = Number(res.headers['inference-header-content-length']);
  const head = JSON.parse(res.rawPayload.subarray(0, n).toString());
  let offset = n;
  const data: Record<string, Buffer> = {};
  for (const o of head.outputs) {
    if (o.parameters?.binary_data_size === undefined) continue;
    data[o.name] = res.rawPayload.subarray(offset, offset + o.parameters.binary_data_size);
    offset += o.parameters.binary_data_size;
  }
  return { head, data, rest: res.rawPayload.length - offset };
}

t.test('v2: server and model metadata, health and readiness', async (t) => {
  const app = await testApp(t);
  const server = (await app.inject('/v2')).json();
  t.equal(server.name, 'vitrine');
  t.same(server.extensions, ['binary_tensor_data', 'classification']);
  const pkg = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8'));
  t.equal(server.version, pkg.version, "the server's version is package.json's");
  t.equal((await app.inject('/docs/json')).json().info.version, pkg.version, 'and the OpenAPI document says it too');
  t.same((await app.inject('/v2/health/live')).json(), { live: true });
  const ready = await app.inject('/v2/health/ready');
  t.equal(ready.statusCode, 200);
  t.same(ready.json(), { ready: true });
  const meta = (await app.inject('/v2/models/vit-cifar10')).json();
  t.equal(meta.name, 'vit-cifar10');
  t.same(meta.versions, ['1']);
  t.equal(meta.platform, 'onnxruntime_onnx');
  t.same(meta.inputs, [{ name: 'pixel_values', datatype: 'FP32', shape: [-1, 3, 32, 32] }]);
  t.same(
    meta.outputs.map((o: { name: string }) => o.name),
    ['logits', 'attentions.0', 'attentions.1', 'attentions.2', 'attentions.3'],
  );
  t.same(meta.outputs[0], { name: 'logits', datatype: 'FP32', shape: [-1, 10] });
  t.same(meta.outputs[1].shape, [-1, 4, 65, 65]);
  t.equal(meta.parameters.labels.length, 10);
  t.same((await app.inject('/v2/models/vit-cifar10/versions/1')).json(), meta, 'version 1 is the model');
  t.same((await app.inject('/v2/models/vit-cifar10/ready')).json(), { name: 'vit-cifar10', ready: true });
  const plain = (await app.inject('/v2/models/plain')).json();
  t.same(
    plain.outputs.map((o: { name: string }) => o.name),
    ['logits'],
    'a model without attention outputs lists logits only',
  );

  const unknown = await app.inject('/v2/models/nope');
  t.equal(unknown.statusCode, 404);
  t.same(Object.keys(unknown.json()), ['error']);
  t.match(unknown.json().error, /model 'nope' is not served \(models: plain, vit-cifar10\)/);
  const version = await app.inject('/v2/models/vit-cifar10/versions/2/ready');
  t.equal(version.statusCode, 404);
  t.match(version.json().error, /no version '2'/);
});

t.test('v2: FP32 tensors and BYTES images give the logits of POST /classify', async (t) => {
  const app = await testApp(t);
  const a = await testImage();
  const b = await png(40, 24, [200, 30, 90]);
  const expected = [await classifyLogits(app, a), await classifyLogits(app, b)];
  const [pa, pb] = [await pixelsOf(app, a), await pixelsOf(app, b)];

  const fp32 = await infer(app, {
    id: 'r1',
    inputs: [{ name: 'pixel_values', datatype: 'FP32', shape: [2, 3, 32, 32], data: [...pa, ...pb] }],
    outputs: [{ name: 'logits' }],
  });
  t.equal(fp32.statusCode, 200, fp32.body.slice(0, 300));
  const body = fp32.json();
  t.equal(body.model_name, 'vit-cifar10');
  t.equal(body.model_version, '1');
  t.equal(body.id, 'r1', 'the request id comes back');
  t.equal(body.outputs.length, 1, 'only the output asked for');
  t.same({ ...body.outputs[0], data: undefined }, { name: 'logits', datatype: 'FP32', shape: [2, 10], data: undefined });
  for (let i = 0; i < 2; i++) {
    const got = body.outputs[0].data.slice(i * 10, (i + 1) * 10);
    assertClose(t, got, expected[i], 0, 1e-4, `image ${i}: FP32 logits as /classify's`);
  }

  // nested data, row-major, is the same tensor
  const nested = Array.from({ length: 3 }, (_, c) =>
    Array.from({ length: 32 }, (_, y) => Array.from(pa.subarray(c * 1024 + y * 32, c * 1024 + y * 32 + 32))),
  );
  const n = await infer(app, {
    inputs: [{ name: 'pixel_values', datatype: 'FP32', shape: [1, 3, 32, 32], data: [nested] }],
    outputs: [{ name: 'logits' }],
  });
  t.same(n.json().outputs[0].data, body.outputs[0].data.slice(0, 10), 'nested data flattens row-major');

  const bytes = await infer(app, {
    inputs: [{ name: 'pixel_values', datatype: 'BYTES', shape: [2], data: [a.toString('base64'), b.toString('base64')] }],
  });
  t.equal(bytes.statusCode, 200, bytes.body.slice(0, 300));
  const all = bytes.json().outputs;
  t.same(
    all.map((o: { name: string }) => o.name),
    ['logits', 'attentions.0', 'attentions.1', 'attentions.2', 'attentions.3'],
    'every output by default',
  );
  for (let i = 0; i < 2; i++) {
    const got = all[0].data.slice(i * 10, (i + 1) * 10);
    assertClose(t, got, expected[i], 0, 1e-4, `image ${i}: BYTES logits as /classify's (the same decoding and preprocessing)`);
  }
  t.same(all[1].shape, [2, 4, 65, 65]);
  const row = all[4].data.slice(0, 65);
  t.ok(Math.abs(row.reduce((x: number, y: number) => x + y, 0) - 1) < 1e-4, 'attention rows are probabilities');
});

t.test('v2: binary tensor data in and out, with per-output precedence', async (t) => {
  const app = await testApp(t);
  const img = await testImage();
  const expected = await classifyLogits(app, img);
  const pixels = await pixelsOf(app, img);

  const res = await app.inject({
    method: 'POST',
    url: URL,
    ...binaryRequest(
      {
        inputs: [{ name: 'pixel_values', datatype: 'FP32', shape: [1, 3, 32, 32], parameters: { binary_data_size: pixels.length * 4 } }],
        parameters: { binary_data_output: true },
        outputs: [{ name: 'logits' }, { name: 'attentions.3', parameters: { binary_data: false } }],
      },
      floatsLE(pixels),
    ),
  });
  t.equal(res.statusCode, 200, res.body.slice(0, 300));
  t.equal(res.headers['content-type'], 'application/octet-stream');
  const { head, data, rest } = splitBinaryResponse(res);
  t.equal(rest, 0, 'the body ends with the last binary output');
  t.same(head.outputs[0].parameters, { binary_data_size: 40 });
  t.notOk('data' in head.outputs[0], 'a binary output has no JSON data');
  const logits = Array.from({ length: 10 }, (_, i) => data.logits.readFloatLE(i * 4));
  t.ok(
    logits.every((v, k) => Math.abs(v - expected[k]) < 1e-4),
    'binary logits as /classify',
  );
  t.equal(head.outputs[1].data.length, 4 * 65 * 65, "binary_data: false on the output beats the request's binary_data_output");

  // BYTES images in the binary part: 4-byte little-endian lengths
  const other = await png(20, 20, [10, 200, 10]);
  const images = bytesElements(img, other);
  const b = await app.inject({
    method: 'POST',
    url: URL,
    ...binaryRequest(
      {
        inputs: [{ name: 'pixel_values', datatype: 'BYTES', shape: [2, 1], parameters: { binary_data_size: images.length } }],
        outputs: [{ name: 'logits' }],
      },
      images,
    ),
  });
  t.equal(b.statusCode, 200, b.body.slice(0, 300));
  t.equal(b.headers['content-type'], 'application/json; charset=utf-8', 'no binary output asked: a JSON answer');
  const got = b.json().outputs[0].data;
  t.equal(got.length, 20, 'two images of ten logits');
  assertClose(t, got.slice(0, 10), expected, 0, 1e-4, 'the first image: its /classify logits');
  const second = await classifyLogits(app, other);
  assertClose(t, got.slice(10), second, 0, 1e-4, 'the second image: its /classify logits');
});

t.test('v2: the classification extension', async (t) => {
  const app = await testApp(t);
  const img = await testImage();
  const expected = await classifyLogits(app, img);
  const order = expected.map((v, i) => [v, i]).sort((x, y) => y[0] - x[0]);
  const labels = app.vitrine.model('vit-cifar10').config.labels;
  const res = await infer(app, {
    inputs: [{ name: 'pixel_values', datatype: 'BYTES', shape: [1], data: [img.toString('base64')] }],
    outputs: [{ name: 'logits', parameters: { classification: 3 } }],
  });
  t.equal(res.statusCode, 200, res.body.slice(0, 300));
  const out = res.json().outputs[0];
  t.equal(out.datatype, 'BYTES');
  t.same(out.shape, [1, 3]);
  t.equal(out.data.length, 3);
  out.data.forEach((s: string, r: number) => {
    const [score, index, label] = s.split(':');
    t.equal(Number(index), order[r][1], `rank ${r}: the index`);
    t.ok(Math.abs(Number(score) - order[r][0]) < 1e-4, `rank ${r}: the logit`);
    t.equal(label, labels[order[r][1]]);
  });
  // and as binary BYTES
  const bin = await infer(app, {
    inputs: [{ name: 'pixel_values', datatype: 'BYTES', shape: [1], data: [img.toString('base64')] }],
    outputs: [{ name: 'logits', parameters: { classification: 2, binary_data: true } }],
  });
  const { data } = splitBinaryResponse(bin);
  const first = data.logits.readUInt32LE(0);
  t.equal(data.logits.subarray(4, 4 + first).toString(), out.data[0], 'length-prefixed strings');
  const tooMany = await infer(app, {
    inputs: [{ name: 'pixel_values', datatype: 'BYTES', shape: [1], data: [img.toString('base64')] }],
    outputs: [{ name: 'logits', parameters: { classification: 50 } }],
  });
  t.same(tooMany.json().outputs[0].shape, [1, 10], 'k beyond the classes gives every class');
});

t.test('v2: the classification extension on an attention output ranks its values, without labels', async (t) => {
  const app = await testApp(t);
  const good = { name: 'pixel_values', datatype: 'FP32', shape: [1, 3, 32, 32], data: Array.from({ length: 3072 }, (_, i) => Math.sin(i)) };
  const full = (await infer(app, { inputs: [good], outputs: [{ name: 'attentions.0' }] })).json().outputs[0];
  const res = await infer(app, { inputs: [good], outputs: [{ name: 'attentions.0', parameters: { classification: 4 } }] });
  t.equal(res.statusCode, 200, res.body.slice(0, 300));
  const out = res.json().outputs[0];
  t.same([out.datatype, out.shape], ['BYTES', [1, 4]]);
  const order = (full.data as number[])
    .map((v, i) => [v, i])
    .sort((a, b) => b[0] - a[0])
    .slice(0, 4);
  out.data.forEach((s: string, r: number) => {
    const [score, index, ...rest] = s.split(':');
    t.equal(Number(index), order[r][1], `rank ${r}: the flat index of the ${r + 1}th largest value`);
    t.ok(Math.abs(Number(score) - order[r][0]) < 1e-4, `rank ${r}: its value`);
    t.same(rest, [], 'no label');
  });
});

t.test('v2: a request of more images than the queue holds is refused whole, leaving nothing queued', async (t) => {
  // batches wait 2 s for company, so what is queued stays queued while the test looks
  const app = await testApp(t, { maxQueue: 4, maxBatch: 8, maxDelayMs: 2000 });
  const images = (n: number) => ({
    inputs: [{ name: 'pixel_values', datatype: 'FP32', shape: [n, 3, 32, 32], data: Array(n * 3072).fill(0.1) }],
    outputs: [{ name: 'logits' }],
  });
  const over = await infer(app, images(5));
  t.equal(over.statusCode, 400);
  t.match(over.json().error, /5 images in one request; at most 4 \(--max-queue\)/);
  const first = infer(app, images(3));
  await until('three images are queued', () => app.vitrine.batcher.depth() === 3);
  const second = await infer(app, images(2));
  t.equal(second.statusCode, 503, second.body);
  t.match(second.json().error, /the inference queue has room for 1 of this request's 2 images/);
  t.equal(app.vitrine.batcher.depth(), 3, "none of the refused request's images was queued");
  t.equal((await first).statusCode, 200, 'the first request is answered');
});

t.test('v2: a request whose body arrives after shutdown began answers 503', async (t) => {
  const app = await testApp(t);
  const { PassThrough } = await import('node:stream');
  const body = new PassThrough();
  const good = JSON.stringify({ inputs: [{ name: 'pixel_values', datatype: 'FP32', shape: [1, 3, 32, 32], data: Array(3072).fill(0) }] });
  body.write(good.slice(0, 100));
  const answer = app.inject({ method: 'POST', url: URL, payload: body, headers: { 'content-type': 'application/json' } });
  await new Promise((r) => setTimeout(r, 50));
  const closed = app.close();
  body.end(good.slice(100));
  const res = await answer;
  t.equal(res.statusCode, 503, res.body);
  t.match(res.json().error, /the server is shutting down/);
  await closed;
});

t.test('v2: a batch of no images answers with the declared shapes', async (t) => {
  const app = await testApp(t);
  const meta = (await app.inject('/v2/models/vit-cifar10')).json();
  const res = await infer(app, { inputs: [{ name: 'pixel_values', datatype: 'FP32', shape: [0, 3, 32, 32], data: [] }] });
  t.equal(res.statusCode, 200, res.body.slice(0, 300));
  const outputs = res.json().outputs;
  t.same(
    outputs.map((o: { shape: number[] }) => o.shape),
    meta.outputs.map((o: { shape: number[] }) => [0, ...o.shape.slice(1)]),
    'logits [0, 10], each attention [0, heads, tokens, tokens]',
  );
  t.ok(outputs.every((o: { data: unknown[] }) => o.data.length === 0));
  const top = await infer(app, {
    inputs: [{ name: 'pixel_values', datatype: 'FP32', shape: [0, 3, 32, 32], data: [] }],
    outputs: [{ name: 'logits', parameters: { classification: 3 } }],
  });
  t.same(top.json().outputs[0].shape, [0, 3]);
});

t.test('v2: bad requests are 400s with {"error"}, naming the problem', async (t) => {
  const app = await testApp(t);
  const img = await testImage();
  const good = { name: 'pixel_values', datatype: 'FP32', shape: [1, 3, 32, 32], data: Array(3072).fill(0) };
  const cases: [string, unknown, RegExp][] = [
    ['no inputs', { inputs: [] }, /'inputs' must be a non-empty array/],
    [
      'a wrong datatype',
      { inputs: [{ ...good, datatype: 'INT32' }] },
      /is INT32; model 'vit-cifar10' takes FP32 \[-1, 3, 32, 32\] or BYTES/,
    ],
    ['an unknown datatype', { inputs: [{ ...good, datatype: 'FLOAT' }] }, /datatype "FLOAT" is not one of/],
    [
      'the wrong image size',
      { inputs: [{ ...good, shape: [3, 3, 32, 32 / 3], data: Array(3072).fill(0) }] },
      /shape must be an array of non-negative integers/,
    ],
    [
      'a shape the model does not take',
      { inputs: [{ ...good, shape: [4, 3, 16, 16] }] },
      /shape \[4, 3, 16, 16\] does not match the model's \[-1, 3, 32, 32\]/,
    ],
    ['data that does not fill the shape', { inputs: [{ ...good, shape: [2, 3, 32, 32] }] }, /holds 6144 elements, the data 3072/],
    ['a string among numbers', { inputs: [{ ...good, data: ['x', ...Array(3071).fill(0)] }] }, /element 0 is "x", not a finite number/],
    ['an unknown input', { inputs: [good, { ...good, name: 'extra' }] }, /has no input 'extra' \(inputs: pixel_values\)/],
    ['an unknown output', { inputs: [good], outputs: [{ name: 'probs' }] }, /has no output 'probs' \(outputs: logits, attentions\.0/],
    ['an input given twice', { inputs: [good, good] }, /input 'pixel_values' given twice/],
    ['an output asked twice', { inputs: [good], outputs: [{ name: 'logits' }, { name: 'logits' }] }, /output 'logits' asked twice/],
    [
      'a bad classification count',
      { inputs: [good], outputs: [{ name: 'logits', parameters: { classification: 0 } }] },
      /classification must be a positive integer/,
    ],
    [
      'BYTES that are not an image',
      { inputs: [{ name: 'pixel_values', datatype: 'BYTES', shape: [1], data: [Buffer.from('hello').toString('base64')] }] },
      /element 0: the bytes are not an image/,
    ],
    [
      'BYTES of a wrong shape',
      { inputs: [{ name: 'pixel_values', datatype: 'BYTES', shape: [1, 2], data: [img.toString('base64'), img.toString('base64')] }] },
      /BYTES images take shape \[-1\] or \[-1, 1\]/,
    ],
  ];
  for (const [what, body, message] of cases) {
    const res = await infer(app, body);
    t.equal(res.statusCode, 400, `${what}: ${res.body}`);
    t.same(Object.keys(res.json()), ['error'], `${what}: the protocol's error shape`);
    t.match(res.json().error, message, what);
  }
  const empty = await app.inject({ method: 'POST', url: URL, headers: { 'content-type': 'application/octet-stream' } });
  t.equal(empty.statusCode, 400);
  t.match(empty.json().error, /no body: send a JSON inference request/);
  const notJson = await app.inject({ method: 'POST', url: URL, payload: '{"inputs": [', headers: { 'content-type': 'application/json' } });
  t.equal(notJson.statusCode, 400);
  t.match(notJson.json().error, /does not parse/);

  const short = await app.inject({
    method: 'POST',
    url: URL,
    ...binaryRequest({ inputs: [{ ...good, data: undefined, parameters: { binary_data_size: 12288 } }] }, Buffer.alloc(100)),
  });
  t.equal(short.statusCode, 400);
  t.match(short.json().error, /binary_data_size 12288 runs past the body \(100 bytes left\)/);
  const extra = await app.inject({
    method: 'POST',
    url: URL,
    ...binaryRequest({ inputs: [{ ...good, data: undefined, parameters: { binary_data_size: 12288 } }] }, Buffer.alloc(12290)),
  });
  t.equal(extra.statusCode, 400);
  t.match(extra.json().error, /2 bytes after the last tensor's binary data/);
  const both = await app.inject({
    method: 'POST',
    url: URL,
    ...binaryRequest({ inputs: [{ ...good, parameters: { binary_data_size: 12288 } }] }, Buffer.alloc(12288)),
  });
  t.match(both.json().error, /both 'data' and binary_data_size/);
  const noHeader = await infer(app, { inputs: [{ ...good, data: undefined, parameters: { binary_data_size: 12288 } }] });
  t.match(noHeader.json().error, /without the Inference-Header-Content-Length header/);

  const unknown = await infer(app, { inputs: [good] }, '/v2/models/nope/infer');
  t.equal(unknown.statusCode, 404);
  t.match(unknown.json().error, /model 'nope' is not served/);
  const ok = await infer(app, { inputs: [good], outputs: [{ name: 'logits' }] });
  t.equal(ok.statusCode, 200, 'and the service still answers');
});

t.test('v2: the binary framing and the request fields, each malformed way a 400 naming it', async (t) => {
  const app = await testApp(t);
  const img = await testImage();
  const good = { name: 'pixel_values', datatype: 'FP32', shape: [1, 3, 32, 32], data: Array(3072).fill(0) };
  const bin = { ...good, data: undefined, parameters: { binary_data_size: 12288 } };
  const send = async (what: string, req: { payload: Buffer | string; headers: Record<string, string> }, message: RegExp) => {
    const res = await app.inject({ method: 'POST', url: URL, ...req });
    t.equal(res.statusCode, 400, `${what}: ${res.body.slice(0, 200)}`);
    t.match(res.json().error, message, what);
  };
  const framed = binaryRequest({ inputs: [bin] }, Buffer.alloc(12288));
  for (const value of ['abc', '-5', '1.5', String(framed.payload.length + 1)]) {
    await send(
      `Inference-Header-Content-Length ${value}`,
      { ...framed, headers: { ...framed.headers, 'inference-header-content-length': value } },
      /Inference-Header-Content-Length .* must be a byte count within the body's/,
    );
  }
  await send(
    'binary data that is not a whole number of FP32 elements',
    binaryRequest({ inputs: [{ ...bin, parameters: { binary_data_size: 12287 } }] }, Buffer.alloc(12287)),
    /12287 bytes of binary data is not a whole number of FP32 elements/,
  );
  const element = bytesElements(img);
  await send(
    'a BYTES length prefix cut short',
    binaryRequest(
      { inputs: [{ name: 'pixel_values', datatype: 'BYTES', shape: [1], parameters: { binary_data_size: element.length + 2 } }] },
      element,
      Buffer.alloc(2),
    ),
    /BYTES element 1 is cut short \(its 4-byte length is incomplete\)/,
  );
  const overlong = Buffer.concat([Buffer.from(Uint32Array.of(img.length + 50).buffer), img]);
  await send(
    'a BYTES length prefix longer than its bytes',
    binaryRequest(
      { inputs: [{ name: 'pixel_values', datatype: 'BYTES', shape: [1], parameters: { binary_data_size: overlong.length } }] },
      overlong,
    ),
    new RegExp(`BYTES element 0 declares ${img.length + 50} bytes, ${img.length} are left`),
  );
  const json = (body: unknown) => ({ payload: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
  await send('an input given twice', json({ inputs: [good, good] }), /input 'pixel_values' given twice/);
  await send("an 'id' that is not a string", json({ id: 7, inputs: [good] }), /'id' must be a string/);
  await send("'outputs' that is not an array", json({ inputs: [good], outputs: { name: 'logits' } }), /'outputs' must be an array/);
  await send('an output without a name', json({ inputs: [good], outputs: [{}] }), /outputs\[0\] must be an object with a name/);
  await send(
    'binary_data that is not a boolean',
    json({ inputs: [good], outputs: [{ name: 'logits', parameters: { binary_data: 'yes' } }] }),
    /output 'logits': binary_data must be true or false/,
  );
  await send(
    'binary_data_output that is not a boolean',
    json({ inputs: [good], parameters: { binary_data_output: 1 } }),
    /binary_data_output must be true or false/,
  );
  await send(
    "'parameters' that is not an object",
    json({ inputs: [{ ...good, parameters: [1] }] }),
    /input 'pixel_values': 'parameters' must be an object/,
  );

  // Nesting deeper than the shape is refused without walking it recursively: 50,000 levels.
  const deep = '['.repeat(50_000) + '0' + ']'.repeat(50_000);
  const res = await app.inject({
    method: 'POST',
    url: URL,
    payload: `{"inputs":[{"name":"pixel_values","datatype":"FP32","shape":[1,3,32,32],"data":${deep}}]}`,
    headers: { 'content-type': 'application/json' },
  });
  t.equal(res.statusCode, 400, res.body.slice(0, 200));
  t.match(res.json().error, /input 'pixel_values': data is nested deeper than its shape's 4 dimensions/);
  t.equal((await infer(app, { inputs: [good], outputs: [{ name: 'logits' }] })).statusCode, 200, 'and the service still answers');
});

t.test('v2: 503 while a worker is down, 200 again when it is back', async (t) => {
  const app = await testApp(t);
  const pool = app.vitrine.pool;
  const body = { inputs: [{ name: 'pixel_values', datatype: 'FP32', shape: [1, 3, 32, 32], data: Array(3072).fill(0) }] };
  // The replacement worker starts only when the test lets it, so the answers below see the pool down.
  const spawn = (pool as unknown as { spawn: (i: number) => Promise<void> }).spawn.bind(pool);
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  (pool as unknown as { spawn: (i: number) => Promise<void> }).spawn = async (i) => {
    await held;
    return spawn(i);
  };
  await pool.kill(0);
  t.equal(pool.ready, false, 'the worker is down');
  const ready = await app.inject('/v2/health/ready');
  t.equal(ready.statusCode, 503);
  t.same(ready.json(), { ready: false });
  t.equal((await app.inject('/v2/models/vit-cifar10/ready')).statusCode, 503);
  const res = await infer(app, body);
  t.equal(res.statusCode, 503);
  t.match(res.json().error, /workers are starting/);
  t.equal((await app.inject('/v2/health/live')).statusCode, 200, 'still live');
  release();
  await until('the replacement worker is ready', () => pool.ready, 30_000);
  t.equal((await app.inject('/v2/health/ready')).statusCode, 200);
  t.equal((await infer(app, body)).statusCode, 200);
});
