// Replicas sharing a Redis results store: a result classified by one is drawn by another, also after
// the first is gone; a Redis outage leaves classification working, makes GET /attention/:id a 503,
// and heals by itself when Redis is back. Against a real redis-server.

import t from 'tap';
import type { FastifyInstance } from 'fastify';
import type { RedisResults } from '../../server/results/redis.js';
import { startRedis } from '../helpers/redis.js';
import { testWith } from '../helpers/services.js';
import { until } from '../helpers/wait.js';
import { testApp, testImage } from '../helpers/server.js';
import { assertClose } from '../helpers/opcheck.js';

const classify = async (app: FastifyInstance, model = 'vit-cifar10') => {
  const res = await app.inject({
    method: 'POST',
    url: `/classify?model=${model}`,
    payload: await testImage(),
    headers: { 'content-type': 'image/png' },
  });
  if (res.statusCode !== 200) throw new Error(`classify: ${res.statusCode} ${res.body}`);
  return res.json();
};
const mapOf = (app: FastifyInstance, id: string) => app.inject(`/attention/${id}?format=json`);

testWith(t, 'redis results store: replicas answer for each other, and outages heal', ['redis-server'], async (t) => {
  const redis = await startRedis(t);
  const a = await testApp(t, { resultsStore: redis.url });
  const b = await testApp(t, { resultsStore: redis.url });
  const store = (app: FastifyInstance) => app.vitrine.results as RedisResults;
  await store(a).waitReady(10_000);
  await store(b).waitReady(10_000);

  const first = await classify(a);
  const fromB = await mapOf(b, first.id);
  t.equal(fromB.statusCode, 200, fromB.body);
  const values = fromB.json().values.flat();
  const inline = first.attention.values.flat();
  t.equal(values.length, 64, 'a map of 8 x 8 patches');
  assertClose(t, values, inline, 0, 1e-5, "the other replica draws the classifying replica's rollout");
  const png = await b.inject(`/attention/${first.id}`);
  t.equal(png.headers['content-type'], 'image/png');
  const relevance = await b.inject(`/attention/${first.id}?method=relevance&format=json`);
  t.equal(relevance.statusCode, 200, 'relevance from the kept input');
  t.equal(relevance.json().class_index, first.predictions[0].index, 'explains the top prediction by default');

  const plain = await classify(a, 'plain');
  const noMaps = await mapOf(b, plain.id);
  t.equal(noMaps.statusCode, 422, 'a model without attention: 422 on the other replica too');
  t.equal((await mapOf(b, 'no-such-id')).statusCode, 404);
  const ready = (await b.inject('/readyz')).json();
  t.same(ready.results_store, { kind: 'redis', url: redis.url, state: 'ready' });

  await a.close();
  t.equal((await mapOf(b, first.id)).statusCode, 200, 'the result outlives the replica that made it');

  // Redis goes away: classification goes on, maps are 503, readiness and metrics say so.
  await redis.stop();
  await until('the replica sees Redis down', () => store(b).state === 'down');
  const during = await classify(b);
  t.ok(during.id, 'classification works while Redis is down');
  const unavailable = await mapOf(b, first.id);
  t.equal(unavailable.statusCode, 503);
  t.equal(unavailable.json().code, 'VIT_STORE_UNAVAILABLE');
  t.match(unavailable.json().message, /results store \(redis:\/\/127\.0\.0\.1:\d+\/0\) is unavailable/);
  const readyDown = await b.inject('/readyz');
  t.equal(readyDown.statusCode, 200, 'still ready: it classifies');
  t.equal(readyDown.json().results_store.state, 'down');
  const metrics = (await b.inject('/metrics')).body;
  t.match(metrics, /vitrine_results_store_up 0/);
  t.match(metrics, /vitrine_results_store_errors_total\{op="put"\} 1/);

  // Redis comes back (its append-only file kept the data): the replica reconnects by itself.
  await redis.start();
  await until('the replica reconnects', () => store(b).state === 'ready');
  t.equal((await mapOf(b, first.id)).statusCode, 200, 'a result from before the outage');
  const after = await classify(b);
  t.equal((await mapOf(b, after.id)).statusCode, 200, 'and new ones');
  t.match((await b.inject('/metrics')).body, /vitrine_results_store_up 1/);
});

t.test('--results-store takes memory or a redis URL', async (t) => {
  const { loadServeConfig } = await import('../../server/config.js');
  t.equal(loadServeConfig([]).resultsStore, 'memory');
  t.equal(loadServeConfig(['--results-store', 'redis://cache:6379/2']).resultsStore, 'redis://cache:6379/2');
  t.equal(loadServeConfig([], { VITRINE_RESULTS_STORE: 'rediss://u:p@h:6380' }).resultsStore, 'rediss://u:p@h:6380');
  t.throws(
    () => loadServeConfig(['--results-store', 'http://x']),
    /--results-store must be 'memory' or redis:\/\/host:port\/db, got 'http:\/\/x'/,
  );
  t.throws(() => loadServeConfig(['--results-store', 'redis://h/db']), /must be 'memory' or redis/);
});

testWith(t, 'kept results expire with the TTL, in Redis itself; reconnects back off to 2 s', ['redis-server'], async (t) => {
  const { reconnectDelay } = await import('../../server/results/redis.js');
  t.same(
    [1, 2, 5, 19, 20, 21, 1000].map(reconnectDelay),
    [100, 200, 500, 1900, 2000, 2000, 2000],
    'the reconnect interval: 100 ms more per try, capped at 2 s',
  );
  const redis = await startRedis(t);
  const app = await testApp(t, { resultsStore: redis.url, resultsTtlS: 1 });
  await (app.vitrine.results as RedisResults).waitReady(10_000);
  const { id } = await classify(app);
  const { Redis } = await import('ioredis');
  const client = new Redis(redis.url);
  t.teardown(() => client.quit());
  const pttl = await client.pttl(`vitrine:result:${id}`);
  t.ok(pttl > 0 && pttl <= 1000, `Redis holds the result with a TTL of ${pttl} ms (results-ttl-s 1)`);
  t.equal((await mapOf(app, id)).statusCode, 200, 'drawn while it lives');
  // the map is kept in a hash beside the result, expiring with it, and read from there when asked again
  const hash = `vitrine:maps:${id}`;
  const keys = await client.hkeys(hash);
  t.equal(keys.length, 1, `the drawn map is kept (${keys.join(', ')})`);
  const mapTtl = await client.pttl(hash);
  t.ok(mapTtl > 0 && mapTtl <= 1000, `with the result's TTL (${mapTtl} ms)`);
  const marker = Float32Array.from({ length: 64 }, (_, i) => (i === 5 ? 2 : 1));
  await client.hset(hash, keys[0], Buffer.from(marker.buffer));
  const again = (await mapOf(app, id)).json().values.flat() as number[];
  t.same(
    again,
    Array.from(marker, (v) => v / 2),
    'asked again, the kept map is the one served (scaled to a maximum of 1)',
  );
  await until('Redis forgets the result', async () => (await client.exists(`vitrine:result:${id}`)) === 0, 10_000);
  // (its TTL set when the map was made, a little after the result's)
  await until('and its maps', async () => (await client.exists(hash)) === 0, 2000);
  t.equal((await mapOf(app, id)).statusCode, 404, 'gone once the TTL has passed');
});
