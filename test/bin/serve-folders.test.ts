// vitrine serve <model folder>…, and the bundled models found wherever a command runs: a run's
// model/ served under the run's name (or --name), beside --models or alone; two folders of one name,
// and a folder that is no model, refused in one line; predict by a bundled model's name from another
// folder, a missing input reported as such; a mistyped flag gets one line with the flag meant.

import { cp, mkdir } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { BUILT_CLI, ROOT, assertOneLineError, runCli, serveOnFreePort } from '../helpers/cli.js';
import { tmpDir } from '../helpers/data.js';
import { closest } from '../../runtime/args.js';
import { nodeVersionProblem } from '../../bin/node-check.js';
import { servedNameOf } from '../../runtime/model-config.js';

const listed = async (base: string) => (await (await fetch(`${base}/models`)).json()) as { default: string; models: { name: string }[] };

async function aRun(dir: string, name: string): Promise<string> {
  const model = path.join(dir, 'runs', name, 'model');
  await mkdir(path.dirname(model), { recursive: true });
  await cp(path.join(ROOT, 'models', 'vit-cifar10'), model, { recursive: true });
  return model;
}

t.test("a run's model/ is served under the run's name, alone or beside --models", async (t) => {
  const dir = await tmpDir();
  const model = await aRun(dir, 'cats');
  const alone = await serveOnFreePort([path.relative(dir, model)], { cwd: dir });
  t.teardown(() => alone.child.kill('SIGTERM'));
  const a = await listed(alone.base);
  t.same(
    a.models.map((m) => m.name),
    ['cats'],
  );
  t.equal(a.default, 'cats', 'the folder given is the default');
  alone.child.kill('SIGTERM');
  await alone.exited;

  const beside = await serveOnFreePort([model, '--name', 'kittens', '--models', path.join(ROOT, 'models')], { cwd: dir });
  t.teardown(() => beside.child.kill('SIGTERM'));
  const b = await listed(beside.base);
  t.same(
    b.models.map((m) => m.name),
    ['cct-cifar10', 'kittens', 'vit-cifar10'],
    '--name names it; --models serves the folder of folders beside it',
  );
  t.equal(b.default, 'kittens');
  beside.child.kill('SIGTERM');
  await beside.exited;
});

t.test('with no folder and no ./models, the bundled models are served wherever the command runs', async (t) => {
  const dir = await tmpDir();
  const served = await serveOnFreePort([], { cwd: dir });
  t.teardown(() => served.child.kill('SIGTERM'));
  const m = await listed(served.base);
  t.same(
    m.models.map((x) => x.name),
    ['cct-cifar10', 'vit-cifar10'],
  );
  t.equal(m.default, 'cct-cifar10');
  served.child.kill('SIGTERM');
  await served.exited;
});

t.test('folders that cannot be served are refused in one line', async (t) => {
  const dir = await tmpDir();
  const one = await aRun(dir, 'x');
  const other = path.join(dir, 'elsewhere', 'x', 'model');
  await cp(one, other, { recursive: true });
  const node = (args: string[]) => runCli(['serve', '--port', '0', '--host', '127.0.0.1', ...args], { built: true });
  let r = await node([one, other]);
  t.equal(r.code, 1);
  assertOneLineError(t, r.stderr, /two model folders would be served as 'x' .*name one, as NAME=DIR/);
  r = await node([path.join(dir, 'nothing')]);
  t.equal(r.code, 1);
  assertOneLineError(t, r.stderr, /nothing \(model 'nothing'\) is not a model folder: it needs config\.json/);
  r = await node([one, other, '--name', 'y']);
  t.equal(r.code, 2);
  assertOneLineError(t, r.stderr, /--name names one model folder; with 2 given, name each as NAME=DIR/);
  r = await node(['--prot', '9']);
  t.equal(r.code, 2);
  assertOneLineError(
    t,
    r.stderr,
    /^vitrine serve: unknown flag --prot \(did you mean --port\?\) \('vitrine serve --help' lists the flags\)$/,
  );
});

t.test('predict finds the bundled model from any folder, and says first that an input is missing', async (t) => {
  const dir = await tmpDir();
  const ship = path.join(ROOT, 'server', 'web', 'examples', 'ship.png');
  const run = (args: string[]) => runCli(['predict', ...args], { built: true, cwd: dir });
  let r = await run(['nothere.png']);
  t.equal(r.code, 1);
  assertOneLineError(t, r.stderr, /^vitrine predict: nothere\.png: no such file or folder$/);
  r = await run([ship, '--out', 'out']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stderr, /model cct-cifar10 \(10 classes\)/, 'the default model, found from the package');
  r = await run([ship, '--model', 'vit-cifar10', '--out', 'out2']);
  t.equal(r.code, 0, r.stderr);
  r = await run([ship, '--model', 'nope', '--out', 'out3']);
  assertOneLineError(t, r.stderr, /no model 'nope': not a model folder, nor a model under .*models \(cct-cifar10, vit-cifar10\)/);
  const model = await aRun(dir, 'dogs');
  r = await run([ship, '--model', model, '--out', 'out4']);
  t.match(r.stderr, /model dogs \(10 classes\)/, "a run's model/ goes by the run's name");
});

t.test('names, suggestions and the Node.js check', async (t) => {
  t.equal(servedNameOf('runs/cats/model'), 'cats');
  t.equal(servedNameOf('models/mine'), 'mine');
  t.equal(servedNameOf('/tmp/my photos v2/model'), 'my-photos-v2');
  t.equal(closest('epoch', ['epochs', 'lr', 'out']), 'epochs');
  t.equal(closest('prot', ['port', 'host']), 'port');
  t.equal(closest('max-bach', ['max-batch', 'max-queue']), 'max-batch');
  t.equal(closest('zzz', ['port', 'host']), null, 'nothing near: no suggestion');
  t.match(nodeVersionProblem('20.19.0'), /Node\.js 22 or 24 is needed .* this is v20\.19\.0, past its end of life: install 24/);
  t.equal(nodeVersionProblem('22.12.0'), null);
  t.equal(nodeVersionProblem('24.1.0'), null);
  t.ok(BUILT_CLI.endsWith('vitrine.js'));
});
