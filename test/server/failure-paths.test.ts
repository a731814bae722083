// The service when a model fails where no check at load can see it: a graph that fails while running
// (a 500 for its requests, the others served), a graph whose logits are not one per label (a 500 that
// says so), no model that loads (the command exits with the reason), and a worker replaced after a
// crash that cannot start (the pool retries until it can, and is ready again).

import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { DataType, serializeModel } from '../../trainer/autograd/onnx-proto.js';
import { assertOneLineError, runCli } from '../helpers/cli.js';
import { tmpDir } from '../helpers/data.js';
import { floats, ints, node, onnxModel } from '../helpers/onnx-build.js';
import { png, testApp, testModels } from '../helpers/server.js';
import { until } from '../helpers/wait.js';

const LABELS = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j'];

/** A model folder (model.onnx and config.json) of a 4x4 image whose logits are cut from its 48 values
 *  by a count computed from the pixels (7, though no shape inference can know it, so no check at load
 *  can): 'slice' takes the first 7 values, 'reshape' makes rows of 7 (which 48 cannot fill). */
async function dataDependentModel(root: string, name: string, how: 'slice' | 'reshape'): Promise<void> {
  const dir = path.join(root, name);
  await mkdir(dir, { recursive: true });
  const nodes = [
    node('Flatten', ['pixel_values'], ['flat']),
    node('Mul', ['flat', 'zero'], ['zeros']),
    node('Add', ['zeros', 'seven'], ['sevens']),
    node('ReduceMax', ['sevens'], ['most'], { keepdims: 0 }),
    node('Cast', ['most'], ['k'], { to: DataType.INT64 }),
    node('Unsqueeze', ['k', 'axis0'], ['k1']),
    ...(how === 'slice'
      ? [node('Slice', ['flat', 'start', 'k1', 'axis1'], ['logits'])]
      : [node('Concat', ['minus1', 'k1'], ['shape'], { axis: 0 }), node('Reshape', ['pixel_values', 'shape'], ['logits'])]),
  ];
  const inits = [
    floats('zero', [0], []),
    floats('seven', [7], []),
    ints('axis0', [0]),
    ints('axis1', [1]),
    ints('start', [0]),
    ints('minus1', [-1]),
  ];
  await writeFile(
    path.join(dir, 'model.onnx'),
    serializeModel(onnxModel({ nodes, inits, inputs: [['pixel_values', ['batch', 3, 4, 4]]], outputs: ['logits'] })),
  );
  await writeFile(
    path.join(dir, 'config.json'),
    JSON.stringify({
      labels: LABELS,
      image_size: [4, 4],
      mean: [0.5, 0.5, 0.5],
      std: [0.5, 0.5, 0.5],
      input_name: 'pixel_values',
      logits_output: 'logits',
      attention_outputs: [],
      patch_size: null,
    }),
  );
}

const classify = (app: Awaited<ReturnType<typeof testApp>>, model: string, image: Buffer) =>
  app.inject({ method: 'POST', url: `/classify?model=${model}&attention=none`, payload: image, headers: { 'content-type': 'image/png' } });

t.test('a graph that fails while running answers 500 for its requests; the other models serve', async (t) => {
  const root = await tmpDir('vitrine-failing-');
  await cp(path.join(await testModels(), 'vit-cifar10'), path.join(root, 'vit-cifar10'), { recursive: true });
  await dataDependentModel(root, 'breaks', 'reshape');
  await dataDependentModel(root, 'miscounted', 'slice');
  const app = await testApp(t, { models: root });
  t.same(app.vitrine.models.map((m) => m.name).sort(), ['breaks', 'miscounted', 'vit-cifar10'], 'nothing at load refuses them');
  const image = await png(4, 4, [10, 200, 30]);

  let r = await classify(app, 'breaks', image);
  t.equal(r.statusCode, 500);
  t.equal(r.json().code, 'VIT_INTERNAL');
  t.match(r.json().message, /inference failed: .*reshape/i, 'the runtime error is the message');
  r = await classify(app, 'miscounted', image);
  t.equal(r.statusCode, 500);
  t.match(r.json().message, /inference failed: model miscounted: logits has 7 values per image, config.json names 10 labels/);
  // nothing else is lost: the worker still serves, the same model fails the same way
  t.equal((await classify(app, 'vit-cifar10', await png(32, 32, [10, 200, 30]))).statusCode, 200);
  t.equal((await classify(app, 'breaks', image)).statusCode, 500);
  t.equal(app.vitrine.pool.restarts, 0, 'no worker was lost');
});

t.test('no model that loads: vitrine serve exits 1 with the reason', async (t) => {
  const root = await tmpDir('vitrine-unloadable-');
  await dataDependentModel(root, 'garbage', 'slice');
  await writeFile(path.join(root, 'garbage', 'model.onnx'), 'not a graph');
  const r = await runCli(['serve', '--models', root, '--port', '0', '--host', '127.0.0.1', '--workers', '1', '--log-level', 'error'], {
    built: true,
    timeoutMs: 60_000,
  });
  t.equal(r.code, 1, r.stderr);
  assertOneLineError(t, r.stderr, /model garbage: .*model\.onnx cannot be loaded/);
});

t.test('a worker replaced after a crash that cannot start is retried until it can', async (t) => {
  const root = await tmpDir('vitrine-restart-');
  const dir = path.join(root, 'vit-cifar10');
  await cp(path.join(await testModels(), 'vit-cifar10'), dir, { recursive: true });
  const lines: string[] = [];
  const app = await testApp(
    t,
    { models: root, logLevel: 'info' },
    { logger: { level: 'info', stream: { write: (l: string) => lines.push(l) } } },
  );
  t.equal((await app.inject('/readyz')).statusCode, 200);

  // the model file is broken on disk while the service runs; a crash makes the pool start a worker
  const file = path.join(dir, 'onnx', 'model.onnx');
  const good = await readFile(file);
  await writeFile(file, 'not a graph');
  await app.vitrine.pool.kill(0);
  const said = () => lines.map((l) => JSON.parse(l).msg as string);
  await until(
    'the new worker failed to start twice',
    () => said().filter((m) => /inference worker 0 could not restart: .*cannot be loaded/.test(m)).length >= 2,
    20_000,
  );
  t.equal((await app.inject('/readyz')).statusCode, 503, 'not ready while no worker is');
  const r = await classify(app, 'vit-cifar10', await png(32, 32, [10, 200, 30]));
  t.not(r.statusCode, 200, `a request meanwhile is not answered as if served (${r.statusCode})`);

  await writeFile(file, good);
  await until('the pool is ready again', async () => (await app.inject('/readyz')).statusCode === 200, 20_000);
  t.equal((await classify(app, 'vit-cifar10', await png(32, 32, [10, 200, 30]))).statusCode, 200, 'served again');
  t.ok(app.vitrine.pool.restarts >= 3, `restarts counted (${app.vitrine.pool.restarts})`);
});
