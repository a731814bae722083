// Models vitrine never built, imported with `vitrine import` and served: their logits are PyTorch's and
// GET /attention/:id draws the rollout and the relevance maps PyTorch computes for them
// (test/fixtures/make-foreign-vits.py), for torch.onnx exports at opsets 14 and 17 and a DeiT whose
// distillation token is left out of the maps. A folder whose config names outputs its graph lacks is
// skipped, and the others are served.

import { cp, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { importCommand } from '../../bin/import.js';
import { refuseLargeFull } from '../../server/http/routes/classify.js';
import { ROOT } from '../helpers/cli.js';
import { tmpDir } from '../helpers/data.js';
import { testApp } from '../helpers/server.js';
import { assertServedAsPyTorch } from '../helpers/served.js';

const FOREIGN = path.join(ROOT, 'test', 'fixtures', 'foreign');
const MODELS = ['hf-deit', 'tv-o14', 'tv-o17']; // served in name order

const root = await tmpDir('vitrine-imported-');
for (const name of MODELS) await importCommand([path.join(FOREIGN, name), '--out', path.join(root, name)], () => {});
// A folder whose config.json names an output the graph does not have.
await cp(path.join(root, 'tv-o17'), path.join(root, 'wrong-names'), { recursive: true });
const wrong = JSON.parse(await readFile(path.join(root, 'wrong-names', 'config.json'), 'utf8'));
await writeFile(path.join(root, 'wrong-names', 'config.json'), JSON.stringify({ ...wrong, logits_output: 'scores' }));

t.test('imported models are served with PyTorch logits, rollout and relevance maps', async (t) => {
  const lines: string[] = [];
  const app = await testApp(
    t,
    { models: root, defaultModel: 'tv-o17', logLevel: 'warn' },
    { logger: { level: 'warn', stream: { write: (l: string) => lines.push(l) } } },
  );
  const listed = (await app.inject('/models')).json().models as { name: string; methods: string[]; grid: number[] }[];
  t.same(
    listed.map((m) => m.name),
    MODELS,
    'the folder with wrong names is skipped, the others served',
  );
  const skipped = lines.map((l) => JSON.parse(l).msg as string).find((m) => m.includes('wrong-names'));
  t.match(
    skipped,
    new RegExp(
      /skipping model wrong-names: .*has no input or output named 'scores' \(config.json names /.source +
        /them; the graph's inputs are 'pixel_values' and its outputs 'logits', 'attentions.0', /.source +
        /'attentions.1', 'attention_rollout'\)/.source,
    ),
  );
  for (const m of listed) t.same(m.methods, ['rollout', 'cls', 'relevance', 'chefer', 'grad-input', 'combined'], `${m.name}: every method`);

  for (const name of MODELS) await assertServedAsPyTorch(t, app, name, path.join(FOREIGN, name));
});

t.test("attention=full is refused past what a response carries, saying what to ask for (a ViT-B/16's 12 x 12 x 197 x 197)", async (t) => {
  t.doesNotThrow(() => refuseLargeFull(4, 4, 65), 'the seed ViT sends its attentions whole');
  t.throws(
    () => refuseLargeFull(12, 12, 197),
    new RegExp(
      /attention=full would carry 12 layers x 12 heads x 197 x 197 tokens = 5,588,496 /.source +
        /values \(about 50 MB of JSON\), more than the 1,000,000 a response carries: ask for /.source +
        /attention=rollout, cls or relevance/.source,
    ),
  );
});
