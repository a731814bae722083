// The Open Inference Protocol over gRPC (vitrine serve --grpc-port): every RPC through a real port with
// a client of the same library, answers equal to REST's for the same tensors, the classification
// extension, each error's status code, health, keys, malformed messages, and the drain.

import t from 'tap';
import type { FastifyInstance } from 'fastify';
import { prepareImage } from '../../runtime/image.js';
import { png, testImage } from '../helpers/server.js';
import { grpcApp, grpcError, status } from '../helpers/grpc.js';
import { assertClose } from '../helpers/opcheck.js';
import { until } from '../helpers/wait.js';

const MODEL = 'vit-cifar10';

async function pixelsOf(app: FastifyInstance, img: Buffer): Promise<Float32Array> {
  const m = app.vitrine.model(MODEL).config;
  const [height, width] = m.image_size;
  return (await prepareImage(img, { height, width, mean: m.mean, std: m.std }, { maxPixels: 1e6 })).pixels;
}

async function restInfer(app: FastifyInstance, body: object, model = MODEL) {
  const res = await app.inject({
    method: 'POST',
    url: `/v2/models/${model}/infer`,
    payload: JSON.stringify(body),
    headers: { 'content-type': 'application/json' },
  });
  return res.json();
}

const floatsLE = (values: ArrayLike<number>) => Buffer.from(Float32Array.from(values).buffer);
const fromFloatsLE = (b: Buffer) => Array.from(new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length)));
const bytesElements = (...items: Buffer[]) => Buffer.concat(items.flatMap((b) => [Buffer.from(Uint32Array.of(b.length).buffer), b]));
const fp32Input = (pixels: ArrayLike<number>, n = 1) => ({
  name: 'pixel_values',
  datatype: 'FP32',
  shape: [n, 3, 32, 32],
  contents: { fp32_contents: Array.from(pixels) },
});

t.test('grpc: health, server and model metadata as REST gives them', async (t) => {
  const { app, client } = await grpcApp(t);
  t.same(await client.ServerLive({}), { live: true });
  t.same(await client.ServerReady({}), { ready: true });
  const server = await client.ServerMetadata({});
  const rest = (await app.inject('/v2')).json();
  t.same({ name: server.name, version: server.version }, { name: rest.name, version: rest.version });
  t.same(server.extensions, ['classification'], "REST's binary_tensor_data is REST's alone");
  const meta = await client.ModelMetadata({ name: MODEL });
  const restMeta = (await app.inject(`/v2/models/${MODEL}`)).json();
  t.same(
    { name: meta.name, versions: meta.versions, platform: meta.platform, inputs: meta.inputs, outputs: meta.outputs },
    { name: restMeta.name, versions: restMeta.versions, platform: restMeta.platform, inputs: restMeta.inputs, outputs: restMeta.outputs },
    "the model's metadata is REST's",
  );
  t.same(meta.outputs[1].shape, [-1, 4, 65, 65]);
  t.same(await client.ModelReady({ name: MODEL }), { ready: true });
  t.same(await client.ModelReady({ name: MODEL, version: '1' }), { ready: true });
  t.same(await client.HealthCheck({ service: '' }), { status: 'SERVING' });
  t.same(await client.HealthCheck({ service: 'inference.GRPCInferenceService' }), { status: 'SERVING' });
  t.equal((await grpcError(client.HealthCheck({ service: 'nope' }))).code, status.NOT_FOUND, 'an unknown service is NOT_FOUND');

  const unknown = await grpcError(client.ModelMetadata({ name: 'nope' }));
  t.equal(unknown.code, status.NOT_FOUND);
  t.match(unknown.details, /model 'nope' is not served \(models: plain, vit-cifar10\)/);
  t.equal((await grpcError(client.ModelReady({ name: 'nope' }))).code, status.NOT_FOUND);
  const version = await grpcError(client.ModelReady({ name: MODEL, version: '2' }));
  t.equal(version.code, status.NOT_FOUND);
  t.match(version.details, /no version '2'/);
  t.equal((await grpcError(client.ModelMetadata({ name: '' }))).code, status.INVALID_ARGUMENT, 'no name is an invalid argument');
});

t.test("grpc: ModelInfer gives REST infer's logits, typed and raw, and /classify's for BYTES images", async (t) => {
  const { app, client } = await grpcApp(t);
  const a = await testImage();
  const b = await png(40, 24, [200, 30, 90]);
  const [pa, pb] = [await pixelsOf(app, a), await pixelsOf(app, b)];
  const both = [...pa, ...pb];
  const rest = await restInfer(app, {
    inputs: [{ name: 'pixel_values', datatype: 'FP32', shape: [2, 3, 32, 32], data: both }],
    outputs: [{ name: 'logits' }],
  });
  const expected: number[] = rest.outputs[0].data;

  const typed = await client.ModelInfer({ model_name: MODEL, id: 'r1', inputs: [fp32Input(both, 2)], outputs: [{ name: 'logits' }] });
  t.equal(typed.model_name, MODEL);
  t.equal(typed.model_version, '1');
  t.equal(typed.id, 'r1', 'the request id comes back');
  t.equal(typed.outputs.length, 1, 'only the output asked for');
  t.same(
    { name: typed.outputs[0].name, datatype: typed.outputs[0].datatype, shape: typed.outputs[0].shape },
    {
      name: 'logits',
      datatype: 'FP32',
      shape: [2, 10],
    },
  );
  t.same(typed.raw_output_contents, [], 'typed in, typed out');
  assertClose(t, typed.outputs[0].contents.fp32_contents, expected, 0, 1e-5, "typed FP32: REST's logits");

  const raw = await client.ModelInfer({
    model_name: MODEL,
    inputs: [{ name: 'pixel_values', datatype: 'FP32', shape: [2, 3, 32, 32] }],
    outputs: [{ name: 'logits' }],
    raw_input_contents: [floatsLE(both)],
  });
  t.equal(raw.outputs[0].contents, null, 'raw in, raw out: no typed contents');
  t.equal(raw.raw_output_contents.length, 1);
  assertClose(t, fromFloatsLE(raw.raw_output_contents[0]), expected, 0, 1e-5, "raw FP32: REST's logits");

  // BYTES images, typed and raw, against POST /classify's logits of the same files
  const classify = async (img: Buffer) =>
    (await app.inject({ method: 'POST', url: '/classify?attention=none', payload: img, headers: { 'content-type': 'image/png' } })).json()
      .logits as number[];
  const fromClassify = [...(await classify(a)), ...(await classify(b))];
  const bytes = await client.ModelInfer({
    model_name: MODEL,
    inputs: [{ name: 'pixel_values', datatype: 'BYTES', shape: [2], contents: { bytes_contents: [a, b] } }],
  });
  t.same(
    bytes.outputs.map((o: { name: string }) => o.name),
    ['logits', 'attentions.0', 'attentions.1', 'attentions.2', 'attentions.3'],
    'every output by default',
  );
  assertClose(t, bytes.outputs[0].contents.fp32_contents, fromClassify, 0, 1e-4, "BYTES images: /classify's logits");
  t.same(bytes.outputs[1].shape, [2, 4, 65, 65]);
  const row = bytes.outputs[4].contents.fp32_contents.slice(0, 65);
  t.ok(Math.abs(row.reduce((x: number, y: number) => x + y, 0) - 1) < 1e-4, 'attention rows are probabilities');

  const rawBytes = await client.ModelInfer({
    model_name: MODEL,
    model_version: '1',
    inputs: [{ name: 'pixel_values', datatype: 'BYTES', shape: [2, 1] }],
    outputs: [{ name: 'logits' }],
    raw_input_contents: [bytesElements(a, b)],
  });
  assertClose(t, fromFloatsLE(rawBytes.raw_output_contents[0]), fromClassify, 0, 1e-4, "raw BYTES images: /classify's logits");
});

t.test('grpc: the classification extension, typed and raw', async (t) => {
  const { app, client } = await grpcApp(t);
  const img = await testImage();
  const logits: number[] = (
    await app.inject({ method: 'POST', url: '/classify?attention=none', payload: img, headers: { 'content-type': 'image/png' } })
  ).json().logits;
  const order = logits.map((v, i) => [v, i]).sort((x, y) => y[0] - x[0]);
  const labels = app.vitrine.model(MODEL).config.labels;
  const three = { name: 'logits', parameters: { classification: { int64_param: 3 } } };
  const typed = await client.ModelInfer({
    model_name: MODEL,
    inputs: [{ name: 'pixel_values', datatype: 'BYTES', shape: [1], contents: { bytes_contents: [img] } }],
    outputs: [three],
  });
  const out = typed.outputs[0];
  t.same({ datatype: out.datatype, shape: out.shape }, { datatype: 'BYTES', shape: [1, 3] });
  const strings = out.contents.bytes_contents.map((s: Buffer) => s.toString('utf8'));
  t.equal(strings.length, 3, 'three strings');
  strings.forEach((s: string, k: number) => {
    const [value, index, label] = s.split(':');
    t.equal(Number(index), order[k][1], `${k + 1}: the class of the ${k + 1}th largest logit`);
    t.equal(label, labels[order[k][1]], 'its label');
    t.ok(Math.abs(Number(value) - order[k][0]) < 1e-4, 'its value');
  });
  const raw = await client.ModelInfer({
    model_name: MODEL,
    inputs: [{ name: 'pixel_values', datatype: 'BYTES', shape: [1] }],
    outputs: [three],
    raw_input_contents: [bytesElements(img)],
  });
  t.same(raw.raw_output_contents[0], bytesElements(...strings.map((s: string) => Buffer.from(s))), 'raw: length-prefixed strings');
  const bad = await grpcError(
    client.ModelInfer({
      model_name: MODEL,
      inputs: [{ name: 'pixel_values', datatype: 'BYTES', shape: [1], contents: { bytes_contents: [img] } }],
      outputs: [{ name: 'logits', parameters: { classification: { string_param: 'three' } } }],
    }),
  );
  t.equal(bad.code, status.INVALID_ARGUMENT);
  t.match(bad.details, /classification must be a positive integer/);
});

t.test("grpc: each bad request is INVALID_ARGUMENT or NOT_FOUND, with REST's words", async (t) => {
  const { app, client } = await grpcApp(t);
  const img = await testImage();
  const pixels = await pixelsOf(app, img);
  const cases: [string, object, number, RegExp][] = [
    ['an unknown model', { model_name: 'nope', inputs: [fp32Input(pixels)] }, status.NOT_FOUND, /model 'nope' is not served/],
    ['no model name', { inputs: [fp32Input(pixels)] }, status.INVALID_ARGUMENT, /no model name/],
    ['no inputs', { model_name: MODEL }, status.INVALID_ARGUMENT, /no inputs/],
    [
      'a wrong size',
      { model_name: MODEL, inputs: [{ ...fp32Input(pixels.subarray(0, 3 * 16 * 16)), shape: [1, 3, 16, 16] }] },
      status.INVALID_ARGUMENT,
      /shape \[1, 3, 16, 16\] does not match the model's \[-1, 3, 32, 32\]/,
    ],
    [
      'data that does not fill the shape',
      { model_name: MODEL, inputs: [{ ...fp32Input(pixels.subarray(0, 100)) }] },
      status.INVALID_ARGUMENT,
      /holds 3072 elements, the data 100/,
    ],
    [
      'bytes that are not an image',
      {
        model_name: MODEL,
        inputs: [{ name: 'pixel_values', datatype: 'BYTES', shape: [1], contents: { bytes_contents: [Buffer.from('hello')] } }],
      },
      status.INVALID_ARGUMENT,
      /element 0: .*(not an image|unsupported)/i,
    ],
    [
      'a datatype the model does not take',
      { model_name: MODEL, inputs: [{ name: 'pixel_values', datatype: 'INT32', shape: [1], contents: { int_contents: [1] } }] },
      status.INVALID_ARGUMENT,
      /is INT32; model 'vit-cifar10' takes FP32/,
    ],
    [
      'no such datatype',
      { model_name: MODEL, inputs: [{ name: 'pixel_values', datatype: 'FLOAT', shape: [1] }] },
      status.INVALID_ARGUMENT,
      /datatype "FLOAT" is not one of/,
    ],
    [
      'data in the field of another type',
      {
        model_name: MODEL,
        inputs: [{ name: 'pixel_values', datatype: 'FP32', shape: [1, 3, 32, 32], contents: { fp64_contents: Array.from(pixels) } }],
      },
      status.INVALID_ARGUMENT,
      /its data goes in contents.fp32_contents, not contents.fp64_contents/,
    ],
    [
      'raw contents and typed',
      { model_name: MODEL, inputs: [fp32Input(pixels)], raw_input_contents: [floatsLE(pixels)] },
      status.INVALID_ARGUMENT,
      /send one or the other/,
    ],
    [
      'raw contents of the wrong count',
      {
        model_name: MODEL,
        inputs: [{ name: 'pixel_values', datatype: 'FP32', shape: [1, 3, 32, 32] }],
        raw_input_contents: [floatsLE(pixels), floatsLE(pixels)],
      },
      status.INVALID_ARGUMENT,
      /2 entries for 1 inputs/,
    ],
    [
      'raw FP32 cut short',
      {
        model_name: MODEL,
        inputs: [{ name: 'pixel_values', datatype: 'FP32', shape: [1, 3, 32, 32] }],
        raw_input_contents: [floatsLE(pixels).subarray(0, 10)],
      },
      status.INVALID_ARGUMENT,
      /not a whole number of FP32 elements/,
    ],
    [
      'an input of another name',
      { model_name: MODEL, inputs: [{ ...fp32Input(pixels), name: 'x' }] },
      status.INVALID_ARGUMENT,
      /has no input 'x'/,
    ],
    [
      'an unknown output',
      { model_name: MODEL, inputs: [fp32Input(pixels)], outputs: [{ name: 'probs' }] },
      status.INVALID_ARGUMENT,
      /has no output 'probs'/,
    ],
    [
      'an output asked twice',
      { model_name: MODEL, inputs: [fp32Input(pixels)], outputs: [{ name: 'logits' }, { name: 'logits' }] },
      status.INVALID_ARGUMENT,
      /asked twice/,
    ],
    ['an input given twice', { model_name: MODEL, inputs: [fp32Input(pixels), fp32Input(pixels)] }, status.INVALID_ARGUMENT, /given twice/],
    [
      'a negative shape',
      { model_name: MODEL, inputs: [{ ...fp32Input(pixels), shape: [-1, 3, 32, 32] }] },
      status.INVALID_ARGUMENT,
      /non-negative/,
    ],
  ];
  for (const [what, request, code, message] of cases) {
    const e = await grpcError(client.ModelInfer(request));
    t.equal(e.code, code, `${what}: ${status[code]}`);
    t.match(e.details, message, `${what}: ${e.details}`);
  }
  const plain = await grpcError(
    client.ModelInfer({ model_name: 'plain', inputs: [fp32Input(pixels)], outputs: [{ name: 'attentions.0' }] }),
  );
  t.equal(plain.code, status.INVALID_ARGUMENT, 'a model without maps has no attention outputs');
  t.same(await client.ServerLive({}), { live: true }, 'the server answers after all of them');
});

t.test('grpc: messages over the body limit are RESOURCE_EXHAUSTED, as is a full queue', async (t) => {
  const { app, client } = await grpcApp(t, { bodyLimit: 64 * 1024, maxQueue: 4, maxBatch: 8, maxDelayMs: 2000 });
  const img = await testImage();
  const pixels = await pixelsOf(app, img);
  const big = await grpcError(
    client.ModelInfer({
      model_name: MODEL,
      inputs: [{ name: 'pixel_values', datatype: 'BYTES', shape: [1], contents: { bytes_contents: [Buffer.alloc(100_000)] } }],
    }),
  );
  t.equal(big.code, status.RESOURCE_EXHAUSTED, `a 100 kB message with a 64 kB limit: ${big.details}`);
  // four images wait for company (max-delay 2 s): the queue holds no more
  const waiting = client.ModelInfer({
    model_name: MODEL,
    inputs: [{ name: 'pixel_values', datatype: 'FP32', shape: [4, 3, 32, 32] }],
    raw_input_contents: [floatsLE([...pixels, ...pixels, ...pixels, ...pixels])],
  });
  await until('four images are queued', () => app.vitrine.batcher.depth(app.vitrine.model(MODEL).key) >= 4);
  const full = await grpcError(client.ModelInfer({ model_name: MODEL, inputs: [fp32Input(pixels)] }));
  t.equal(full.code, status.RESOURCE_EXHAUSTED, `a full queue: ${full.details}`);
  const answered = await waiting;
  t.equal(answered.outputs[0].shape[0], 4, 'the queued request is answered');
  const many = await grpcError(client.ModelInfer({ model_name: MODEL, inputs: [{ ...fp32Input(Array(5 * 3072).fill(0), 5) }] }));
  t.equal(many.code, status.INVALID_ARGUMENT, 'more images in one request than the queue holds');
  t.match(many.details, /at most 4 \(--max-queue\)/);
});
