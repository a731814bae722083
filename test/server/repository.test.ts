// Models loaded, replaced and unloaded while serving (server/engine/repository.ts), on the engine the
// service and predict use: a reload under concurrent load loses nothing and never answers with
// another version's graph; a reload that fails leaves the old version serving; an unload stops new
// work and says why.

import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t, { type Test } from 'tap';
import { classifyAndExplain } from '../../server/engine/classify.js';
import { startInference } from '../../server/engine/inference.js';
import { discoverModels } from '../../server/engine/models.js';
import { ModelRepository } from '../../server/engine/repository.js';
import { defaultServeConfig } from '../../server/config.js';
import { CIFAR10_CLASSES } from '../../trainer/data/cifar10.js';
import { exportModel } from '../../trainer/export.js';
import { SEED_CONFIG } from '../../trainer/vit/config.js';
import { ViT } from '../../trainer/vit/model.js';
import { ROOT } from '../helpers/cli.js';
import { tmpDir } from '../helpers/data.js';
import { maxAbsDiff } from '../helpers/opcheck.js';
import { placeBundledModel, twoModelsRoot } from '../helpers/server.js';

const BUNDLED = path.join(ROOT, 'models');
const place = placeBundledModel;

/** The engine (two workers) over the models folder `root` (default: alpha and beta), and its repository. */
async function setup(t: Test, root?: string, graceMs = 200) {
  root ??= await twoModelsRoot('vitrine-repository-');
  const log = { info: () => {}, warn: () => {}, error: () => {} };
  const models = await discoverModels(root, log.warn);
  const inference = await startInference(models, { ...defaultServeConfig(), workers: 2, threads: 1, workerNice: 0 }, log);
  t.teardown(() => inference.close());
  const repo = new ModelRepository(root, inference.models, inference, log, graceMs);
  return { root, repo, batcher: inference.batcher };
}

const image = Float32Array.from({ length: 3 * 32 * 32 }, (_, i) => Math.sin(i / 7));

t.test('a reload every 300 ms under 16 clients: every answer is the version it was asked of', async (t) => {
  const { root, repo, batcher } = await setup(t);
  const logitsOf = async (name: string) => (await classifyAndExplain(batcher, repo.get(name)!, [image]))[0].result.logits;
  // what the two graphs answer for the image
  const vit = await logitsOf('alpha');
  const cct = await logitsOf('beta');
  t.ok(maxAbsDiff(Array.from(vit), Array.from(cct)) > 0.1, 'the two graphs answer differently');

  // odd versions hold the ViT's graph, even ones the compact model's
  const graphOf = (version: number) => (version % 2 === 1 ? vit : cct);
  let stop = false;
  let answered = 0;
  const wrong: string[] = [];
  const client = async () => {
    while (!stop) {
      const model = repo.get('alpha')!;
      const [c] = await classifyAndExplain(batcher, model, [image], { map: { method: 'rollout' } });
      const d = maxAbsDiff(Array.from(c.result.logits), Array.from(graphOf(model.version)));
      if (d > 1e-4) wrong.push(`version ${model.version}: logits ${d.toExponential(2)} from its graph's`);
      answered++;
    }
  };
  const clients = Array.from({ length: 16 }, client);
  for (let version = 2; version <= 8; version++) {
    await new Promise((r) => setTimeout(r, 300));
    await place(version % 2 === 1 ? 'vit-cifar10' : 'cct-cifar10', path.join(root, 'alpha'));
    const loaded = await repo.load('alpha');
    t.equal(loaded.version, version, `reload ${version - 1}: version ${version}`);
  }
  await new Promise((r) => setTimeout(r, 300));
  stop = true;
  await Promise.all(clients); // a failed request rejects here and fails the test
  t.same(wrong, [], 'no answer from another version');
  t.ok(answered > 100, `answered ${answered} requests during the reloads`);
  await repo.released();
  t.same(
    (await repo.index()).map((e) => [e.name, e.version, e.state]),
    [
      ['alpha', '8', 'READY'],
      ['beta', '1', 'READY'],
    ],
  );
});

t.test('a reload that fails leaves the old version serving and says why', async (t) => {
  const { root, repo, batcher } = await setup(t);
  const config = path.join(root, 'alpha', 'config.json');
  await writeFile(config, '{ "labels": ');
  await t.rejects(repo.load('alpha'), { statusCode: 400, message: /model 'alpha': version 2 did not load: .*config\.json/ });
  const still = repo.get('alpha')!;
  t.equal(still.version, 1, 'version 1 still serves');
  t.equal((await classifyAndExplain(batcher, still, [image]))[0].predictions.length, 5, 'and answers');
  const entry = (await repo.index()).find((e) => e.name === 'alpha')!;
  t.match(entry, { version: '1', state: 'READY', reason: /version 2 did not load: .*; version 1 serves/ });

  // a graph that does not load: refused the same way
  await writeFile(config, await readFile(path.join(BUNDLED, 'vit-cifar10', 'config.json')));
  await writeFile(path.join(root, 'alpha', 'onnx', 'model.onnx'), 'not a graph');
  await t.rejects(repo.load('alpha'), { statusCode: 400, message: /version 3 did not load: .*cannot be loaded/ });
  t.equal(repo.get('alpha')!.version, 1);

  // names that are not plain folder names are refused before anything is read
  for (const bad of ['../alpha', 'a/b', '.hidden', ''])
    await t.rejects(repo.load(bad), { statusCode: 400, message: /is not a model name/ }, `'${bad}' refused`);
  await t.rejects(repo.load('gamma'), { statusCode: 400, message: /no model folder gamma/ });
});

t.test('unload: new work is refused at once, the sessions go once the work is answered, and a load brings it back', async (t) => {
  const { repo, batcher } = await setup(t);
  const before = repo.get('beta')!;
  const inflight = classifyAndExplain(batcher, before, [image]);
  await repo.unload('beta');
  t.equal(repo.get('beta'), undefined, 'no longer served');
  t.equal(repo.whyNot('beta'), 'it is unloading');
  t.equal((await inflight)[0].predictions.length, 5, 'the work it had is answered');
  await repo.released();
  t.equal(repo.whyNot('beta'), 'unloaded');
  t.match(
    (await repo.index()).find((e) => e.name === 'beta'),
    { state: 'UNAVAILABLE', reason: 'unloaded' },
  );
  await t.rejects(repo.unload('beta'), { statusCode: 404, message: /model 'beta' is not loaded/ });
  const again = await repo.load('beta');
  t.equal(again.version, 2);
  t.equal((await classifyAndExplain(batcher, again, [image]))[0].predictions.length, 5, 'served again');
  t.same(
    repo.models.map((m) => m.name),
    ['alpha', 'beta'],
  );
});

t.test('20 unload and load cycles: the memory comes back (RSS within 160 MB of the first cycles)', async (t) => {
  // a model of 3.2M parameters (13 MB of weights a session, in each of 2 workers), so that a version
  // whose sessions stayed would grow the process by hundreds of MB over the cycles
  const root = await tmpDir('vitrine-repository-rss-');
  const config = { ...SEED_CONFIG, hidden_size: 256, intermediate_size: 1024, num_hidden_layers: 4, num_attention_heads: 4 };
  await exportModel(new ViT(config, 1), CIFAR10_CLASSES, path.join(root, 'big'));
  const { repo } = await setup(t, root, 0);
  const cycle = async () => {
    await repo.unload('big');
    await repo.load('big');
    await repo.released();
  };
  for (let i = 0; i < 3; i++) await cycle();
  const first = process.memoryUsage().rss;
  for (let i = 0; i < 20; i++) await cycle();
  const grown = (process.memoryUsage().rss - first) / 2 ** 20;
  t.ok(grown < 160, `RSS grew ${grown.toFixed(1)} MB over 20 cycles (${(first / 2 ** 20).toFixed(0)} MB after the first three)`);
  t.equal(repo.get('big')!.version, 24);
});
