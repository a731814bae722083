// Hugging Face checkpoints (weights under transformers' names, no ONNX) exported with
// `vitrine export --checkpoint <folder>` and served: logits, rollout and relevance maps are PyTorch's
// for the same images (test/fixtures/make-foreign-vits.py), the DeiT's distillation token left out of
// the maps, and the processor's stretch and resampling kept.

import path from 'node:path';
import { readFile } from 'node:fs/promises';
import t from 'tap';
import { exportCommand } from '../../bin/export.js';
import { ROOT } from '../helpers/cli.js';
import { tmpDir } from '../helpers/data.js';
import { testApp } from '../helpers/server.js';
import { assertServedAsPyTorch } from '../helpers/served.js';

const FOREIGN = path.join(ROOT, 'test', 'fixtures', 'foreign');
const root = await tmpDir('vitrine-hf-checkpoints-');
const said: string[] = [];
for (const name of ['hf-deit', 'hf-vit'])
  await exportCommand(['--checkpoint', path.join(FOREIGN, name), '--out', path.join(root, name)], (l) => said.push(l));

t.test('exported checkpoints serve PyTorch logits, rollout and relevance maps', async (t) => {
  t.match(said.join('\n'), /exported 24298 parameters from .*hf-deit \(DeiTForImageClassificationWithTeacher\)/);
  const config = JSON.parse(await readFile(path.join(root, 'hf-deit', 'config.json'), 'utf8'));
  t.equal(config.prefix_tokens, 2, 'the DeiT folder says two tokens come before the patches');
  t.equal(config.fit, 'fill', "the processor's stretch is kept");
  t.equal(config.model_type, 'deit');
  const app = await testApp(t, { models: root, defaultModel: 'hf-vit' });
  const listed = (await app.inject('/models')).json().models as { name: string; methods: string[] }[];
  t.same(
    listed.map((m) => [m.name, m.methods]),
    [
      ['hf-deit', ['rollout', 'cls', 'relevance', 'chefer', 'grad-input', 'combined']],
      ['hf-vit', ['rollout', 'cls', 'relevance', 'chefer', 'grad-input', 'combined']],
    ],
  );
  for (const name of ['hf-deit', 'hf-vit']) await assertServedAsPyTorch(t, app, name, path.join(FOREIGN, name));
});
