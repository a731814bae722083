// Maps of images classified in one batch belong to their own image: six different CIFAR-10 examples,
// each map (every method, and the class each request asks for) compared with the same image's map
// computed alone. A batcher that handed every request the first image's maps passed the rest of the
// suite; the maps of the six images are checked to differ, so such a mix-up cannot pass here.

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import t, { type Test } from 'tap';
import type { FastifyInstance } from 'fastify';
import { ROOT } from '../helpers/cli.js';
import { maxAbsDiff } from '../helpers/opcheck.js';
import { testApp } from '../helpers/server.js';

const EXAMPLES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'frog'];
// the service rounds map values to 5 decimals: one rounding step either way, and float noise
const TOLERANCE = 2e-5;
const METHODS = ['rollout', 'cls', 'relevance', 'chefer', 'grad-input', 'combined'] as const;
const CLASS_METHODS = new Set<string>(['relevance', 'chefer', 'grad-input', 'combined']);

type Answer = { values: number[]; logits?: number[]; batch?: number; id?: string };

const post = async (app: FastifyInstance, image: Buffer, query: string): Promise<Answer> => {
  const r = await app.inject({ method: 'POST', url: `/classify?${query}`, payload: image, headers: { 'content-type': 'image/png' } });
  if (r.statusCode !== 200) throw new Error(`POST /classify?${query}: ${r.statusCode} ${r.body}`);
  const b = r.json();
  return {
    values: query.includes('attention=none') ? [] : b.attention.values.flat(),
    logits: b.logits,
    batch: b.timings.batch_size,
    id: b.id,
  };
};

const get = async (app: FastifyInstance, id: string, method: string, image: number): Promise<Answer> => {
  // each image asks for a class of its own (not its top one), so the class is matched to the image too
  const q = `method=${method}&format=json${CLASS_METHODS.has(method) ? `&class=${(image * 3 + 1) % 10}` : ''}`;
  const r = await app.inject(`/attention/${id}?${q}`);
  if (r.statusCode !== 200) throw new Error(`GET /attention/:id?${q}: ${r.statusCode} ${r.body}`);
  return { values: r.json().values.flat() };
};

/** Each batched map equals its image's alone, and the six images' maps differ from one another. */
function compare(t: Test, what: string, alone: Answer[], batched: Answer[]) {
  for (let i = 0; i < EXAMPLES.length; i++) {
    const d = maxAbsDiff(batched[i].values, alone[i].values);
    t.ok(d <= TOLERANCE, `${what}, ${EXAMPLES[i]}: in the batch as alone (worst ${d.toExponential(2)})`);
    if (alone[i].logits) t.ok(maxAbsDiff(batched[i].logits!, alone[i].logits!) <= TOLERANCE, `${what}, ${EXAMPLES[i]}: logits too`);
  }
  let closest = Infinity;
  for (let i = 0; i < EXAMPLES.length; i++)
    for (let j = 0; j < i; j++) closest = Math.min(closest, maxAbsDiff(alone[i].values, alone[j].values));
  t.ok(closest > 100 * TOLERANCE, `${what}: the six images' maps differ (the closest two by ${closest.toExponential(2)})`);
}

for (const model of ['vit-cifar10', 'cct-cifar10']) {
  t.test(`${model}: every map of an image in a batch of six is that image's`, async (t) => {
    const images = await Promise.all(EXAMPLES.map((n) => readFile(path.join(ROOT, 'server', 'web', 'examples', `${n}.png`))));
    const models = path.join(ROOT, 'models');
    // alone: batches of one; batched: a batch leaves when its sixth image arrives (the delay never runs out first)
    const alone = await testApp(t, { models, defaultModel: model, maxBatch: 1 });
    const batched = await testApp(t, { models, defaultModel: model, maxBatch: 6, maxDelayMs: 10_000 });

    // maps that come with the classification
    for (const query of ['attention=rollout', 'attention=cls', 'attention=relevance', 'attention=relevance&tta=flip']) {
      const one: Answer[] = [];
      for (const image of images) one.push(await post(alone, image, query));
      t.ok(
        one.every((a) => a.batch === 1),
        `${query}: alone, batches of one`,
      );
      const six = await Promise.all(images.map((image) => post(batched, image, query)));
      if (!query.includes('tta'))
        t.same(
          six.map((a) => a.batch),
          [6, 6, 6, 6, 6, 6],
          `${query}: one batch of six`,
        );
      compare(t, `POST ${query}`, one, six);
    }

    // maps drawn later from kept results, each method asked for the six results at once
    const ids = async (app: FastifyInstance) =>
      (await Promise.all(images.map((image) => post(app, image, 'attention=none')))).map((a) => a.id!);
    const [aloneIds, batchedIds] = [await ids(alone), await ids(batched)];
    for (const method of METHODS) {
      const one: Answer[] = [];
      for (let i = 0; i < images.length; i++) one.push(await get(alone, aloneIds[i], method, i));
      const six = await Promise.all(batchedIds.map((id, i) => get(batched, id, method, i)));
      compare(t, `GET method=${method}`, one, six);
    }
    // the explanation runs of the batched service went six at a time
    const metrics = (await batched.inject('/metrics')).body;
    for (const m of metrics.matchAll(new RegExp(`vitrine_batch_size_count\\{model="(${model} [^"]+)"\\} (\\d+)`, 'g'))) {
      const sum = Number(new RegExp(`vitrine_batch_size_sum\\{model="${m[1]}"\\} (\\d+)`).exec(metrics)![1]);
      t.equal(sum / Number(m[2]), 6, `${m[1]}: every batch held six images`);
    }
  });
}
