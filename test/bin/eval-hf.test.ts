// vitrine eval on a Hugging Face-layout folder: its processor (stretch, kernel, rescale) is honoured,
// as the service honours it (test/image-pipeline.test.ts checks the tensors bit for bit).

import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { ROOT, runCli } from '../helpers/cli.js';
import { tmpDir } from '../helpers/data.js';
import { testImage } from '../helpers/server.js';

t.test('eval runs a model whose processor rescales other than x/255', async (t) => {
  const dir = path.join(await tmpDir(), 'hf');
  await cp(path.join(ROOT, 'test', 'fixtures', 'hf-vit'), dir, { recursive: true });
  const file = path.join(dir, 'preprocessor_config.json');
  await writeFile(file, JSON.stringify({ ...JSON.parse(await readFile(file, 'utf8')), do_rescale: false }));
  const data = path.join(await tmpDir(), 'images');
  for (const [label, size] of [['apple', 24], ['boat', 100]] as const) {
    await mkdir(path.join(data, label), { recursive: true });
    await writeFile(path.join(data, label, 'x.png'), await testImage('png', size));
  }
  const r = await runCli(['eval', '--model', dir, '--data', data, '--json']);
  t.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
  t.equal(out.images, 2);
  t.ok(out.accuracy >= 0 && out.accuracy <= 1 && Number.isFinite(out.loss), `accuracy ${out.accuracy}, loss ${out.loss}`);
  t.same(Object.keys(out.per_class), ['apple', 'boat', 'cloud', 'door', 'eagle']);
});
