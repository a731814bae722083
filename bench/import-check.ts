// The done-when check of import on a ViT the project never trained: bench/import/train-torch-vit.py
// trains one in PyTorch on CIFAR-10 and exports it at opsets 14 and 17 as optimum lays a folder out;
// `vitrine import` makes model folders of them (data/bench/torch-served/); this serves both and,
// for the first N CIFAR-10 test images posted to /classify as PNGs, compares the logits and the
// rollout and relevance maps of GET /attention/:id with PyTorch's (bench/import/torch-vit-reference.py).
//   npm run bench:import-check [-- --models data/bench/torch-served --reference data/bench/torch-vit-reference.json]
// One JSON line per model: the worst logit difference and the worst map differences after scaling to
// a maximum of 1 (the goals: 1e-4 and 1e-3).

import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import { buildApp } from '../server/http/app.js';
import { defaultServeConfig } from '../server/config.js';
import { benchArgs } from './common.js';

const { arg: opt } = benchArgs(
  'npm run bench:import-check [-- --models data/bench/torch-served --reference data/bench/torch-vit-reference.json]',
  { strings: ['models', 'reference'] },
);

const models = opt('models', 'data/bench/torch-served');
const ref = JSON.parse(await readFile(opt('reference', 'data/bench/torch-vit-reference.json'), 'utf8')) as {
  images: number[][];
  logits: number[][];
  rollout: number[][];
  relevance: number[][];
};
const app = await buildApp({ ...defaultServeConfig(), models, logLevel: 'warn' }, { logger: false });
const names = app.vitrine.models.map((m) => m.name);
const scaled = (v: number[]) => {
  const max = Math.max(...v);
  return v.map((x) => x / max);
};
const worst = (a: number[], b: number[]) => Math.max(...a.map((x, i) => Math.abs(x - b[i])));

for (const name of names) {
  const w = { logits: 0, rollout: 0, relevance: 0 };
  let agree = 0;
  for (let i = 0; i < ref.images.length; i++) {
    const png = await sharp(Buffer.from(ref.images[i]), { raw: { width: 32, height: 32, channels: 3 } })
      .png()
      .toBuffer();
    const r = await app.inject({ method: 'POST', url: `/classify?model=${name}`, payload: png, headers: { 'content-type': 'image/png' } });
    if (r.statusCode !== 200) throw new Error(`${name}: ${r.statusCode} ${r.body}`);
    const body = r.json();
    w.logits = Math.max(w.logits, worst(body.logits, ref.logits[i]));
    if (body.predictions[0].index === ref.logits[i].indexOf(Math.max(...ref.logits[i]))) agree++;
    for (const method of ['rollout', 'relevance'] as const) {
      const a = await app.inject(`/attention/${body.id}?method=${method}&format=json`);
      if (a.statusCode !== 200) throw new Error(`${name} ${method}: ${a.statusCode} ${a.body}`);
      w[method] = Math.max(w[method], worst((a.json().values as number[][]).flat(), scaled(ref[method][i])));
    }
  }
  console.log(
    JSON.stringify({
      bench: 'import-check',
      model: name,
      images: ref.images.length,
      top1_agrees_with_pytorch: agree,
      worst_logit_diff: +w.logits.toExponential(2),
      worst_rollout_diff: +w.rollout.toExponential(2),
      worst_relevance_diff: +w.relevance.toExponential(2),
      within_goals: w.logits <= 1e-4 && w.rollout <= 1e-3 && w.relevance <= 1e-3,
    }),
  );
}
await app.close();
