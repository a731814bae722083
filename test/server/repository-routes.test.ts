// The Open Inference Protocol's repository extension through the service (--model-control explicit):
// the index, load, reload and unload; what /classify, /v2 and GET /attention answer across them; the
// admin token and the name checks; and a reload every second under 16 clients with every answer 200
// and from its own version.

import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import type { FastifyInstance } from 'fastify';
import { ROOT } from '../helpers/cli.js';
import { maxAbsDiff } from '../helpers/opcheck.js';
import { placeBundledModel, testApp, twoModelsRoot } from '../helpers/server.js';

const SHIP = path.join(ROOT, 'server', 'web', 'examples', 'ship.png');
const place = placeBundledModel;
const modelsRoot = () => twoModelsRoot('vitrine-repository-routes-');

const post = (app: FastifyInstance, url: string, headers: Record<string, string> = {}) => app.inject({ method: 'POST', url, headers });
const classify = async (app: FastifyInstance, query: string) =>
  app.inject({ method: 'POST', url: `/classify?${query}`, payload: await readFile(SHIP), headers: { 'content-type': 'image/png' } });

t.test('explicit mode: index, unload, load and a failed reload, as /classify and /v2 see them', async (t) => {
  const root = await modelsRoot();
  const app = await testApp(t, { models: root, defaultModel: 'alpha', modelControl: 'explicit' });
  t.match((await app.inject('/v2')).json().extensions, ['binary_tensor_data', 'classification', 'model_repository']);
  const index = await post(app, '/v2/repository/index');
  t.equal(index.statusCode, 200);
  t.same(index.json(), [
    { name: 'alpha', version: '1', state: 'READY', reason: '' },
    { name: 'beta', version: '1', state: 'READY', reason: '' },
  ]);

  t.equal((await post(app, '/v2/repository/models/beta/unload')).statusCode, 200);
  const gone = await classify(app, 'model=beta');
  t.equal(gone.statusCode, 404);
  t.match(gone.json().message, /model 'beta' is not served: it is unloading|unloaded/);
  const v2gone = await app.inject('/v2/models/beta');
  t.equal(v2gone.statusCode, 404);
  t.match(v2gone.json(), { error: /model 'beta' is not served: / });
  t.same(
    (await app.inject('/models')).json().models.map((m: { name: string }) => m.name),
    ['alpha'],
    '/models lists what serves',
  );

  t.equal((await post(app, '/v2/repository/models/beta/load')).statusCode, 200);
  const back = await classify(app, 'model=beta');
  t.equal(back.statusCode, 200);
  t.equal(back.json().model_version, '2', 'the answer names its version');
  t.equal((await app.inject('/v2/models/beta/versions/2')).statusCode, 200);
  t.equal((await app.inject('/v2/models/beta/versions/1')).statusCode, 404, 'the old version is not served');

  // a reload of a broken folder: refused with the reason, the old version serving
  await writeFile(path.join(root, 'alpha', 'config.json'), '{');
  const broken = await post(app, '/v2/repository/models/alpha/load');
  t.equal(broken.statusCode, 400);
  t.match(broken.json(), { error: /model 'alpha': version 2 did not load: .*config\.json/ });
  t.equal((await classify(app, 'model=alpha')).json().model_version, '1');
  t.match((await post(app, '/v2/repository/index')).json()[0], { name: 'alpha', version: '1', state: 'READY', reason: /did not load/ });

  const metrics = (await app.inject('/metrics')).body;
  t.match(metrics, /vitrine_model_version\{model="beta"\} 2/, 'metrics: the version serving');
  t.match(metrics, /vitrine_model_version\{model="alpha"\} 1/);
  for (const [model, result] of [
    ['beta', 'unloaded'],
    ['beta', 'loaded'],
    ['alpha', 'failed'],
  ])
    t.match(metrics, new RegExp(`vitrine_model_loads_total\\{model="${model}",result="${result}"\\} 1`), `metrics: ${model} ${result}`);

  // names that are not folders under --models
  for (const bad of ['a%2Fb', '.x', '..x'])
    t.match((await post(app, `/v2/repository/models/${bad}/load`)).json(), { error: /is not a model name/ }, `${bad} refused`);
  // '..' as a path segment is resolved by the router before any route sees it
  t.equal((await post(app, '/v2/repository/models/%2E%2E/load')).statusCode, 404);
  const unknown = await post(app, '/v2/repository/models/gamma/unload');
  t.equal(unknown.statusCode, 404);
  t.match(unknown.json(), { error: /model 'gamma' is not loaded/ });
});

t.test('a kept result across a reload: 410 from other files, its map again from the same files', async (t) => {
  const root = await modelsRoot();
  const app = await testApp(t, { models: root, defaultModel: 'alpha', modelControl: 'explicit', timeoutMs: 200 });
  const first = (await classify(app, 'attention=rollout')).json();
  const map = await app.inject(`/attention/${first.id}?format=json`);
  t.equal(map.statusCode, 200);

  await place('cct-cifar10', path.join(root, 'alpha'));
  t.equal((await post(app, '/v2/repository/models/alpha/load')).statusCode, 200);
  const gone = await app.inject(`/attention/${first.id}?format=json`);
  t.equal(gone.statusCode, 410);
  t.match(gone.json(), {
    code: 'VIT_RESULT_GONE',
    message: /classified by version 1 of model alpha, which is not served any more \(version 2 is\)/,
  });

  await place('vit-cifar10', path.join(root, 'alpha'));
  t.equal((await post(app, '/v2/repository/models/alpha/load')).statusCode, 200);
  const again = await app.inject(`/attention/${first.id}?format=json`);
  t.equal(again.statusCode, 200, 'version 3 has version 1 files');
  t.same(again.json().values, map.json().values, 'the same map');
});

t.test('the repository routes: a token when one is set, only this machine without; absent in mode none', async (t) => {
  const root = await modelsRoot();
  const guarded = await testApp(t, { models: root, modelControl: 'explicit', adminToken: 'secret-token' });
  t.equal((await post(guarded, '/v2/repository/index')).statusCode, 401);
  t.equal((await post(guarded, '/v2/repository/index', { authorization: 'Bearer wrong' })).statusCode, 401);
  t.match((await post(guarded, '/v2/repository/index')).json(), { error: /need Authorization: Bearer/ });
  t.equal((await post(guarded, '/v2/repository/index', { authorization: 'Bearer secret-token' })).statusCode, 200);

  const local = await testApp(t, { models: root, modelControl: 'explicit' });
  const remote = await local.inject({ method: 'POST', url: '/v2/repository/index', remoteAddress: '10.1.2.3' });
  t.equal(remote.statusCode, 403);
  t.match(remote.json(), { error: /answer only this machine without --admin-token/ });

  const none = await testApp(t, { models: root });
  t.equal((await post(none, '/v2/repository/index')).statusCode, 404, 'no repository routes in mode none');
  t.notMatch((await none.inject('/v2')).json().extensions, ['model_repository']);
});

t.test('a reload every second under 16 clients: every answer 200 and from its own version', async (t) => {
  const root = await modelsRoot();
  const app = await testApp(t, { models: root, defaultModel: 'alpha', modelControl: 'explicit', workers: 2, timeoutMs: 2000 });
  const logitsOf = async (model: string) => (await classify(app, `model=${model}`)).json().logits as number[];
  const graphs = { odd: await logitsOf('alpha'), even: await logitsOf('beta') }; // ViT files, then the compact model's
  let stop = false;
  const answers: { status: number; version: string; logits: number[] }[] = [];
  const client = async () => {
    while (!stop) {
      const r = await classify(app, 'model=alpha');
      const body = r.json();
      answers.push({ status: r.statusCode, version: body.model_version, logits: body.logits });
    }
  };
  const clients = Array.from({ length: 16 }, client);
  for (let version = 2; version <= 6; version++) {
    await new Promise((r) => setTimeout(r, 1000));
    await place(version % 2 === 1 ? 'vit-cifar10' : 'cct-cifar10', path.join(root, 'alpha'));
    t.equal((await post(app, '/v2/repository/models/alpha/load')).statusCode, 200, `reload to version ${version}`);
  }
  await new Promise((r) => setTimeout(r, 1000));
  stop = true;
  await Promise.all(clients);
  t.same(
    answers.filter((a) => a.status !== 200),
    [],
    'every answer 200',
  );
  const wrong = answers.filter((a) => maxAbsDiff(a.logits, Number(a.version) % 2 === 1 ? graphs.odd : graphs.even) > 1e-4);
  t.same(
    wrong.map((a) => a.version),
    [],
    'every answer from the graph of the version it names',
  );
  t.ok(new Set(answers.map((a) => a.version)).size >= 5, 'answers came from each version');
  t.ok(answers.length > 200, `${answers.length} answers`);
});

t.test('poll mode: a folder copied in is served, a changed one reloads, a removed one goes', async (t) => {
  const root = await modelsRoot();
  const app = await testApp(t, { models: root, defaultModel: 'alpha', modelControl: 'poll', pollInterval: 1, timeoutMs: 500 });
  const state = async (name: string) => (await post(app, '/v2/repository/index')).json().find((e: { name: string }) => e.name === name);
  const until = async (what: string, ok: () => Promise<boolean>) => {
    const end = Date.now() + 15_000;
    while (!(await ok())) {
      if (Date.now() > end) throw new Error(`not within 15 s: ${what}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };

  await place('cct-cifar10', path.join(root, 'gamma'));
  await until('gamma serves', async () => (await classify(app, 'model=gamma')).statusCode === 200);
  t.match(await state('gamma'), { version: '1', state: 'READY' });

  await place('vit-cifar10', path.join(root, 'gamma'));
  await until('gamma reloads', async () => (await classify(app, 'model=gamma')).json().model_version === '2');
  t.equal((await classify(app, 'model=gamma')).json().logits.length, 10);

  // a folder that does not load is refused once, with the reason, and not tried again until it changes
  await writeFile(path.join(root, 'gamma', 'config.json'), '{');
  await until('the broken reload is refused', async () => /did not load/.test((await state('gamma')).reason));
  t.match(await state('gamma'), { version: '2', state: 'READY' }, 'version 2 still serves');

  await rm(path.join(root, 'gamma'), { recursive: true });
  await until('gamma goes', async () => (await classify(app, 'model=gamma')).statusCode === 404);
  t.match((await classify(app, 'model=gamma')).json().message, /model 'gamma' is not served: it is unloading|unloaded/);
  t.equal((await classify(app, 'model=alpha')).statusCode, 200, 'the others serve throughout');
});
