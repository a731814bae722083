// The in-process API as a user's program meets it: a fresh project that depends on vitrine (a `file:`
// dependency, as `npm install <path>` writes it) imports it by its package name, from JavaScript and,
// typechecked against the shipped declarations, from TypeScript. Its answers are the service's.

import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { ROOT } from '../helpers/cli.js';
import { maxAbsDiff } from '../helpers/opcheck.js';
import { testApp } from '../helpers/server.js';

const run = promisify(execFile);
const SHIP = path.join(ROOT, 'server', 'web', 'examples', 'ship.png');

// What the user's program prints: the answers of the API for the bundled models.
const PROGRAM = `
import { readFile } from 'node:fs/promises';
import { open } from 'vitrine';

const [models, ship] = process.argv.slice(2);
const vitrine = await open(models, { device: 'cpu' });
const out = { models: vitrine.models.map((m) => [m.name, m.methods]) };
const byPath = await vitrine.classify(ship, { model: 'cct-cifar10', topk: 3, map: { method: 'relevance' } });
const bytes = await vitrine.classify(await readFile(ship), { model: 'cct-cifar10', topk: 3, map: { method: 'relevance' } });
const png = await byPath.heatmap({ size: 64 });
out.classified = { predictions: byPath.predictions, logits: Array.from(byPath.logits), map: byPath.map };
out.sameFromBytes = JSON.stringify(bytes.map) === JSON.stringify(byPath.map) && bytes.predictions[0].label === byPath.predictions[0].label;
out.heatmap = { signature: png.subarray(1, 4).toString('latin1'), width: png.readUInt32BE(16) };
const flat = await vitrine.classify(await readFile(ship), { model: 'vit-cifar10', map: { method: 'cls', layer: 2, head: '1' } });
out.cls = flat.map;
const errors = [];
for (const bad of [
  () => vitrine.classify(new Float32Array(7), { model: 'vit-cifar10' }),
  () => vitrine.classify(ship, { model: 'no-such-model' }),
  () => vitrine.classify(Buffer.from('not an image'), { model: 'vit-cifar10' }),
  () => vitrine.classify(ship, { model: 'vit-cifar10', map: { method: 'rollout', layer: 1 } }),
]) errors.push(await bad().then(() => 'answered', (err) => err.message));
out.errors = errors;
await vitrine.close();
console.log(JSON.stringify(out));
`;

// The same calls, typechecked: the package ships its declarations.
const TYPED = `
import { type Classification, open } from 'vitrine';
const vitrine = await open('models', { device: 'cpu', workers: 1 });
const c: Classification = await vitrine.classify(new Float32Array(3 * 32 * 32), { topk: 2, map: { method: 'chefer', class: 'cat' } });
const top: string = c.predictions[0].label;
const png: Buffer | undefined = await c.heatmap?.({ colormap: 'viridis' });
// @ts-expect-error: a map method the API does not know
await vitrine.classify('x.png', { map: { method: 'saliency' } });
console.log(top, png?.length);
await vitrine.close();
`;

t.test("import { open } from 'vitrine' in a fresh project: classify, maps and heatmaps in-process", async (t) => {
  const project = await mkdtemp(path.join(os.tmpdir(), 'vitrine-user-'));
  t.teardown(() => rm(project, { recursive: true, force: true }));
  const pkg = { name: 'user-program', private: true, type: 'module', dependencies: { vitrine: `file:${ROOT}` } };
  await writeFile(path.join(project, 'package.json'), JSON.stringify(pkg, null, 2));
  await run('npm', ['install', '--offline', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: project });
  await writeFile(path.join(project, 'main.mjs'), PROGRAM);
  const { stdout } = await run(process.execPath, ['main.mjs', path.join(ROOT, 'models'), SHIP], { cwd: project });
  const out = JSON.parse(stdout);

  t.same(
    out.models.map((m: [string, string[]]) => m[0]),
    ['cct-cifar10', 'vit-cifar10'],
    'the models folder: both bundled models',
  );
  const c = out.classified;
  t.equal(c.predictions.length, 3, 'topk 3');
  t.equal(c.predictions[0].label, 'ship', 'the ship is a ship');
  t.same(c.map.grid, [8, 8]);
  t.equal(c.map.method, 'relevance');
  t.equal(c.map.made.class, 'ship', 'the map explains the top prediction');
  t.ok(out.sameFromBytes, 'bytes and a path give the same answer');
  t.same(out.heatmap, { signature: 'PNG', width: 64 }, 'a PNG heatmap of the asked size');
  t.same(out.cls.made, { layer: 2, head: '1', discard: 0 });
  t.same(out.errors.length, 4);
  t.match(out.errors[0], /has 3072 values \(CHW\), got 7/);
  t.match(out.errors[1], /no model 'no-such-model' \(models: cct-cifar10, vit-cifar10\)/);
  t.match(out.errors[2], /not an image|unsupported|decode/i);
  t.match(out.errors[3], /layer applies to method=cls only/);

  // the service, on the same models, answers the same
  const app = await testApp(t, { models: path.join(ROOT, 'models'), defaultModel: 'cct-cifar10' });
  const r = await app.inject({
    method: 'POST',
    url: '/classify?attention=relevance&topk=3',
    payload: await readFile(SHIP),
    headers: { 'content-type': 'image/png' },
  });
  const served = r.json();
  t.ok(maxAbsDiff(served.logits, c.logits) <= 1e-5, "the service's logits");
  t.same(
    served.predictions.map((p: { label: string }) => p.label),
    c.predictions.map((p: { label: string }) => p.label),
  );
  t.ok(maxAbsDiff(served.attention.values.flat(), c.map.values.flat()) <= 1e-5, "the service's relevance map");

  await writeFile(path.join(project, 'typed.ts'), TYPED);
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  const types = path.join(ROOT, 'node_modules', '@types');
  const flags = [
    '--noEmit',
    '--strict',
    '--module',
    'nodenext',
    '--target',
    'es2022',
    '--skipLibCheck',
    '--typeRoots',
    types,
    '--types',
    'node',
  ];
  const typed = await run(process.execPath, [tsc, ...flags, 'typed.ts'], { cwd: project }).then(
    () => 'ok',
    (err) => `${err.stdout}`,
  );
  t.equal(typed, 'ok', "a TypeScript program typechecks against vitrine's declarations");
});
