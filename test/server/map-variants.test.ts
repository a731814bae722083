// A client cannot grow the server through map variants: each kept result keeps at most
// MAX_MAPS_PER_RESULT maps, in the process and in Redis, and spellings of one map (head=001 and
// head=1) share its key. Before the bound, GET /attention/<id>?discard=<i>e-9 with a new i each time
// grew the process by hundreds of MB a minute.

import t, { type Test } from 'tap';
import { MAX_MAPS_PER_RESULT, MemoryResults } from '../../server/results/store.js';
import { appOnRedis } from '../helpers/redis.js';
import { testWith } from '../helpers/services.js';
import { multipart, testApp, testImage } from '../helpers/server.js';

t.test('the memory store keeps the most recently made maps of a result, up to the bound', async (t) => {
  const store = new MemoryResults(4, 60_000);
  await store.put({
    id: 'r',
    model: 'm',
    createdAt: Date.now(),
    view: { data: Buffer.alloc(3), width: 1, height: 1 },
    input: new Float32Array(3),
    top: 0,
  });
  for (let i = 0; i < 100; i++) await store.putMap('r', `rollout::mean:${i}e-9`, Float32Array.of(i));
  const kept = [];
  for (let i = 0; i < 100; i++) if (await store.getMap('r', `rollout::mean:${i}e-9`)) kept.push(i);
  t.equal(kept.length, MAX_MAPS_PER_RESULT, `${MAX_MAPS_PER_RESULT} maps kept of 100 made`);
  t.same(
    kept,
    Array.from({ length: MAX_MAPS_PER_RESULT }, (_, k) => 100 - MAX_MAPS_PER_RESULT + k),
    'the most recent ones',
  );
});

async function variants(t: Test, app: Awaited<ReturnType<typeof testApp>>, count: number): Promise<string> {
  const r = await app.inject({ method: 'POST', url: '/classify', ...multipart('image', await testImage()) });
  const { id } = r.json();
  for (let i = 1; i <= count; i++) {
    const a = await app.inject(`/attention/${id}?format=json&discard=${i}e-9&head=${String(i % 4).padStart(3, '0')}`);
    t.equal(a.statusCode, 200, a.body);
  }
  return id;
}

t.test('GET /attention: new variants past the bound are made, not kept; spellings of a head share one map', async (t) => {
  const app = await testApp(t);
  const id = await variants(t, app, 3 * MAX_MAPS_PER_RESULT);
  const store = app.vitrine.results as MemoryResults;
  let kept = 0;
  for (let i = 1; i <= 3 * MAX_MAPS_PER_RESULT; i++) if (await store.getMap(id, `rollout::${i % 4}:${Number(`${i}e-9`)}`)) kept++;
  t.equal(kept, MAX_MAPS_PER_RESULT, 'the result keeps its share of maps, under the parsed head (001 is 1)');
  const [a, b] = await Promise.all(['head=1', 'head=001'].map((h) => app.inject(`/attention/${id}?format=json&${h}`)));
  t.same(a.json().values, b.json().values);
  t.ok(await store.getMap(id, 'rollout::1:0'), 'one key for both spellings');
});

testWith(t, 'in Redis too, a result keeps at most its share of maps', ['redis-server'], async (t) => {
  const { app, client } = await appOnRedis(t);
  const id = await variants(t, app, 2 * MAX_MAPS_PER_RESULT);
  t.equal(await client.hlen(`vitrine:maps:${id}`), MAX_MAPS_PER_RESULT);
});
