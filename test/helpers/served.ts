// What a served foreign model must answer for the fixtures' three images (served.* in a folder's
// reference.safetensors, written by test/fixtures/make-foreign-vits.py): PyTorch's logits, and its
// rollout and Chefer's relevance maps for the predicted class (method=chefer; combined is it plus
// rollout, times the square root of gradient x input, checked against the three served maps; the
// default, relevance, from the light graph, is checked against the same rule on the full graph's run).

import path from 'node:path';
import sharp from 'sharp';
import type { FastifyInstance } from 'fastify';
import type { Test } from 'tap';
import { readSafetensors } from '../../trainer/io/safetensors.js';
import { maxAbsDiff } from './opcheck.js';
import { multipart } from './server.js';

/** Values scaled to a maximum of 1, as the service's grids are. */
const scaled = (v: ArrayLike<number>) => {
  const max = Math.max(...Array.from(v));
  return Array.from(v, (x) => x / max);
};
const worst = (a: number[], b: number[]) => maxAbsDiff(a, b);

/** POSTs the three images to /classify?model=<name> and compares with the reference in `fixture`. */
export async function assertServedAsPyTorch(t: Test, app: FastifyInstance, name: string, fixture: string): Promise<void> {
  const ref = (await readSafetensors(path.join(fixture, 'reference.safetensors'))).tensors;
  const images = ref.get('served.images')!.data;
  const logits = ref.get('served.logits')!.data;
  for (let i = 0; i < 3; i++) {
    const bytes = Buffer.from(Uint8Array.from(images.subarray(i * 32 * 32 * 3, (i + 1) * 32 * 32 * 3)));
    const png = await sharp(bytes, { raw: { width: 32, height: 32, channels: 3 } })
      .png()
      .toBuffer();
    const r = await app.inject({ method: 'POST', url: `/classify?model=${name}`, ...multipart('image', png) });
    t.equal(r.statusCode, 200, r.statusCode === 200 ? `${name} image ${i}: answered` : r.body);
    const body = r.json();
    const want = Array.from(logits.subarray(i * 5, (i + 1) * 5));
    const d = worst(body.logits, want);
    t.ok(d <= 1e-4, `${name} image ${i}: logits within 1e-4 of PyTorch's (${d.toExponential(2)})`);
    t.equal(body.predictions[0].index, want.indexOf(Math.max(...want)));
    t.same(body.attention.grid, [4, 4]);
    const served: Record<string, number[]> = {};
    for (const [method, key] of [
      ['rollout', 'rollout'],
      ['chefer', 'relevance'],
      ['grad-input', null],
      ['combined', null],
      ['relevance', null],
    ] as const) {
      const a = await app.inject(`/attention/${body.id}?method=${method}&format=json`);
      t.equal(a.statusCode, 200, a.body);
      served[method] = (a.json().values as number[][]).flat();
      if (method !== 'rollout') t.equal(a.json().class_index, body.predictions[0].index, `${method}: for the predicted class`);
      if (!key) continue;
      const map = scaled(ref.get(`served.${key}`)!.data.subarray(i * 16, (i + 1) * 16));
      const dm = worst(served[method], map);
      const spread = Math.max(...map) - Math.min(...map);
      t.ok(
        dm <= 1e-3 && spread > 0.2,
        `${name} image ${i}: the ${method} map is PyTorch's within 1e-3 after ` +
          `scaling (${dm.toExponential(2)}; values spread over ` +
          `${spread.toFixed(2)})`,
      );
    }
    // the served maps are each scaled to a maximum of 1, as the rule scales chefer and rollout
    const rule = scaled(served.chefer.map((v, k) => (v + served.rollout[k]) * Math.sqrt(served['grad-input'][k])));
    t.ok(
      worst(served.combined, rule) <= 1e-3,
      `${name} image ${i}: combined is (chefer + rollout) x sqrt(grad-input) (${worst(served.combined, rule).toExponential(2)})`,
    );
    // the default map came from the light graph (the last block's gradient alone); the full graph's
    // run of the same image gives the same map
    const model = app.vitrine.models.find((m) => m.name === name)!;
    t.ok(model.lightExplanationFile, `${name}: the folder has the light explanation graph`);
    const kept = (await app.vitrine.results.get(body.id))!;
    const full = await app.vitrine.batcher.submit(name, kept.input, { explain: { class: body.predictions[0].index, graph: 'full' } });
    const fromFull = scaled(full.relevance!);
    t.ok(
      worst(served.relevance, fromFull) <= 1e-4,
      `${name} image ${i}: relevance from the light graph = from the full graph (${worst(served.relevance, fromFull).toExponential(2)})`,
    );
    t.notOk(worst(served.relevance, served.chefer) <= 1e-3, `${name} image ${i}: relevance is not Chefer's rule over every layer`);
    const heat = await app.inject(`/attention/${body.id}?method=relevance`);
    t.equal(heat.headers['content-type'], 'image/png');
  }
}
