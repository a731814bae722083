// The gRPC binding as operations see it: keys and the admin token, the repository RPCs, the drain,
// malformed messages (the server stays up and answers each with a status of ours), the metrics, and
// gRPC and HTTP callers batched together.

import t from 'tap';
import { randomBytes } from 'node:crypto';
import { twoModelsRoot } from '../helpers/server.js';
import { grpcApp, grpcError, status } from '../helpers/grpc.js';
import { until } from '../helpers/wait.js';
import { peerAddress } from '../../server/grpc/status.js';

const MODEL = 'vit-cifar10';
const floatsLE = (values: ArrayLike<number>) => Buffer.from(Float32Array.from(values).buffer);
const image = (seed: number) => Float32Array.from({ length: 3072 }, (_, i) => Math.sin(i * 0.01 + seed));
const rawRequest = (pixels: Float32Array, model = MODEL) => ({
  model_name: model,
  inputs: [{ name: 'pixel_values', datatype: 'FP32', shape: [1, 3, 32, 32] }],
  outputs: [{ name: 'logits' }],
  raw_input_contents: [floatsLE(pixels)],
});

t.test('grpc: the API key guards the model RPCs, not health', async (t) => {
  const { client } = await grpcApp(t, { apiKey: 'sesame' });
  t.same(await client.ServerLive({}), { live: true }, 'liveness needs no key');
  t.same(await client.ServerReady({}), { ready: true }, 'nor readiness');
  t.same(await client.HealthCheck({ service: '' }), { status: 'SERVING' }, 'nor the health service');
  for (const [what, md] of [
    ['no key', {}],
    ['a wrong key', { authorization: 'Bearer open' }],
    ['the key without its scheme', { authorization: 'sesame' }],
  ] as const) {
    const e = await grpcError(client.ModelInfer(rawRequest(image(1)), md));
    t.equal(e.code, status.UNAUTHENTICATED, `${what}: UNAUTHENTICATED`);
    t.match(e.details, /authorization: Bearer <key>/);
    t.equal((await grpcError(client.ModelMetadata({ name: MODEL }, md))).code, status.UNAUTHENTICATED, `${what}: metadata too`);
  }
  const ok = await client.ModelInfer(rawRequest(image(1)), { authorization: 'bearer sesame' });
  t.equal(ok.outputs[0].shape[1], 10, 'the key answers');
});

t.test('grpc: the repository RPCs load, reload and unload while serving', async (t) => {
  const models = await twoModelsRoot('vitrine-grpc-repo-');
  const { client } = await grpcApp(t, { models, defaultModel: 'alpha', modelControl: 'explicit', adminToken: 'admin' });
  const admin = { authorization: 'Bearer admin' };
  t.equal((await grpcError(client.RepositoryIndex({}))).code, status.UNAUTHENTICATED, 'the index needs the admin token');
  t.equal(
    (await grpcError(client.RepositoryModelLoad({ model_name: 'beta' }, { authorization: 'Bearer wrong' }))).code,
    status.UNAUTHENTICATED,
  );
  const index = await client.RepositoryIndex({}, admin);
  t.same(
    index.models.map((m: { name: string; state: string; version: string }) => [m.name, m.version, m.state]),
    [
      ['alpha', '1', 'READY'],
      ['beta', '1', 'READY'],
    ],
  );
  t.same(await client.RepositoryModelUnload({ model_name: 'beta' }, admin), {});
  const gone = await grpcError(client.ModelInfer(rawRequest(image(2), 'beta')));
  t.equal(gone.code, status.NOT_FOUND, 'an unloaded model is NOT_FOUND');
  t.match(gone.details, /model 'beta' is not served/);
  t.same(
    (await client.RepositoryIndex({ ready: true }, admin)).models.map((m: { name: string }) => m.name),
    ['alpha'],
    'ready: true lists the ready models only',
  );
  t.same(await client.RepositoryModelLoad({ model_name: 'beta' }, admin), {});
  const back = await client.ModelInfer(rawRequest(image(2), 'beta'));
  t.equal(back.model_version, '2', 'loaded again as version 2');
  const missing = await grpcError(client.RepositoryModelLoad({ model_name: 'nope' }, admin));
  t.equal(missing.code, status.INVALID_ARGUMENT, `a folder that is not there: ${missing.details}`);
  t.match(missing.details, /no model folder nope/);
  const bad = await grpcError(client.RepositoryModelLoad({ model_name: '../etc' }, admin));
  t.equal(bad.code, status.INVALID_ARGUMENT, `a name that is not a folder name: ${bad.details}`);
  t.same((await client.ServerMetadata({})).extensions, ['classification', 'model_repository']);
});

t.test('grpc: without --model-control the repository RPCs are UNIMPLEMENTED; without a token, loopback only', async (t) => {
  const { client } = await grpcApp(t);
  const e = await grpcError(client.RepositoryIndex({}));
  t.equal(e.code, status.UNIMPLEMENTED);
  t.match(e.details, /--model-control explicit/);
  t.equal(peerAddress('127.0.0.1:51234'), '127.0.0.1', "grpc-js' form");
  t.equal(peerAddress('::1:51234'), '::1');
  t.equal(peerAddress('::ffff:127.0.0.1:51234'), '::ffff:127.0.0.1');
  t.equal(peerAddress('ipv4:127.0.0.1:51234'), '127.0.0.1', "other libraries' forms");
  t.equal(peerAddress('ipv6:[::1]:51234'), '::1');
  t.equal(peerAddress('10.1.2.3:80'), '10.1.2.3', 'another machine is not loopback');
});

t.test('grpc: draining answers the calls in flight and refuses new ones', async (t) => {
  const { app, server, client } = await grpcApp(t, { maxDelayMs: 5000, maxBatch: 64 });
  const inFlight = [1, 2, 3].map((s) => client.ModelInfer(rawRequest(image(s))));
  await until('three calls are queued', () => app.vitrine.batcher.depth(app.vitrine.model(MODEL).key) >= 3);
  server.beginDrain();
  const refused = await grpcError(client.ModelInfer(rawRequest(image(4))));
  t.equal(refused.code, status.UNAVAILABLE, 'a call after the drain began is UNAVAILABLE');
  t.match(refused.details, /shutting down/);
  t.same(await client.ServerReady({}), { ready: false }, 'not ready while draining');
  await until('health says NOT_SERVING', async () => (await client.HealthCheck({ service: '' })).status === 'NOT_SERVING');
  const closed = Promise.all([server.drain(), app.close()]);
  const answers = await Promise.all(inFlight);
  t.same(
    answers.map((a) => a.outputs[0].shape),
    [
      [1, 10],
      [1, 10],
      [1, 10],
    ],
    'the three in flight are answered',
  );
  await closed;
  const after = await grpcError(client.ServerLive({}, {}, 2000));
  t.equal(after.code, status.UNAVAILABLE, 'and the port is closed');
});

t.test('grpc: malformed messages each get a status of ours, and the server stays up', async (t) => {
  const { client } = await grpcApp(t);
  const valid = client.encode('ModelInfer', {
    model_name: MODEL,
    id: 'x',
    inputs: [{ name: 'pixel_values', datatype: 'FP32', shape: [1, 3, 32, 32], parameters: { p: { int64_param: 3 } } }],
    outputs: [{ name: 'logits', parameters: { classification: { int64_param: 2 } } }],
    raw_input_contents: [floatsLE(image(5))],
  });
  t.ok((await client.raw('ModelInfer', valid)).length > 0, 'the encoded request itself is answered');
  let seed = 7;
  const random = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const messages: Buffer[] = [];
  for (let i = 0; i < 120; i++) messages.push(randomBytes(random(300)));
  for (let i = 0; i < 240; i++) {
    const m = Buffer.from(valid);
    const kind = i % 3;
    if (kind === 0) for (let k = 0; k <= random(4); k++) m[random(m.length)] = random(256);
    if (kind === 1) messages.push(m.subarray(0, random(m.length)));
    else if (kind === 2) messages.push(Buffer.concat([m.subarray(0, 40), randomBytes(random(50)), m.subarray(40)]));
    else messages.push(m);
  }
  // and messages that parse, with fields the server must check: any type, shape, contents and parameters
  const pick = <T>(xs: T[]) => xs[random(xs.length)];
  const dims = [0, 1, 2, 3, 32, 65, -1, 2 ** 40, 2 ** 53 + 2];
  const contents = () =>
    pick([
      {},
      { fp32_contents: Array.from({ length: random(3) * 1536 }, () => random(100) - 50) },
      { bytes_contents: [randomBytes(random(40))] },
      { int_contents: [1, 2, 3] },
      { fp32_contents: [1], bytes_contents: [Buffer.from('x')] },
    ]);
  const parameter = () => pick([{ int64_param: random(5) - 1 }, { string_param: 'x' }, { bool_param: true }, { double_param: 0.5 }, {}]);
  for (let i = 0; i < 150; i++) {
    const inputs = Array.from({ length: random(3) }, () => ({
      name: pick(['pixel_values', '', 'x']),
      datatype: pick(['FP32', 'BYTES', 'INT32', 'FP16', 'UINT64', 'nope', '']),
      shape: Array.from({ length: random(6) }, () => pick(dims)),
      parameters: { p: parameter() },
      contents: contents(),
    }));
    messages.push(
      client.encode('ModelInfer', {
        model_name: pick([MODEL, 'plain', '', 'nope']),
        model_version: pick(['', '1', '2', 'x']),
        inputs,
        outputs: Array.from({ length: random(3) }, () => ({
          name: pick(['logits', 'attentions.0', 'x']),
          parameters: { classification: parameter() },
        })),
        raw_input_contents: random(2) ? [] : inputs.map(() => randomBytes(random(3) * 4)),
      }),
    );
  }
  const codes = new Map<string, number>();
  for (let i = 0; i < messages.length; i += 24) {
    const answers = await Promise.all(
      messages.slice(i, i + 24).map((m) =>
        client.raw('ModelInfer', m).then(
          () => 'OK',
          (e: { code: number }) => status[e.code],
        ),
      ),
    );
    for (const a of answers) codes.set(a, (codes.get(a) ?? 0) + 1);
  }
  t.comment(JSON.stringify(Object.fromEntries(codes)));
  t.notOk(codes.has('INTERNAL'), 'no malformed message reaches an error that is not ours');
  t.notOk(codes.has('UNKNOWN'), 'nor one that the library could not name');
  t.ok((codes.get('INVALID_ARGUMENT') ?? 0) > 50, 'most are refused as invalid arguments');
  t.same(await client.ServerLive({}), { live: true }, 'the server is up');
  t.equal((await client.ModelInfer(rawRequest(image(6)))).outputs[0].shape[1], 10, 'and answers inference');
});

t.test('grpc: calls are counted in the metrics, and batched with HTTP requests', async (t) => {
  const { app, client } = await grpcApp(t, { maxBatch: 8, maxDelayMs: 3000 });
  const images = [1, 2, 3, 4, 5, 6, 7, 8].map(image);
  const rest = (p: Float32Array) =>
    app
      .inject({
        method: 'POST',
        url: `/v2/models/${MODEL}/infer`,
        payload: JSON.stringify({ inputs: [{ name: 'pixel_values', datatype: 'FP32', shape: [1, 3, 32, 32], data: Array.from(p) }] }),
        headers: { 'content-type': 'application/json' },
      })
      .then((r) => r.json().outputs[0].data as number[]);
  const grpc = (p: Float32Array) =>
    client.ModelInfer(rawRequest(p)).then((r) => Array.from(new Float32Array(new Uint8Array(r.raw_output_contents[0]).buffer)));
  // four of each at once: one batch of eight (the batch waits up to 3 s for company)
  const answers = await Promise.all(images.map((p, i) => (i % 2 ? rest(p) : grpc(p))));
  const text = (await app.inject('/metrics')).body;
  t.match(text, new RegExp(`vitrine_batch_size_count\\{model="${MODEL}"\\} 1\\n`), 'eight requests, one batch');
  t.match(text, new RegExp(`vitrine_batch_size_sum\\{model="${MODEL}"\\} 8\\n`));
  const again = await Promise.all(images.map((p, i) => (i % 2 ? grpc(p) : rest(p))));
  answers.forEach((a, i) =>
    t.ok(
      a.every((v, k) => Math.abs(v - again[i][k]) < 1e-5),
      `image ${i}: the same logits by either door`,
    ),
  );
  await grpcError(client.ModelMetadata({ name: 'nope' }));
  const after = (await app.inject('/metrics')).body;
  t.match(after, /vitrine_grpc_requests_total\{method="ModelInfer",code="OK"\} 8\n/);
  t.match(after, /vitrine_grpc_requests_total\{method="ModelMetadata",code="NOT_FOUND"\} 1\n/);
  t.match(after, /vitrine_grpc_request_duration_seconds_count\{method="ModelInfer"\} 8\n/);
});
