// Models vitrine never built, imported with `vitrine import` and served: their logits are PyTorch's and
// GET /attention/:id draws the rollout and the relevance maps PyTorch computes for them
// (test/fixtures/make-foreign-vits.py), for torch.onnx exports at opsets 14 and 17 and a DeiT whose
// distillation token is left out of the maps. A folder whose config names outputs its graph lacks is
// skipped, and the others are served.

import { cp, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import t from 'tap';
import { importCommand } from '../../bin/import.js';
import { refuseLargeFull } from '../../server/routes/classify.js';
import { readSafetensors } from '../../trainer/io/safetensors.js';
import { ROOT } from '../helpers/cli.js';
import { tmpDir } from '../helpers/data.js';
import { multipart, testApp } from '../helpers/server.js';

const FOREIGN = path.join(ROOT, 'test', 'fixtures', 'foreign');
const MODELS = ['hf-deit', 'tv-o14', 'tv-o17']; // served in name order

const root = await tmpDir('vitrine-imported-');
for (const name of MODELS) await importCommand([path.join(FOREIGN, name), '--out', path.join(root, name)], () => {});
// A folder whose config.json names an output the graph does not have.
await cp(path.join(root, 'tv-o17'), path.join(root, 'wrong-names'), { recursive: true });
const wrong = JSON.parse(await readFile(path.join(root, 'wrong-names', 'config.json'), 'utf8'));
await writeFile(path.join(root, 'wrong-names', 'config.json'), JSON.stringify({ ...wrong, logits_output: 'scores' }));

/** Values scaled to a maximum of 1, as the service's grids are. */
const scaled = (v: ArrayLike<number>) => {
  const max = Math.max(...Array.from(v));
  return Array.from(v, (x) => x / max);
};
const worst = (a: number[], b: number[]) => Math.max(...a.map((x, i) => Math.abs(x - b[i])));

t.test('imported models are served with PyTorch logits, rollout and relevance maps', async (t) => {
  const lines: string[] = [];
  const app = await testApp(t, { models: root, defaultModel: 'tv-o17', logLevel: 'warn' }, { logger: { level: 'warn', stream: { write: (l: string) => lines.push(l) } } });
  const listed = (await app.inject('/models')).json().models as { name: string; methods: string[]; grid: number[] }[];
  t.same(listed.map((m) => m.name), MODELS, 'the folder with wrong names is skipped, the others served');
  const skipped = lines.map((l) => JSON.parse(l).msg as string).find((m) => m.includes('wrong-names'));
  t.match(skipped, /skipping model wrong-names: .*has no input or output named 'scores' \(config.json names them; the graph's inputs are 'pixel_values' and its outputs 'logits', 'attentions.0', 'attentions.1'\)/);
  for (const m of listed) t.same(m.methods, ['rollout', 'cls', 'relevance'], `${m.name}: every method`);

  for (const name of MODELS) {
    const ref = (await readSafetensors(path.join(FOREIGN, name, 'reference.safetensors'))).tensors;
    const images = ref.get('served.images')!.data;
    const logits = ref.get('served.logits')!.data;
    for (let i = 0; i < 3; i++) {
      const bytes = Buffer.from(Uint8Array.from(images.subarray(i * 32 * 32 * 3, (i + 1) * 32 * 32 * 3)));
      const png = await sharp(bytes, { raw: { width: 32, height: 32, channels: 3 } }).png().toBuffer();
      const r = await app.inject({ method: 'POST', url: `/classify?model=${name}`, ...multipart('image', png) });
      t.equal(r.statusCode, 200, r.statusCode === 200 ? `${name} image ${i}: answered` : r.body);
      const body = r.json();
      const want = Array.from(logits.subarray(i * 5, (i + 1) * 5));
      const d = worst(body.logits, want);
      t.ok(d <= 1e-4, `${name} image ${i}: logits within 1e-4 of PyTorch's (${d.toExponential(2)})`);
      t.equal(body.predictions[0].index, want.indexOf(Math.max(...want)));
      t.same(body.attention.grid, [4, 4]);
      for (const method of ['rollout', 'relevance'] as const) {
        const a = await app.inject(`/attention/${body.id}?method=${method}&format=json`);
        t.equal(a.statusCode, 200, a.body);
        const got = (a.json().values as number[][]).flat();
        const map = scaled(ref.get(`served.${method}`)!.data.subarray(i * 16, (i + 1) * 16));
        const dm = worst(got, map);
        const spread = Math.max(...map) - Math.min(...map);
        t.ok(dm <= 1e-3 && spread > 0.2, `${name} image ${i}: the ${method} map is PyTorch's within 1e-3 after scaling (${dm.toExponential(2)}; values spread over ${spread.toFixed(2)})`);
        if (method === 'relevance') t.equal(a.json().class_index, body.predictions[0].index, 'for the predicted class');
      }
      const png2 = await app.inject(`/attention/${body.id}?method=relevance`);
      t.equal(png2.headers['content-type'], 'image/png');
    }
  }
});

t.test("attention=full is refused past what a response carries, saying what to ask for (a ViT-B/16's 12 x 12 x 197 x 197)", async (t) => {
  t.doesNotThrow(() => refuseLargeFull(4, 4, 65), 'the seed ViT sends its attentions whole');
  t.throws(() => refuseLargeFull(12, 12, 197), /attention=full would carry 12 layers x 12 heads x 197 x 197 tokens = 5,588,496 values \(about 50 MB of JSON\), more than the 1,000,000 a response carries: ask for attention=rollout, cls or relevance/);
});
