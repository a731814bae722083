import path from 'node:path';
import sharp from 'sharp';
import t from 'tap';
import { clsAttention, fuseHeads, rollout, rolloutMeanInto } from '../../server/engine/attention.js';
import { drawHeatmap } from '../../server/drawing/heatmap.js';
import { MemoryResults } from '../../server/results/store.js';
import { Rng } from '../../trainer/nn/random.js';
import { testApp, testImage } from '../helpers/server.js';
import { maxAbsDiff } from '../helpers/opcheck.js';
import { ROOT } from '../helpers/cli.js';

/** Softmax rows: a random attention stack. */
function randomStack(layers: number, heads: number, tokens: number, seed = 1) {
  const rng = new Rng(seed);
  return {
    heads,
    tokens,
    layers: Array.from({ length: layers }, () => {
      const a = new Float32Array(heads * tokens * tokens);
      for (let r = 0; r < heads * tokens; r++) {
        let sum = 0;
        for (let j = 0; j < tokens; j++) sum += a[r * tokens + j] = Math.exp(2 * rng.normal());
        for (let j = 0; j < tokens; j++) a[r * tokens + j] /= sum;
      }
      return a;
    }),
  };
}

/** Rollout the slow way: full matrix products, last layer on the left. */
function naiveRollout(s: ReturnType<typeof randomStack>, fusion: 'mean' | 'max' | 'min' | number): number[] {
  const T = s.tokens;
  let result: number[][] = Array.from({ length: T }, (_, i) => Array.from({ length: T }, (_, j) => (i === j ? 1 : 0)));
  for (const layer of s.layers) {
    const a = fuseHeads(layer, s.heads, T, fusion);
    const m = Array.from({ length: T }, (_, i) => Array.from({ length: T }, (_, j) => 0.5 * a[i * T + j] + (i === j ? 0.5 : 0)));
    for (const row of m) {
      const sum = row.reduce((x, y) => x + y, 0);
      row.forEach((v, j) => (row[j] = v / sum));
    }
    result = m.map((row) => result[0].map((_, j) => row.reduce((acc, v, k) => acc + v * result[k][j], 0)));
  }
  return result[0].slice(1);
}

t.test('rollout carried as a vector equals the product of the full matrices', async (t) => {
  const s = randomStack(3, 2, 7);
  for (const fusion of ['mean', 'max', 'min', 1] as const) {
    const fast = rollout(s, fusion);
    const slow = naiveRollout(s, fusion);
    t.ok(
      slow.every((v, i) => Math.abs(v - fast[i]) < 1e-6),
      `${fusion}: ${Array.from(fast).slice(0, 3)} vs ${slow.slice(0, 3)}`,
    );
  }
  const discarded = rollout(s, 'mean', 0.9);
  t.equal(discarded.length, 6);
  t.notSame(Array.from(discarded), Array.from(rollout(s, 'mean')), 'discarding changes the map');
  const cls = clsAttention(s, 2, 0);
  t.same(Array.from(cls), Array.from(s.layers[2].subarray(1, 7)), '[CLS] row of layer 2, head 0');
});

t.test('the batched default rollout reads each image of a batch', async (t) => {
  const stacks = [1, 2, 3].map((seed) => randomStack(3, 2, 7, seed));
  const batch = [0, 1, 2].map((l) => Float32Array.from(stacks.flatMap((s) => Array.from(s.layers[l]))));
  const out = new Float32Array(3 * 6).fill(NaN);
  for (const i of [2, 0, 1]) rolloutMeanInto(batch, i, 2, 7, out, i * 6);
  stacks.forEach((s, i) => {
    const slow = naiveRollout(s, 'mean');
    t.ok(
      slow.every((v, j) => Math.abs(v - out[i * 6 + j]) < 1e-6),
      `image ${i}: ${Array.from(out.subarray(i * 6, i * 6 + 3))} vs ${slow.slice(0, 3)}`,
    );
  });
});

t.test('a heatmap at full opacity is the map itself, cell by cell', async (t) => {
  const grid = Array.from({ length: 8 }, (_, r) => Array.from({ length: 8 }, (_, c) => ((r + c) % 2 === 0 ? 1 : 0.25 * (c / 7))));
  const view = { data: Buffer.alloc(32 * 32 * 3, 0), width: 32, height: 32 };
  const png = drawHeatmap(grid, view, { size: 256, alpha: 1, colormap: 'gray' });
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  t.same([info.width, info.height, info.channels], [256, 256, 3]);
  let worst = 0;
  grid.forEach((row, r) =>
    row.forEach((v, c) => (worst = Math.max(worst, Math.abs(data[((r * 32 + 16) * 256 + c * 32 + 16) * 3] - v * 255)))),
  );
  t.ok(worst < 30, `cell centres carry the cell values (largest difference ${worst} of 255)`);
});

t.test('the memory results store is an LRU with a time to live', async (t) => {
  let now = 0;
  const store = new MemoryResults(2, 1000, () => now);
  const entry = (id: string) => ({
    id,
    model: 'm',
    createdAt: now,
    input: new Float32Array([1, 2, 3]),
    top: 1,
    view: { data: Buffer.alloc(3), width: 1, height: 1 },
  });
  await store.put(entry('a'));
  await store.put(entry('b'));
  t.same(Array.from((await store.get('a'))!.input), [1, 2, 3], 'a is there (and now most recent)');
  await store.put(entry('c'));
  t.notOk(await store.get('b'), 'b, least recently used, was evicted');
  t.ok((await store.get('a')) && (await store.get('c')));
  now = 1500;
  t.notOk(await store.get('a'), 'a expired');
  t.equal(store.size, 1);
  const none = new MemoryResults(0, 1000);
  await none.put(entry('x'));
  t.equal(none.size, 0, 'capacity 0 keeps nothing');
});

t.test('results of models without attention are remembered by id only, with the same bounds', async (t) => {
  let now = 0;
  const store = new MemoryResults(2, 1000, () => now);
  await store.noteUnkept('x', 'plain');
  await store.noteUnkept('y', 'plain');
  t.equal(await store.unkeptModel('x'), 'plain');
  await store.noteUnkept('z', 'other');
  t.equal(await store.unkeptModel('y'), undefined, 'the least recently used is dropped past the capacity');
  t.equal(await store.unkeptModel('z'), 'other');
  t.equal(await store.get('z'), undefined, 'nothing is kept to draw');
  now = 1500;
  t.equal(await store.unkeptModel('z'), undefined, 'expired with the TTL');
  t.equal(await new MemoryResults(0, 1000).unkeptModel('x'), undefined);
});

t.test('GET /attention/:id: each kept result gives back the maps /classify returned for it', async (t) => {
  // The store keeps the input; the map is the model run again on it, which must give /classify's.
  const app = await testApp(t, { resultsCapacity: 3 });
  const images = await Promise.all([24, 40, 56, 72, 88].map((size) => testImage('png', size)));
  const answers = [];
  for (const img of images)
    answers.push(
      (await app.inject({ method: 'POST', url: '/classify?attention=cls', payload: img, headers: { 'content-type': 'image/png' } })).json(),
    );
  const kept = answers.slice(-3);
  for (const a of kept) {
    const json = (await app.inject({ method: 'GET', url: `/attention/${a.id}?format=json&method=cls` })).json();
    t.equal(json.values.length, a.attention.values.length);
    const worst = maxAbsDiff(json.values.flat(), a.attention.values.flat());
    t.ok(worst < 1e-6, `result ${a.id.slice(0, 8)}: the map drawn later is the one classified (largest difference ${worst})`);
  }
  t.notSame(kept[0].attention.values, kept[1].attention.values, 'different images, different maps');
  t.equal(
    (await app.inject({ method: 'GET', url: `/attention/${answers[0].id}` })).statusCode,
    404,
    'the oldest left the store (capacity 3)',
  );
});

t.test("each heatmap PNG is drawHeatmap of the map's own grid, byte for byte (a trained model: maps that are not flat)", async (t) => {
  const app = await testApp(t, { models: path.join(ROOT, 'models'), defaultModel: 'vit-cifar10' });
  const image = await sharp(path.join(ROOT, 'server', 'web', 'examples', 'cat.png'))
    .resize(96, 64)
    .png()
    .toBuffer();
  const { id } = (await app.inject({ method: 'POST', url: '/classify', payload: image, headers: { 'content-type': 'image/png' } })).json();
  const { view } = (await app.vitrine.results.get(id))!;
  for (const q of [
    'method=rollout',
    'method=relevance&class=3&size=200&alpha=0.8&colormap=viridis',
    'method=chefer&colormap=gray&alpha=1',
    'method=cls&layer=0&head=1&size=64&colormap=inferno',
    'method=combined&size=40',
  ]) {
    const json = (await app.inject(`/attention/${id}?${q}&format=json`)).json();
    const values = json.values.flat() as number[];
    t.ok(
      Math.max(...values) - Math.min(...values) > 0.5,
      `${q}: the map spans ${Math.min(...values).toFixed(2)}-${Math.max(...values).toFixed(2)}`,
    );
    const res = await app.inject(`/attention/${id}?${q}`);
    t.equal(res.statusCode, 200);
    const p = new URLSearchParams(q);
    const expected = drawHeatmap(json.values, view, {
      size: Number(p.get('size') ?? 256),
      alpha: Number(p.get('alpha') ?? 0.5),
      colormap: (p.get('colormap') ?? 'jet') as 'jet',
    });
    t.ok(res.rawPayload.equals(expected), `${q}: the PNG is the map's drawing, byte for byte (${res.rawPayload.length} bytes)`);
  }
});

t.test('GET /attention/:id draws heatmaps and answers JSON', async (t) => {
  const app = await testApp(t);
  const classify = await app.inject({
    method: 'POST',
    url: '/classify',
    payload: await testImage('png', 128),
    headers: { 'content-type': 'image/png' },
  });
  const { id, attention } = classify.json();

  let res = await app.inject({ method: 'GET', url: `/attention/${id}` });
  t.equal(res.statusCode, 200);
  t.equal(res.headers['content-type'], 'image/png');
  const meta = await sharp(res.rawPayload).metadata();
  t.same([meta.format, meta.width, meta.height], ['png', 256, 256]);

  res = await app.inject({ method: 'GET', url: `/attention/${id}?size=256&alpha=1&colormap=gray` });
  const { data, info } = await sharp(res.rawPayload).raw().toBuffer({ resolveWithObject: true });
  t.same([info.width, info.height], [256, 256]);
  t.ok(
    data.every((v, i) => i % 3 !== 0 || (v === data[i + 1] && v === data[i + 2])),
    'alpha 1 with gray: a pure gray map',
  );
  // At alpha 1 the image is the map itself, stretched from its lowest value (black) to its highest
  // (white): each cell's centre is as bright as the cell's place in that range.
  const grid: number[][] = attention.values;
  const low = Math.min(...grid.flat());
  const high = Math.max(...grid.flat());
  let worst = 0;
  grid.forEach((row, r) =>
    row.forEach((v, c) => {
      const pixel = data[((r * 32 + 16) * 256 + (c * 32 + 16)) * 3];
      worst = Math.max(worst, Math.abs(pixel - ((v - low) / (high - low)) * 255));
    }),
  );
  t.ok(worst < 40, `the drawn map follows the grid (largest difference ${worst} of 255)`);
  // the heatmap says the map's own range, which the JSON gives too
  const [min, max] = String(res.headers['x-vitrine-map-range']).split(',').map(Number);
  t.ok(min < max && min >= 0, `the range drawn: ${min} to ${max}`);
  const asJson = (await app.inject({ method: 'GET', url: `/attention/${id}?format=json` })).json();
  t.same(asJson.range, [min, max], 'the JSON answer gives the same range');

  res = await app.inject({ method: 'GET', url: `/attention/${id}?format=json` });
  t.equal(res.statusCode, 200);
  const json = res.json();
  t.same(json.values, attention.values, 'the default rollout matches the one /classify returned');
  t.same(json.grid, [8, 8]);

  const cls = (await app.inject({ method: 'GET', url: `/attention/${id}?format=json&method=cls&layer=0&head=2` })).json();
  t.equal(cls.method, 'cls');
  t.equal(cls.layer, 0);
  t.notSame(cls.values, json.values);
  for (const q of ['head=max', 'head=min', 'head=3', 'discard=0.5', 'method=cls&head=max']) {
    t.equal((await app.inject({ method: 'GET', url: `/attention/${id}?format=json&${q}` })).statusCode, 200, q);
  }

  const bad: [string, number][] = [
    [`/attention/${id}?head=4`, 400],
    [`/attention/${id}?method=cls&layer=4`, 400],
    [`/attention/${id}?alpha=2`, 400],
    [`/attention/${id}?colormap=rainbow`, 400],
    [`/attention/${id}?head=first`, 400],
    ['/attention/00000000-0000-0000-0000-000000000000', 404],
  ];
  for (const [url, status] of bad) {
    const r = await app.inject({ method: 'GET', url });
    t.equal(r.statusCode, status, `${url}: ${r.body}`);
    t.match(r.json(), { error: String, code: String, message: String });
  }

  // the seed model's config carries its head count: a head it lacks is refused without a model run
  const batcher = app.vitrine.batcher;
  const submit = batcher.submit.bind(batcher);
  let runs = 0;
  batcher.submit = (...args: Parameters<typeof submit>) => (runs++, submit(...args));
  const r = await app.inject({ method: 'GET', url: `/attention/${id}?method=cls&head=7` });
  t.equal(r.statusCode, 400);
  t.match(r.json(), { message: /head 7 does not exist: the model has 4 heads \(0-3\)/ });
  t.equal(runs, 0, 'the model did not run for it');
  t.equal((await app.inject({ method: 'GET', url: `/attention/${id}?format=json&head=2&discard=0.25` })).statusCode, 200);
  t.equal(runs, 1, 'a good head runs it');
  const again = await Promise.all([1, 2].map(() => app.inject({ method: 'GET', url: `/attention/${id}?head=2&discard=0.25` })));
  t.ok(again.every((r) => r.statusCode === 200));
  t.equal(runs, 1, 'the same map asked again (twice at once) is not made again while the result is kept');
});

t.test('results expire after their TTL and fall out of a full store', async (t) => {
  let clock = 1_000_000;
  const app = await testApp(t, { resultsCapacity: 1, resultsTtlS: 1 }, { now: () => clock });
  const post = async () =>
    (await app.inject({ method: 'POST', url: '/classify', payload: await testImage(), headers: { 'content-type': 'image/png' } })).json()
      .id;
  const first = await post();
  const second = await post();
  t.equal((await app.inject({ method: 'GET', url: `/attention/${first}` })).statusCode, 404, 'pushed out by a newer one');
  t.equal((await app.inject({ method: 'GET', url: `/attention/${second}` })).statusCode, 200);
  clock += 1000;
  t.equal((await app.inject({ method: 'GET', url: `/attention/${second}` })).statusCode, 200, 'still there at exactly the TTL');
  clock += 1;
  const expired = await app.inject({ method: 'GET', url: `/attention/${second}` });
  t.equal(expired.statusCode, 404, 'expired');
  t.equal(expired.json().code, 'VIT_UNKNOWN_RESULT');
});

t.test('attention routes answer 422 for a model without attention outputs', async (t) => {
  const app = await testApp(t);
  for (const attention of ['rollout', 'cls', 'full']) {
    const res = await app.inject({
      method: 'POST',
      url: `/classify?model=plain&attention=${attention}`,
      payload: await testImage(),
      headers: { 'content-type': 'image/png' },
    });
    t.equal(res.statusCode, 422, attention);
  }
});
