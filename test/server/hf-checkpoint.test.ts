// Hugging Face checkpoints (weights under transformers' names, no ONNX) exported with
// `vitrine export --checkpoint <folder>` and served: logits, rollout and relevance maps are PyTorch's
// for the same images (test/fixtures/make-foreign-vits.py), the DeiT's distillation token left out of
// the maps, and the processor's stretch and resampling kept.

import path from 'node:path';
import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import t from 'tap';
import { exportCommand } from '../../bin/export.js';
import { readSafetensors } from '../../trainer/io/safetensors.js';
import { ROOT } from '../helpers/cli.js';
import { tmpDir } from '../helpers/data.js';
import { multipart, testApp } from '../helpers/server.js';

const FOREIGN = path.join(ROOT, 'test', 'fixtures', 'foreign');
const root = await tmpDir('vitrine-hf-checkpoints-');
const said: string[] = [];
for (const name of ['hf-deit', 'hf-vit']) await exportCommand(['--checkpoint', path.join(FOREIGN, name), '--out', path.join(root, name)], (l) => said.push(l));

const scaled = (v: ArrayLike<number>) => {
  const max = Math.max(...Array.from(v));
  return Array.from(v, (x) => x / max);
};
const worst = (a: number[], b: number[]) => Math.max(...a.map((x, i) => Math.abs(x - b[i])));

t.test('exported checkpoints serve PyTorch logits, rollout and relevance maps', async (t) => {
  t.match(said.join('\n'), /exported 24298 parameters from .*hf-deit \(DeiTForImageClassificationWithTeacher\)/);
  const config = JSON.parse(await readFile(path.join(root, 'hf-deit', 'config.json'), 'utf8'));
  t.equal(config.prefix_tokens, 2, 'the DeiT folder says two tokens come before the patches');
  t.equal(config.fit, 'fill', "the processor's stretch is kept");
  t.equal(config.model_type, 'deit');
  const app = await testApp(t, { models: root, defaultModel: 'hf-vit' });
  const listed = (await app.inject('/models')).json().models as { name: string; methods: string[] }[];
  t.same(listed.map((m) => [m.name, m.methods]), [['hf-deit', ['rollout', 'cls', 'relevance']], ['hf-vit', ['rollout', 'cls', 'relevance']]]);
  for (const name of ['hf-deit', 'hf-vit']) {
    const ref = (await readSafetensors(path.join(FOREIGN, name, 'reference.safetensors'))).tensors;
    const images = ref.get('served.images')!.data;
    for (let i = 0; i < 3; i++) {
      const bytes = Buffer.from(Uint8Array.from(images.subarray(i * 32 * 32 * 3, (i + 1) * 32 * 32 * 3)));
      const png = await sharp(bytes, { raw: { width: 32, height: 32, channels: 3 } }).png().toBuffer();
      const r = await app.inject({ method: 'POST', url: `/classify?model=${name}`, ...multipart('image', png) });
      t.equal(r.statusCode, 200, r.body.slice(0, 200));
      const body = r.json();
      const want = Array.from(ref.get('served.logits')!.data.subarray(i * 5, (i + 1) * 5));
      t.ok(worst(body.logits, want) <= 1e-4, `${name} image ${i}: logits within 1e-4 of PyTorch's (${worst(body.logits, want).toExponential(2)})`);
      t.same(body.attention.grid, [4, 4]);
      for (const method of ['rollout', 'relevance'] as const) {
        const a = await app.inject(`/attention/${body.id}?method=${method}&format=json`);
        t.equal(a.statusCode, 200, a.body);
        const got = (a.json().values as number[][]).flat();
        const map = scaled(ref.get(`served.${method}`)!.data.subarray(i * 16, (i + 1) * 16));
        t.ok(worst(got, map) <= 1e-3 && Math.max(...map) - Math.min(...map) > 0.2, `${name} image ${i}: the ${method} map is PyTorch's within 1e-3 (${worst(got, map).toExponential(2)})`);
      }
    }
  }
});
