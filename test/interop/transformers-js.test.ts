// transformers.js (the real @huggingface/transformers, local files only) runs vitrine's model folders
// as they are: a fresh export and each bundled model give the same top-5 labels and probabilities
// (within 1e-4; the worst difference over all ten is reported) as POST /classify, on the ten
// CIFAR-10 test images of the web page's examples.

import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import t, { type Test } from 'tap';
import { env, pipeline } from '@huggingface/transformers';
import { buildApp } from '../../server/http/app.js';
import { defaultServeConfig } from '../../server/config.js';
import { ROOT } from '../helpers/cli.js';
import { multipart, testModels } from '../helpers/server.js';
import { maxAbsDiff } from '../helpers/opcheck.js';

env.allowRemoteModels = false;
env.useBrowserCache = false;
env.useFSCache = false;

const examples = path.join(ROOT, 'server', 'web', 'examples');
const bundled = path.join(ROOT, 'models');

type Top = { label: string; score: number }[];

async function compare(t: Test, models: string, name: string) {
  const app = await buildApp(
    { ...defaultServeConfig(), models, defaultModel: name, workers: 1, threads: 1, logLevel: 'silent' },
    { logger: false },
  );
  t.teardown(() => app.close());
  env.localModelPath = models + path.sep;
  const classifier = await pipeline('image-classification', name, { local_files_only: true, dtype: 'fp32', device: 'cpu' });
  t.teardown(() => classifier.dispose());
  const files = (await readdir(examples)).filter((f) => f.endsWith('.png'));
  t.equal(files.length, 10, 'the ten examples');
  let worstOfAll = 0;
  for (const file of files) {
    const image = path.join(examples, file);
    const hf = (await classifier(image, { top_k: 5 })) as Top;
    const r = await app.inject({ method: 'POST', url: `/classify?model=${name}&topk=5`, ...multipart('image', await readFile(image)) });
    t.equal(r.statusCode, 200, r.statusCode === 200 ? 'answered' : r.body);
    const ours = r.json().predictions as { label: string; probability: number }[];
    t.same(
      hf.map((p) => p.label),
      ours.map((p) => p.label),
      `${name}, ${file}: the same top-5 labels`,
    );
    const worst = maxAbsDiff(
      hf.map((p) => p.score),
      ours.map((o) => o.probability),
    );
    t.ok(worst < 1e-4, `${name}, ${file}: probabilities within 1e-4 (worst ${worst.toExponential(2)})`);
    worstOfAll = Math.max(worstOfAll, worst);
  }
  t.ok(worstOfAll < 1e-4, `${name}: the worst probability difference over the ten examples is ${worstOfAll.toExponential(2)}`);
}

t.test('a fresh export runs in transformers.js unchanged and agrees with /classify', async (t) => {
  await compare(t, await testModels(), 'vit-cifar10');
});

for (const name of (await readdir(bundled, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name)) {
  t.test(`the bundled ${name} runs in transformers.js unchanged and agrees with /classify`, async (t) => {
    await compare(t, bundled, name);
  });
}

t.test('Hugging Face ViT and DeiT checkpoints exported by vitrine run in transformers.js and agree with /classify', async (t) => {
  const { exportCommand } = await import('../../bin/export.js');
  const { tmpDir } = await import('../helpers/data.js');
  const models = await tmpDir('vitrine-hf-export-');
  for (const name of ['hf-deit', 'hf-vit'])
    await exportCommand(['--checkpoint', path.join(ROOT, 'test', 'fixtures', 'foreign', name), '--out', path.join(models, name)], () => {});
  for (const name of ['hf-deit', 'hf-vit']) await t.test(name, (t) => compare(t, models, name));
});
