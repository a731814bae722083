// The PNG fast path returns exactly what sharp returns, for every colour type, bit depth and row
// filter, and steps aside (null) for everything it does not handle.

import { crc32, deflateSync } from 'node:zlib';
import sharp from 'sharp';
import t from 'tap';
import { decodePlainPng, encodeRgbPng } from '../../runtime/png.js';
import { decodeWithSharp, prepareImage } from '../../runtime/image.js';
import { Rng } from '../../trainer/nn/random.js';
import { testImage } from '../helpers/server.js';

interface PngSpec {
  width: number;
  height: number;
  colour: 0 | 2 | 3 | 4 | 6;
  depth: 1 | 2 | 4 | 8;
  /** Samples, channels per pixel, each below 2^depth. */
  samples: Uint8Array;
  plte?: Buffer;
  trns?: Buffer;
  /** Extra chunks before the image data. */
  extra?: [string, Buffer][];
  /** How many IDAT chunks the stream is cut into. */
  idats?: number;
  interlace?: number;
}

const CHANNELS = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 } as const;

function chunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(data, crc32(Buffer.from(type, 'latin1'))));
  return Buffer.concat([head, data, crc]);
}

/** A PNG written sample by sample, each row with a random filter (so all five are exercised). */
function encodePng(s: PngSpec, rng: Rng): Buffer {
  const ch = CHANNELS[s.colour];
  const rowBytes = Math.ceil((s.width * ch * s.depth) / 8);
  const bpp = Math.max(1, (ch * s.depth) >> 3);
  const rows: Buffer[] = [];
  let prev = Buffer.alloc(rowBytes);
  for (let y = 0; y < s.height; y++) {
    const row = Buffer.alloc(rowBytes);
    for (let i = 0; i < s.width * ch; i++) {
      const v = s.samples[y * s.width * ch + i];
      const bit = i * s.depth;
      row[bit >> 3] |= v << (8 - s.depth - (bit & 7));
    }
    const filter = Math.floor(rng.next() * 5);
    const out = Buffer.alloc(rowBytes + 1);
    out[0] = filter;
    for (let i = 0; i < rowBytes; i++) {
      const left = i >= bpp ? row[i - bpp] : 0;
      const up = prev[i];
      const upLeft = i >= bpp ? prev[i - bpp] : 0;
      const p = left + up - upLeft;
      const pa = Math.abs(p - left);
      const pb = Math.abs(p - up);
      const pc = Math.abs(p - upLeft);
      const paeth = pa <= pb && pa <= pc ? left : pb <= pc ? up : upLeft;
      const pred = [0, left, up, (left + up) >> 1, paeth][filter];
      out[i + 1] = (row[i] - pred) & 0xff;
    }
    rows.push(out);
    prev = row;
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(s.width, 0);
  ihdr.writeUInt32BE(s.height, 4);
  ihdr.set([s.depth, s.colour, 0, 0, s.interlace ?? 0], 8);
  const z = deflateSync(Buffer.concat(rows));
  const n = s.idats ?? 1;
  const cut = Math.ceil(z.length / n);
  const idats = Array.from({ length: n }, (_, i) => chunk('IDAT', z.subarray(i * cut, (i + 1) * cut)));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    ...(s.extra ?? []).map(([type, data]) => chunk(type, data)),
    ...(s.plte ? [chunk('PLTE', s.plte)] : []),
    ...(s.trns ? [chunk('tRNS', s.trns)] : []),
    ...idats,
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

function randomSpec(
  rng: Rng,
  colour: PngSpec['colour'],
  depth: PngSpec['depth'],
  width: number,
  height: number,
  transparent: boolean,
): PngSpec {
  const ch = CHANNELS[colour];
  const max = 1 << depth;
  const samples = new Uint8Array(width * height * ch);
  // Mostly random, with runs of one value so that a tRNS key colour actually occurs.
  for (let i = 0; i < samples.length; i++) samples[i] = rng.next() < 0.2 ? 0 : Math.floor(rng.next() * max);
  const spec: PngSpec = { width, height, colour, depth, samples, idats: 1 + Math.floor(rng.next() * 3) };
  if (colour === 3) {
    const entries = max;
    spec.plte = Buffer.from(Array.from({ length: entries * 3 }, () => Math.floor(rng.next() * 256)));
    if (transparent) spec.trns = Buffer.from(Array.from({ length: Math.max(1, entries - 1) }, () => Math.floor(rng.next() * 256)));
  } else if (transparent && colour === 0) {
    spec.trns = Buffer.from([0, 0]);
  } else if (transparent && colour === 2) {
    spec.trns = Buffer.from([0, 0, 0, 0, 0, 0]);
  }
  if (colour === 2 && transparent) for (let p = 0; p < width * height; p += 7) samples.fill(0, p * 3, p * 3 + 3);
  return spec;
}

const MODEL = (width: number, height: number) => ({ width, height, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });

t.test('png fast path: the same pixels as sharp for every colour type, depth and filter', async (t) => {
  const rng = new Rng(7);
  const cases: [PngSpec['colour'], PngSpec['depth'], boolean][] = [];
  for (const depth of [1, 2, 4, 8] as const) for (const tr of [false, true]) cases.push([0, depth, tr], [3, depth, tr]);
  for (const tr of [false, true]) cases.push([2, 8, tr]);
  cases.push([4, 8, false], [6, 8, false]);
  for (const [colour, depth, transparent] of cases) {
    for (const [w, h] of [
      [32, 32],
      [7, 5],
    ]) {
      const png = encodePng(randomSpec(rng, colour, depth, w, h, transparent), rng);
      const fast = decodePlainPng(png, w, h);
      const label = `colour ${colour}, ${depth}-bit${transparent ? ', tRNS' : ''}, ${w}x${h}`;
      if (!fast) {
        t.fail(`${label}: not taken`);
        continue;
      }
      const slow = await decodeWithSharp(png, 'png', MODEL(w, h), { maxPixels: 1e6 });
      t.ok(fast.rgb.equals(slow.view.data), `${label}: identical to sharp`);
    }
  }
});

t.test('png fast path: taken for the common case, and prepareImage gives the same input either way', async (t) => {
  for (const img of [
    await testImage('png'),
    await sharp(await testImage('png'))
      .png({ palette: true, colours: 16 })
      .toBuffer(),
    await sharp(await testImage('png'))
      .ensureAlpha(0.4)
      .png()
      .toBuffer(),
  ]) {
    t.ok(decodePlainPng(img, 32, 32), 'sharp-written 32x32 PNG decodes on the fast path');
    const a = await prepareImage(img, MODEL(32, 32), { maxPixels: 1e6 });
    const b = await decodeWithSharp(img, 'png', MODEL(32, 32), { maxPixels: 1e6 });
    t.same(a.original, b.original);
    t.ok(a.input.equals(b.input), 'identical model input');
  }
});

t.test('png fast path: anything else goes to sharp', async (t) => {
  const rng = new Rng(3);
  const base = randomSpec(rng, 2, 8, 32, 32, false);
  const ok = encodePng(base, rng);
  t.ok(decodePlainPng(ok, 32, 32), 'control: the plain image is taken');
  t.equal(decodePlainPng(ok, 16, 16), null, 'another size than the model input');
  t.equal(decodePlainPng(encodePng({ ...base, interlace: 1 }, rng), 32, 32), null, 'interlaced');
  t.equal(
    decodePlainPng(
      await sharp(await testImage('png'))
        .toColourspace('rgb16')
        .png()
        .toBuffer(),
      32,
      32,
    ),
    null,
    '16-bit',
  );
  for (const type of ['iCCP', 'gAMA', 'cHRM', 'eXIf', 'zzZZ'])
    t.equal(decodePlainPng(encodePng({ ...base, extra: [[type, Buffer.alloc(8)]] }, rng), 32, 32), null, `a ${type} chunk`);
  t.ok(decodePlainPng(encodePng({ ...base, extra: [['tEXt', Buffer.from('Comment\0hello')]] }, rng), 32, 32), 'a text chunk is harmless');
  const badCrc = Buffer.from(ok);
  badCrc[40] ^= 1;
  t.equal(decodePlainPng(badCrc, 32, 32), null, 'a CRC mismatch');
  t.equal(decodePlainPng(ok.subarray(0, ok.length - 20), 32, 32), null, 'truncated');
  const short = encodePng({ ...base, height: 31, samples: base.samples.subarray(0, 31 * 32 * 3) }, rng);
  const lying = Buffer.from(short);
  lying.writeUInt32BE(32, 16 + 4); // IHDR claims 32 rows; the stream holds 31 (CRC fixed below)
  lying.writeUInt32BE(crc32(lying.subarray(12, 29)), 29);
  t.equal(decodePlainPng(lying, 32, 32), null, 'fewer rows than the header says');
  const palette = randomSpec(rng, 3, 8, 32, 32, false);
  palette.plte = palette.plte!.subarray(0, 30);
  t.equal(decodePlainPng(encodePng(palette, rng), 32, 32), null, 'an index beyond the palette');
});

t.test('encodeRgbPng writes a PNG that sharp (libpng) reads back pixel for pixel, at every level', async (t) => {
  const rng = new Rng(7);
  for (const [w, h] of [
    [1, 1],
    [7, 3],
    [256, 192],
  ]) {
    const rgb = Uint8Array.from({ length: w * h * 3 }, () => Math.floor(rng.next() * 256));
    for (const level of [0, 1, 6, 9]) {
      const png = encodeRgbPng(rgb, w, h, level);
      const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
      t.same([info.width, info.height, info.channels], [w, h, 3]);
      t.ok(Buffer.from(rgb).equals(data), `${w}x${h} at level ${level}`);
      t.same(decodePlainPng(png, w, h)?.rgb, Buffer.from(rgb), 'and the fast path reads it too');
    }
  }
  t.throws(() => encodeRgbPng(new Uint8Array(5), 2, 1), /5 bytes for 2x1 RGB/);
});
