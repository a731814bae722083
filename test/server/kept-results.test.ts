// Kept results read from a shared store are checked before anything is drawn: a value that is not
// one, one whose sizes do not fit its model (a 100,000 px view once kept a draw worker busy for 17
// minutes, every other PNG timing out) and a key of another type answer 410; a cached map of the
// wrong length is made again instead of being served as an empty grid.

import t from 'tap';
import { encodeKept } from '../../server/results/redis.js';
import { appOnRedis } from '../helpers/redis.js';
import { testWith } from '../helpers/services.js';
import { multipart, testImage } from '../helpers/server.js';

testWith(t, 'malformed kept results answer 410; a wrong cached map is remade', ['redis-server'], async (t) => {
  const { app, client } = await appOnRedis(t);
  const { id } = (await app.inject({ method: 'POST', url: '/classify', ...multipart('image', await testImage()) })).json();
  const good = (await app.vitrine.results.get(id))!;

  const base = { model: good.model, createdAt: Date.now(), top: good.top };
  const values: [string, Buffer | null, RegExp][] = [
    ['garbage', Buffer.from('not a kept result at all'), /kept result garbage .*it cannot be drawn/],
    ['short', Buffer.alloc(2), /is too short/],
    [
      'huge-view',
      encodeKept({ id: 'huge-view', ...base, view: { data: Buffer.alloc(3), width: 100_000, height: 100_000 }, pixels: good.pixels }),
      /its view is 100000 x 100000 px/,
    ],
    [
      'few-pixels',
      encodeKept({ id: 'few-pixels', ...base, view: good.view, pixels: new Float32Array(5) }),
      /its input holds 5 values where the model takes 3072/,
    ],
    [
      'bad-top',
      encodeKept({ id: 'bad-top', ...base, top: 99, view: good.view, pixels: good.pixels }),
      /its top class 99 is not one of the model's 10/,
    ],
    ['a-hash', null, /is not a kept result: WRONGTYPE/],
  ];
  for (const [key, value, why] of values) {
    if (value) await client.set(`vitrine:result:${key}`, value);
    else await client.hset(`vitrine:result:${key}`, 'x', 'y');
    for (const format of ['png', 'json']) {
      const r = await app.inject(`/attention/${key}?format=${format}`);
      t.equal(r.statusCode, 410, `${key} (${format}): 410`);
      t.equal(r.json().code, 'VIT_RESULT_UNREADABLE');
      t.match(r.json().message, why);
    }
  }
  // the service still draws
  t.equal((await app.inject(`/attention/${id}`)).headers['content-type'], 'image/png');

  // a cached map of the wrong length (another version, or anyone who can write there)
  await client.hset(`vitrine:maps:${id}`, 'rollout::mean:0', Buffer.alloc(8));
  const r = await app.inject(`/attention/${id}?format=json`);
  t.equal(r.statusCode, 200);
  t.same(r.json().grid, [8, 8]);
  t.equal(r.json().values.flat().length, 64, 'the map made again, one value per patch');
});
