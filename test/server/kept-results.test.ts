// Kept results read from a shared store are checked before anything is drawn: a value that is not
// one, one whose sizes do not fit its model (a 100,000 px view once kept a draw worker busy for 17
// minutes, every other PNG timing out) and a key of another type answer 410; a cached map of the
// wrong length is made again instead of being served as an empty grid; a result an earlier version
// kept (its input as floats, format 1) is still drawn.

import t from 'tap';
import { imageSpec, normalize } from '../../runtime/pixels.js';
import { encodeKept } from '../../server/results/kept-format.js';
import { appOnRedis } from '../helpers/redis.js';
import { testWith } from '../helpers/services.js';
import { multipart, testImage } from '../helpers/server.js';

/** A kept result's encoding with its input's type changed to one no version writes. */
const retyped = (b: Buffer) => Buffer.from(b.toString('latin1').replace('"uint8"', '"int16"'), 'latin1');

/** A kept result as format 1 wrote it: the input as float32 only, its length as `pixels`. */
function formatOne(model: string, top: number, view: { data: Buffer; width: number; height: number }, pixels: Float32Array): Buffer {
  const header = Buffer.from(
    JSON.stringify({
      v: 1,
      model,
      createdAt: Date.now(),
      top,
      view: { width: view.width, height: view.height, bytes: view.data.length },
      pixels: pixels.length,
    }),
  );
  const len = Buffer.alloc(4);
  len.writeUInt32LE(header.length);
  const floats = Buffer.alloc(pixels.length * 4);
  pixels.forEach((v, i) => floats.writeFloatLE(v, i * 4));
  return Buffer.concat([len, header, view.data, floats]);
}

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
      encodeKept({ id: 'huge-view', ...base, view: { data: Buffer.alloc(3), width: 100_000, height: 100_000 }, input: good.input }),
      /its view is 100000 x 100000 px/,
    ],
    [
      'few-pixels',
      encodeKept({ id: 'few-pixels', ...base, view: good.view, input: new Float32Array(5) }),
      /its input holds 5 floats where the model takes 3072/,
    ],
    [
      'few-bytes',
      encodeKept({ id: 'few-bytes', ...base, view: good.view, input: new Uint8Array(5) }),
      /its input holds 5 bytes where the model takes 3072/,
    ],
    [
      'bad-input-type',
      retyped(encodeKept({ id: 'bad-input-type', ...base, view: good.view, input: good.input })),
      /has a malformed header/,
    ],
    [
      'bad-top',
      encodeKept({ id: 'bad-top', ...base, top: 99, view: good.view, input: good.input }),
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

  // a result kept by a version that kept the input as floats (format 1) is still drawn, the same map
  const floats = normalize(good.input as Uint8Array, imageSpec(app.vitrine.model(good.model).config));
  await client.set('vitrine:result:format-1', formatOne(good.model, good.top, good.view, floats));
  const [old, own] = [await app.inject('/attention/format-1?format=json'), await app.inject(`/attention/${id}?format=json`)];
  t.equal(old.statusCode, 200, old.body);
  t.same(old.json().values, own.json().values, 'format 1: the map of the same input');

  // a cached map of the wrong length (another version, or anyone who can write there)
  await client.hset(`vitrine:maps:${id}`, 'rollout::mean:0', Buffer.alloc(8));
  const r = await app.inject(`/attention/${id}?format=json`);
  t.equal(r.statusCode, 200);
  t.same(r.json().grid, [8, 8]);
  t.equal(r.json().values.flat().length, 64, 'the map made again, one value per patch');
});
