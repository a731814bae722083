// Model folders whose config.json contradicts their graph, or asks for absurd sizes, are refused at
// load with the reason while the others are served (a 50,000 px image_size on a 32 px graph once grew
// the process to 7 GB on the first request and aborted it with every other model). A graph that gives
// the default rollout itself (config.json rollout_output) is served that map, the one the server would
// make from its attentions.

import { cp, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { decodeModel, int64Tensor, serializeModel } from '../../trainer/autograd/onnx-proto.js';
import { tmpDir } from '../helpers/data.js';
import { multipart, testApp, testImage, testModels } from '../helpers/server.js';

/** A copy of the test model under `name` with config.json's keys changed. */
async function variant(root: string, name: string, change: Record<string, unknown>): Promise<void> {
  const from = path.join(await testModels(), 'vit-cifar10');
  await cp(from, path.join(root, name), { recursive: true });
  const file = path.join(root, name, 'config.json');
  await writeFile(file, JSON.stringify({ ...JSON.parse(await readFile(file, 'utf8')), ...change }));
}

t.test('configs that contradict their graph or ask for absurd sizes are refused; the others serve', async (t) => {
  const root = await tmpDir('vitrine-folders-');
  await variant(root, 'good', {});
  await variant(root, 'huge-size', { image_size: [50000, 50000] });
  await variant(root, 'wrong-size', { image_size: [64, 64] });
  await variant(root, 'long-mean', { mean: new Array(1_000_000).fill(0.5), std: new Array(1_000_000).fill(0.5) });
  await variant(root, 'grey', { mean: [0.5], std: [0.5] });
  await variant(root, 'more-labels', { labels: Array.from({ length: 11 }, (_, i) => `c${i}`) });
  await variant(root, 'many-labels', { labels: Array.from({ length: 1_000_000 }, (_, i) => `c${i}`) });
  await variant(root, 'rollout-shape', { rollout_output: 'logits' });
  await variant(root, 'rollout-name', { rollout_output: 'rollout' });
  const lines: string[] = [];
  const app = await testApp(
    t,
    { models: root, defaultModel: 'good', logLevel: 'warn' },
    { logger: { level: 'warn', stream: { write: (l: string) => lines.push(JSON.parse(l).msg) } } },
  );
  const served = ((await app.inject('/models')).json().models as { name: string }[]).map((m) => m.name);
  t.same(served, ['good'], 'only the folder whose config fits its graph');
  const said = lines.join('\n');
  t.match(said, /skipping model huge-size: .*image_size.*at most 4096/);
  t.match(
    said,
    new RegExp(
      /skipping model wrong-size: model wrong-size: config\.json gives height 64 \(image_size\), /.source +
        /but .*model\.onnx takes 'pixel_values' of height 32 \(\[batch, 3, 32, 32\]\)/.source,
    ),
  );
  t.match(said, /skipping model long-mean: .*mean.*at most 4/);
  t.match(said, /skipping model grey: model grey: config\.json gives channels 1 \(one mean and std per channel\), but .* of channels 3/);
  t.match(
    said,
    new RegExp(
      /skipping model more-labels: model more-labels: config\.json names 11 labels, /.source +
        /but .*model\.onnx gives 10 logits \('logits' \[batch, 10\]\)/.source,
    ),
  );
  t.match(said, /skipping model many-labels: .*labels.*at most 100,000/);
  t.match(
    said,
    /skipping model rollout-shape: model rollout-shape: config\.json's rollout_output 'logits' must be \[batch, 64\] .*gives \[batch, 10\]/,
  );
  t.match(said, /skipping model rollout-name: model rollout-name: .*model\.onnx has no input or output named 'rollout'/);
  const r = await app.inject({ method: 'POST', url: '/classify', ...multipart('image', await testImage()) });
  t.equal(r.statusCode, 200, 'the good model answers');
  t.equal(
    (await app.inject({ method: 'POST', url: '/classify?model=huge-size', ...multipart('image', await testImage()) })).statusCode,
    404,
    'a refused model is not served',
  );
});

t.test("a graph's own rollout is the map the server makes from its attentions", async (t) => {
  const root = await tmpDir('vitrine-folders-');
  await variant(root, 'given', {});
  await variant(root, 'made', { rollout_output: undefined });
  // the graph's rollout read one token early: a map of the same shape that is not the rollout
  await variant(root, 'shifted', {});
  const file = path.join(root, 'shifted', 'onnx', 'model.onnx');
  const model = decodeModel(await readFile(file));
  for (const init of model.graph!.initializer!) {
    if (init.name === 'attention_rollout/starts') Object.assign(init, int64Tensor(init.name, [0]));
    if (init.name === 'attention_rollout/ends') Object.assign(init, int64Tensor(init.name, [64]));
  }
  await writeFile(file, serializeModel(model));
  const app = await testApp(t, { models: root, defaultModel: 'given' });
  t.equal(JSON.parse(await readFile(path.join(root, 'given', 'config.json'), 'utf8')).rollout_output, 'attention_rollout');
  const classify = async (url: string) => {
    const r = await app.inject({ method: 'POST', url, ...multipart('image', await testImage()) });
    t.equal(r.statusCode, 200, url);
    return r.json();
  };
  const given = await classify('/classify?model=given');
  const made = await classify('/classify?model=made');
  t.same(given.logits, made.logits);
  t.equal(given.attention.method, 'rollout');
  const flat = (v: number[][]) => v.flat();
  const a = flat(given.attention.values);
  const b = flat(made.attention.values);
  t.equal(a.length, 64);
  t.ok(Math.max(...a.map((v, i) => Math.abs(v - b[i]))) < 1e-5, 'the same map within float32 rounding');
  const shifted = flat((await classify('/classify?model=shifted')).attention.values);
  t.ok(Math.max(...shifted.map((v, i) => Math.abs(v - b[i]))) > 1e-3, "the map served is the graph's output");
  // maps that need every attention still get them from the same graph
  const full = await classify('/classify?model=given&attention=full');
  t.equal(full.attention.layers.length, 4, 'attention=full: every layer');
  const cls = await app.inject(`/attention/${given.id}?method=cls&format=json`);
  t.equal(cls.statusCode, 200, 'the cls map');
});
