// Relevance maps through the service: GET /attention/:id?method=relevance for any class, inline in
// POST /classify, batched, and a clear 422 for a model without the explanation graph.

import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import t from 'tap';
import { readModelConfig } from '../../runtime/model-config.js';
import { rolloutMeanInto } from '../../server/engine/attention.js';
import { ROLL_SHARE, combinedRelevance, gradInputInto, lastLayerRelevanceInto, relevanceInto } from '../../server/engine/relevance.js';
import { createSession, runSession } from '../../runtime/ort.js';
import { tmpDir } from '../helpers/data.js';
import { multipart, testApp, testImage, testModels } from '../helpers/server.js';
import { assertClose } from '../helpers/opcheck.js';

async function classify(app: Awaited<ReturnType<typeof testApp>>, query = '') {
  const r = await app.inject({ method: 'POST', url: `/classify${query}`, ...multipart('image', await testImage()) });
  return r;
}

t.test('a relevance map for the top class and for any other, equal to the rules on relevance.onnx', async (t) => {
  const app = await testApp(t);
  const c = (await classify(app)).json();
  const top = c.predictions[0];
  const r = await app.inject(`/attention/${c.id}?method=relevance&format=json`);
  t.equal(r.statusCode, 200, r.body);
  const body = r.json();
  t.match(body, { method: 'relevance', class: top.label, class_index: top.index, grid: [8, 8] });
  t.equal(body.values.length, 8);
  t.equal(Math.max(...body.values.flat()), 1, 'scaled to a maximum of 1');

  // the same numbers from relevance.onnx and the rule, computed here
  const models = await testModels();
  const session = await createSession(path.join(models, 'vit-cifar10', 'onnx', 'relevance.onnx'));
  const config = await readModelConfig(path.join(models, 'vit-cifar10'));
  const png = await testImage();
  const { data } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const pixels = new Float32Array(3 * 1024);
  for (let p = 0; p < 1024; p++)
    for (let ch = 0; ch < 3; ch++) pixels[ch * 1024 + p] = (data[p * 3 + ch] / 255 - config.mean[ch]) / config.std[ch];
  const other = (top.index + 3) % 10;
  const out = await runSession(session, {
    pixel_values: { data: pixels, dims: [1, 3, 32, 32] },
    target_class: { data: Float32Array.from([other]), dims: [1] },
  });
  const chefer = new Float32Array(64);
  relevanceInto(
    [0, 1, 2, 3].map((l) => out[`attentions.${l}`].data),
    [0, 1, 2, 3].map((l) => out[`attention_grads.${l}`].data),
    0,
    4,
    65,
    chefer,
    0,
  );
  const gradInput = new Float32Array(64);
  gradInputInto(pixels, out.pixel_values_grad.data, 0, [3, 32, 32], [8, 8], gradInput, 0);
  const rollout = new Float32Array(64);
  rolloutMeanInto(
    [0, 1, 2, 3].map((l) => out[`attentions.${l}`].data),
    0,
    4,
    65,
    rollout,
    0,
  );
  const scaled = (a: Float32Array) => Array.from(a, (v) => v / Math.max(...a));
  const byLabel = (await app.inject(`/attention/${c.id}?method=relevance&class=${config.labels[other]}&format=json`)).json();
  const byIndex = (await app.inject(`/attention/${c.id}?method=relevance&class=${other}&format=json`)).json();
  t.same(byLabel.values, byIndex.values, 'a class by label or by index');
  t.equal(byLabel.class, config.labels[other]);
  t.equal(byLabel.rule, 'last-block chefer, rolled out (share 0.6 kept in place)');
  const layers = [0, 1, 2, 3].map((l) => out[`attentions.${l}`].data);
  const last = new Float32Array(64);
  lastLayerRelevanceInto(layers, out['attention_grads.3'].data, 0, 4, 65, last, 0);
  assertClose(
    t,
    byLabel.values.flat(),
    scaled(last),
    0,
    1e-4,
    "relevance: the last block's Chefer row rolled out, on the full graph's outputs (64 values)",
  );
  // written out here: r = e_CLS + mean_h max(0, A * dA) of the last block's [CLS] row, then
  // r <- r ((1 - w) mean_h A_l + w I) for the three blocks below, w^3 = 0.6
  let row: number[] = Array.from({ length: 65 }, (_, j) => (j === 0 ? 1 : 0));
  for (let h = 0; h < 4; h++)
    for (let j = 0; j < 65; j++) row[j] += Math.max(0, layers[3][h * 65 * 65 + j] * out['attention_grads.3'].data[h * 65 * 65 + j]) / 4;
  for (let l = 2; l >= 0; l--) {
    const w = Math.cbrt(0.6);
    const next = row.map((v) => v * w);
    for (let i = 0; i < 65; i++)
      for (let h = 0; h < 4; h++) for (let j = 0; j < 65; j++) next[j] += row[i] * ((1 - w) / 4) * layers[l][h * 65 * 65 + i * 65 + j];
    row = next;
  }
  t.equal(ROLL_SHARE, 0.6);
  assertClose(t, byLabel.values.flat(), scaled(Float32Array.from(row.slice(1))), 0, 1e-4, 'the rule written out here');
  const combined = (await app.inject(`/attention/${c.id}?method=combined&class=${other}&format=json`)).json();
  t.equal(combined.rule, '(chefer + rollout) x sqrt(grad-input)');
  assertClose(
    t,
    combined.values.flat(),
    scaled(combinedRelevance(chefer, rollout, gradInput, 64)),
    0,
    1e-4,
    "combined: Chefer's rule plus rollout times the square root of gradient x input, on the graph's outputs (64 values)",
  );
  const byHand = Array.from(chefer, (v, p) => (v / Math.max(...chefer) + rollout[p] / Math.max(...rollout)) * Math.sqrt(gradInput[p]));
  assertClose(t, combined.values.flat(), scaled(Float32Array.from(byHand)), 0, 1e-4, 'the combined rule written out here');
  const served = (await app.inject(`/attention/${c.id}?method=rollout&format=json`)).json();
  assertClose(t, served.values.flat(), scaled(rollout), 0, 1e-5, 'the rollout it adds is the one served');
  t.notSame(byLabel.values, body.values, 'another class, another map');
  const rule = (await app.inject(`/attention/${c.id}?method=chefer&class=${other}&format=json`)).json();
  assertClose(t, rule.values.flat(), scaled(chefer), 0, 1e-4, 'chefer: the rule on the attention gradients');
  const gi = (await app.inject(`/attention/${c.id}?method=grad-input&class=${other}&format=json`)).json();
  assertClose(t, gi.values.flat(), scaled(gradInput), 0, 1e-4, 'grad-input: |x * dy/dx| summed over each 4x4 patch and the channels');
  let direct = 0; // the patch at row 2, column 5, summed here from the gradient itself
  for (let ch = 0; ch < 3; ch++)
    for (let y = 8; y < 12; y++)
      for (let x = 20; x < 24; x++) direct += Math.abs(pixels[ch * 1024 + y * 32 + x] * out.pixel_values_grad.data[ch * 1024 + y * 32 + x]);
  t.ok(Math.abs(gradInput[2 * 8 + 5] - direct) < 1e-6 * Math.max(1, direct), 'one patch summed by hand');

  const png2 = await app.inject(`/attention/${c.id}?method=relevance&class=${other}&size=64`);
  t.equal(png2.statusCode, 200);
  t.equal(png2.headers['content-type'], 'image/png');
  t.equal((await sharp(png2.rawPayload).metadata()).width, 64);

  // inline in /classify, for the top prediction, in one run of the explanation graph (it explains its
  // own top prediction), and kept with the result: drawing it later runs nothing
  const batcher = app.vitrine.batcher;
  const submit = batcher.submit.bind(batcher);
  const runs: unknown[] = [];
  batcher.submit = (...args: Parameters<typeof submit>) => (runs.push(args[2]), submit(...args));
  const inline = (await classify(app, '?attention=relevance')).json();
  t.same(runs, [{ explain: { class: -1, graph: 'light' } }], 'one run (of the light graph), for the top class');
  t.match(inline.attention, { method: 'relevance', class: inline.predictions[0].label, grid: [8, 8] });
  t.same(inline.attention.values, body.values, "inline map = the kept result's map for the same image");
  assertClose(t, inline.logits, c.logits, 0, 1e-5, "the explanation graph's logits are the model's");
  t.same(
    inline.predictions.map((p: { index: number }) => p.index),
    c.predictions.map((p: { index: number }) => p.index),
  );
  t.equal((await app.inject(`/attention/${inline.id}?method=relevance`)).statusCode, 200);
  t.equal(runs.length, 1, 'the default map of the top class came with the classification');
  for (const method of ['chefer', 'grad-input', 'combined'])
    t.equal((await app.inject(`/attention/${inline.id}?method=${method}`)).statusCode, 200);
  t.same(runs.slice(1), [{ explain: { class: inline.predictions[0].index, graph: 'full' } }], 'the other three: one run of the full graph');
  batcher.submit = submit;

  const metrics = (await app.inject('/metrics')).body;
  t.match(metrics, /vitrine_attention_maps_total\{model="vit-cifar10",method="relevance"\} [4-9]/);
  t.match(metrics, /vitrine_batch_size_count\{model="vit-cifar10 relevance"\} \d+/);
  const listed = (await app.inject('/models')).json().models.find((m: { name: string }) => m.name === 'vit-cifar10');
  t.same(listed.methods, ['rollout', 'cls', 'relevance', 'chefer', 'grad-input', 'combined']);
  t.same(listed.class_methods, ['relevance', 'chefer', 'grad-input', 'combined'], 'those that take class=');
});

t.test('bad relevance requests are 400s that say what is accepted', async (t) => {
  const app = await testApp(t);
  const { id } = (await classify(app)).json();
  let r = await app.inject(`/attention/${id}?method=relevance&class=unicorn`);
  t.equal(r.statusCode, 400);
  t.match(r.json().message, /unknown class 'unicorn': a label \(airplane, .*\) or an index 0-9/);
  r = await app.inject(`/attention/${id}?method=relevance&class=10`);
  t.equal(r.statusCode, 400);
  r = await app.inject(`/attention/${id}?method=relevance&layer=1`);
  t.equal(r.statusCode, 400);
  t.match(r.json().message, /layer does not apply to method=relevance/);
  r = await app.inject(`/attention/${id}?method=rollout&class=cat`);
  t.equal(r.statusCode, 400);
  t.match(r.json().message, /class applies to method=relevance, chefer, grad-input and combined only/);
});

t.test('concurrent relevance requests are batched', async (t) => {
  // A batch of six leaves when the sixth arrives (the delay, 10 s, never runs out first).
  const app = await testApp(t, { maxDelayMs: 10_000, maxBatch: 6 });
  const { id } = (await Promise.all(Array.from({ length: 6 }, () => classify(app))))[0].json(); // a full batch: no wait
  const all = await Promise.all(
    Array.from({ length: 6 }, (_, k) => app.inject(`/attention/${id}?method=relevance&class=${k}&format=json`)),
  );
  t.same(
    all.map((r) => r.statusCode),
    new Array(6).fill(200),
  );
  const metrics = (await app.inject('/metrics')).body;
  const sum = Number(/vitrine_batch_size_sum\{model="vit-cifar10 relevance"\} (\d+)/.exec(metrics)?.[1]);
  const count = Number(/vitrine_batch_size_count\{model="vit-cifar10 relevance"\} (\d+)/.exec(metrics)?.[1]);
  t.equal(sum, 6, 'six relevance maps');
  t.equal(count, 1, 'in one batch');
});

t.test('a model without the explanation graph answers 422 saying what it lacks', async (t) => {
  const root = await tmpDir('vitrine-models-');
  const src = path.join(await testModels(), 'vit-cifar10');
  const old = path.join(root, 'vit-cifar10');
  await mkdir(old);
  await cp(path.join(src, 'onnx', 'model.onnx'), path.join(old, 'model.onnx'));
  await cp(path.join(src, 'preprocessor_config.json'), path.join(old, 'preprocessor_config.json'));
  const config = JSON.parse(await readFile(path.join(src, 'config.json'), 'utf8'));
  delete config.relevance;
  await writeFile(path.join(old, 'config.json'), JSON.stringify(config));
  const app = await testApp(t, { models: root });
  const c = await classify(app);
  t.equal(c.statusCode, 200);
  let r = await app.inject(`/attention/${c.json().id}?method=relevance`);
  t.equal(r.statusCode, 422);
  t.match(
    r.json().message,
    /model vit-cifar10 has no relevance graph: its config.json declares no 'relevance' \(vitrine export and vitrine import/,
  );
  r = await classify(app, '?attention=relevance');
  t.equal(r.statusCode, 422);
  t.equal((await app.inject(`/attention/${c.json().id}?method=rollout&format=json`)).statusCode, 200, 'rollout still works');
});

t.test('a folder without the light graph serves the same default map from the full one', async (t) => {
  const src = path.join(await testModels(), 'vit-cifar10');
  const root = await tmpDir('vitrine-models-');
  // one folder as exported before the light graph (config.json names none), one naming a file that is not there
  for (const [name, light] of [
    ['before', undefined],
    ['missing', 'onnx/gone.onnx'],
  ] as const) {
    const dir = path.join(root, name);
    await mkdir(path.join(dir, 'onnx'), { recursive: true });
    for (const f of ['onnx/model.onnx', 'onnx/relevance.onnx', 'preprocessor_config.json']) await cp(path.join(src, f), path.join(dir, f));
    const config = JSON.parse(await readFile(path.join(src, 'config.json'), 'utf8'));
    if (light) config.relevance.light_file = light;
    else delete config.relevance.light_file;
    await writeFile(path.join(dir, 'config.json'), JSON.stringify(config));
  }
  await cp(src, path.join(root, 'vit-cifar10'), { recursive: true });
  const lines: string[] = [];
  const app = await testApp(
    t,
    { models: root, defaultModel: 'vit-cifar10', logLevel: 'warn' },
    { logger: { level: 'warn', stream: { write: (l: string) => lines.push(l) } } },
  );
  t.match(
    lines.map((l) => JSON.parse(l).msg).join('\n'),
    /model missing: config.json names onnx\/gone.onnx, which is not there: its default maps come from onnx\/relevance.onnx/,
  );
  t.same(
    app.vitrine.models.map((m) => [m.name, m.lightExplanationFile !== null && m.lightExplanationFile !== undefined]),
    [
      ['before', false],
      ['missing', false],
      ['vit-cifar10', true],
    ],
  );
  const maps = [];
  for (const model of ['before', 'missing', 'vit-cifar10']) {
    const r = (await classify(app, `?model=${model}&attention=relevance`)).json();
    maps.push(r.attention.values.flat());
    const again = (await app.inject(`/attention/${r.id}?method=relevance&class=2&format=json`)).json();
    maps.push(again.values.flat());
  }
  assertClose(t, maps[0], maps[4], 0, 1e-5, "inline: the full graph's map = the light graph's");
  assertClose(t, maps[2], maps[4], 0, 1e-5, 'inline, the missing light file: the same');
  assertClose(t, maps[1], maps[5], 0, 1e-5, 'another class, from the full graph = from the light one');
  const metrics = (await app.inject('/metrics')).body;
  t.match(metrics, /vitrine_batch_size_count\{model="before relevance"\} 2/, 'the default maps ran in the relevance queue');
});
