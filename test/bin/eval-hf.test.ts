// vitrine eval on a Hugging Face-layout folder: its processor (stretch, kernel, rescale) is honoured,
// as the service honours it (test/image-pipeline.test.ts checks the tensors bit for bit).

import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { ROOT, runCli } from '../helpers/cli.js';
import { tmpDir } from '../helpers/data.js';
import { multipart, testApp, testImage } from '../helpers/server.js';

t.test('eval runs a model whose processor rescales other than x/255', async (t) => {
  const dir = path.join(await tmpDir(), 'hf');
  await cp(path.join(ROOT, 'test', 'fixtures', 'hf-vit'), dir, { recursive: true });
  const file = path.join(dir, 'preprocessor_config.json');
  await writeFile(file, JSON.stringify({ ...JSON.parse(await readFile(file, 'utf8')), do_rescale: false }));
  // What the service predicts for two images (its pipeline is eval's): the first goes into the folder
  // of its predicted class, the second into another, so eval must count one of two.
  const app = await testApp(t, { models: path.dirname(dir), defaultModel: 'hf' });
  const predicted: string[] = [];
  for (const size of [24, 100]) {
    const r = await app.inject({ method: 'POST', url: '/classify', ...multipart('image', await testImage('png', size)) });
    t.equal(r.statusCode, 200, r.body);
    predicted.push(r.json().predictions[0].label);
  }
  const labels = ['apple', 'boat', 'cloud', 'door', 'eagle'];
  const folders = [predicted[0], labels.find((l) => l !== predicted[1] && l !== predicted[0])!];
  const data = path.join(await tmpDir(), 'images');
  for (const [k, size] of [24, 100].entries()) {
    await mkdir(path.join(data, folders[k]), { recursive: true });
    await writeFile(path.join(data, folders[k], 'x.png'), await testImage('png', size));
  }
  const r = await runCli(['eval', '--model', dir, '--data', data, '--json']);
  t.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
  t.equal(out.images, 2);
  t.ok(Number.isFinite(out.loss), `loss ${out.loss}`);
  t.equal(out.accuracy, 0.5, 'one of the two right: the one filed under the class /classify predicts');
  t.same(Object.keys(out.per_class), ['apple', 'boat', 'cloud', 'door', 'eagle']);
});
