// Model folders whose config.json contradicts their graph, or asks for absurd sizes, are refused at
// load with the reason while the others are served (a 50,000 px image_size on a 32 px graph once grew
// the process to 7 GB on the first request and aborted it with every other model).

import { cp, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { tmpDir } from '../helpers/data.js';
import { multipart, testApp, testImage, testModels } from '../helpers/server.js';

/** A copy of the test model under `name` with config.json's keys changed. */
async function variant(root: string, name: string, change: Record<string, unknown>): Promise<void> {
  const from = path.join(await testModels(), 'vit-cifar10');
  await cp(from, path.join(root, name), { recursive: true });
  const file = path.join(root, name, 'config.json');
  await writeFile(file, JSON.stringify({ ...JSON.parse(await readFile(file, 'utf8')), ...change }));
}

t.test('configs that contradict their graph or ask for absurd sizes are refused; the others serve', async (t) => {
  const root = await tmpDir('vitrine-folders-');
  await variant(root, 'good', {});
  await variant(root, 'huge-size', { image_size: [50000, 50000] });
  await variant(root, 'wrong-size', { image_size: [64, 64] });
  await variant(root, 'long-mean', { mean: new Array(1_000_000).fill(0.5), std: new Array(1_000_000).fill(0.5) });
  await variant(root, 'grey', { mean: [0.5], std: [0.5] });
  await variant(root, 'more-labels', { labels: Array.from({ length: 11 }, (_, i) => `c${i}`) });
  await variant(root, 'many-labels', { labels: Array.from({ length: 1_000_000 }, (_, i) => `c${i}`) });
  const lines: string[] = [];
  const app = await testApp(
    t,
    { models: root, defaultModel: 'good', logLevel: 'warn' },
    { logger: { level: 'warn', stream: { write: (l: string) => lines.push(JSON.parse(l).msg) } } },
  );
  const served = ((await app.inject('/models')).json().models as { name: string }[]).map((m) => m.name);
  t.same(served, ['good'], 'only the folder whose config fits its graph');
  const said = lines.join('\n');
  t.match(said, /skipping model huge-size: .*image_size.*at most 4096/);
  t.match(
    said,
    new RegExp(
      /skipping model wrong-size: model wrong-size: config\.json gives height 64 \(image_size\), /.source +
        /but .*model\.onnx takes 'pixel_values' of height 32 \(\[batch, 3, 32, 32\]\)/.source,
    ),
  );
  t.match(said, /skipping model long-mean: .*mean.*at most 4/);
  t.match(said, /skipping model grey: model grey: config\.json gives channels 1 \(one mean and std per channel\), but .* of channels 3/);
  t.match(
    said,
    new RegExp(
      /skipping model more-labels: model more-labels: config\.json names 11 labels, /.source +
        /but .*model\.onnx gives 10 logits \('logits' \[batch, 10\]\)/.source,
    ),
  );
  t.match(said, /skipping model many-labels: .*labels.*at most 100,000/);
  const r = await app.inject({ method: 'POST', url: '/classify', ...multipart('image', await testImage()) });
  t.equal(r.statusCode, 200, 'the good model answers');
  t.equal(
    (await app.inject({ method: 'POST', url: '/classify?model=huge-size', ...multipart('image', await testImage()) })).statusCode,
    404,
    'a refused model is not served',
  );
});
