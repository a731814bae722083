// A fast path for the commonest upload of all: a small PNG that already has the model's input size
// (a 32x32 CIFAR-10 image). sharp's per-image cost (a libvips pipeline, a hop to a libuv thread and
// back, twice: metadata, then pixels) is ~830 us of CPU for such an image; this path takes ~46 us on
// the event loop, normalization included (zlib's inflate plus one pass over the rows; bench:decode).
//
// It returns exactly the pixels sharp's path in image.ts returns (tested pixel for pixel against
// sharp over every colour type, bit depth and filter), or null, and then sharp decodes the image as
// usual. Null means anything outside the plain case: another size, interlacing, 16-bit samples, a
// colour profile, gamma or chromaticities, EXIF, an unknown chunk, a bad CRC, a short or overlong
// image stream. So errors and their messages stay sharp's, and nothing is decoded differently.

import { crc32, deflateSync, inflateSync } from 'node:zlib';

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
/** Ancillary chunks that do not change the pixels sharp returns (sRGB is what sharp assumes anyway). */
const HARMLESS = new Set(['tEXt', 'zTXt', 'iTXt', 'tIME', 'pHYs', 'sRGB', 'bKGD', 'sBIT', 'hIST', 'sPLT']);
/** Channels per colour type: gray, -, RGB, palette, gray+alpha, -, RGBA. */
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

export interface DecodedPng {
  width: number;
  height: number;
  /** RGB bytes, row-major, alpha flattened onto white. */
  rgb: Buffer;
}

/** value*alpha over white, as libvips' flatten rounds it (floor). */
const over = (v: number, a: number) => Math.floor((v * a + 255 * (255 - a)) / 255);

/** The RGB pixels of a plain 8-bit-or-less, non-interlaced PNG of exactly width x height, or null. */
export function decodePlainPng(b: Buffer, width: number, height: number): DecodedPng | null {
  if (b.length < 8 + 25 + 12 || !b.subarray(0, 8).equals(SIGNATURE)) return null;
  let at = 8;
  let ihdr: Buffer | null = null;
  let plte: Buffer | null = null;
  let trns: Buffer | null = null;
  const idat: Buffer[] = [];
  let ended = false;
  while (at + 12 <= b.length) {
    const len = b.readUInt32BE(at);
    if (len > 0x7fffffff || at + 12 + len > b.length) return null;
    const type = b.toString('latin1', at + 4, at + 8);
    const data = b.subarray(at + 8, at + 8 + len);
    if (crc32(data, crc32(b.subarray(at + 4, at + 8))) !== b.readUInt32BE(at + 8 + len)) return null;
    at += 12 + len;
    if (type === 'IHDR') {
      if (ihdr || len !== 13) return null;
      ihdr = data;
    } else if (!ihdr) return null;
    else if (type === 'IDAT') idat.push(data);
    else if (type === 'PLTE') plte = data;
    else if (type === 'tRNS') trns = data;
    else if (type === 'IEND') {
      ended = true;
      break;
    } else if (!HARMLESS.has(type)) return null;
  }
  if (!ihdr || !ended || idat.length === 0) return null;
  const w = ihdr.readUInt32BE(0);
  const h = ihdr.readUInt32BE(4);
  const depth = ihdr[8];
  const colour = ihdr[9];
  const channels = CHANNELS[colour];
  if (w !== width || h !== height || !channels || ihdr[10] !== 0 || ihdr[11] !== 0 || ihdr[12] !== 0) return null;
  if (depth > 8 || ![1, 2, 4, 8].includes(depth) || (colour !== 0 && colour !== 3 && depth !== 8)) return null;
  if (colour === 3 && (!plte || plte.length % 3 !== 0 || plte.length === 0)) return null;

  const bits = channels * depth;
  const rowBytes = Math.ceil((w * bits) / 8);
  const bpp = Math.max(1, bits >> 3);
  const expected = h * (rowBytes + 1);
  let raw: Buffer;
  try {
    raw = inflateSync(idat.length === 1 ? idat[0] : Buffer.concat(idat), { maxOutputLength: expected });
  } catch {
    return null; // corrupt, or more data than the header promises: sharp will say which
  }
  if (raw.length !== expected) return null;

  // Undo the row filters in place (each row: a filter byte, then rowBytes bytes); a loop per filter.
  for (let y = 0; y < h; y++) {
    const start = y * (rowBytes + 1);
    const filter = raw[start];
    const row = start + 1;
    const prev = row - rowBytes - 1; // the row above (y > 0)
    if (filter > 4) return null;
    if (filter === 1) {
      for (let i = bpp; i < rowBytes; i++) raw[row + i] = (raw[row + i] + raw[row + i - bpp]) & 0xff;
    } else if (filter === 2) {
      if (y > 0) for (let i = 0; i < rowBytes; i++) raw[row + i] = (raw[row + i] + raw[prev + i]) & 0xff;
    } else if (filter === 3) {
      for (let i = 0; i < rowBytes; i++) {
        const left = i >= bpp ? raw[row + i - bpp] : 0;
        const up = y > 0 ? raw[prev + i] : 0;
        raw[row + i] = (raw[row + i] + ((left + up) >> 1)) & 0xff;
      }
    } else if (filter === 4) {
      for (let i = 0; i < rowBytes; i++) {
        const left = i >= bpp ? raw[row + i - bpp] : 0;
        const up = y > 0 ? raw[prev + i] : 0;
        const upLeft = y > 0 && i >= bpp ? raw[prev + i - bpp] : 0;
        const p = left + up - upLeft;
        const pa = Math.abs(p - left);
        const pb = Math.abs(p - up);
        const pc = Math.abs(p - upLeft);
        raw[row + i] = (raw[row + i] + (pa <= pb && pa <= pc ? left : pb <= pc ? up : upLeft)) & 0xff;
      }
    }
  }

  if (colour === 2 && !trns) {
    // Plain RGB: the rows are the pixels.
    const rgb = Buffer.allocUnsafe(w * h * 3);
    for (let y = 0; y < h; y++) raw.copy(rgb, y * rowBytes, y * (rowBytes + 1) + 1, (y + 1) * (rowBytes + 1));
    return { width: w, height: h, rgb };
  }
  const rgb = Buffer.allocUnsafe(w * h * 3);
  const mask = (1 << depth) - 1;
  const scale = 255 / mask;
  // tRNS for gray and RGB names one sample value (16 bits, in the image's depth) that is transparent.
  const key = trns && colour === 0 && trns.length >= 2 ? trns.readUInt16BE(0) : -1;
  const keyRgb = trns && colour === 2 && trns.length >= 6 ? [trns.readUInt16BE(0), trns.readUInt16BE(2), trns.readUInt16BE(4)] : null;
  const entries = plte ? plte.length / 3 : 0;
  for (let y = 0; y < h; y++) {
    const row = y * (rowBytes + 1) + 1;
    for (let x = 0; x < w; x++) {
      const o = (y * w + x) * 3;
      if (colour === 0 || colour === 3) {
        const sample = depth === 8 ? raw[row + x] : (raw[row + ((x * depth) >> 3)] >> (8 - depth - ((x * depth) & 7))) & mask;
        if (colour === 0) {
          const v = sample === key ? 255 : Math.round(sample * scale);
          rgb[o] = rgb[o + 1] = rgb[o + 2] = v;
        } else {
          if (sample >= entries) return null;
          const a = trns && sample < trns.length ? trns[sample] : 255;
          rgb[o] = over(plte![sample * 3], a);
          rgb[o + 1] = over(plte![sample * 3 + 1], a);
          rgb[o + 2] = over(plte![sample * 3 + 2], a);
        }
      } else if (colour === 4) {
        const v = over(raw[row + 2 * x], raw[row + 2 * x + 1]);
        rgb[o] = rgb[o + 1] = rgb[o + 2] = v;
      } else if (colour === 2) {
        const r = raw[row + 3 * x];
        const g = raw[row + 3 * x + 1];
        const bl = raw[row + 3 * x + 2];
        const clear = keyRgb !== null && r === keyRgb[0] && g === keyRgb[1] && bl === keyRgb[2];
        rgb[o] = clear ? 255 : r;
        rgb[o + 1] = clear ? 255 : g;
        rgb[o + 2] = clear ? 255 : bl;
      } else {
        const a = raw[row + 4 * x + 3];
        rgb[o] = over(raw[row + 4 * x], a);
        rgb[o + 1] = over(raw[row + 4 * x + 1], a);
        rgb[o + 2] = over(raw[row + 4 * x + 2], a);
      }
    }
  }
  return { width: w, height: h, rgb };
}

/** A chunk: length, type, data, CRC over type and data. */
function chunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'ascii');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(data, crc32(head.subarray(4, 8))), 0);
  return Buffer.concat([head, data, crc]);
}

/**
 * RGB bytes (row-major) as an 8-bit RGB PNG: each row Sub-filtered (the difference from the pixel on
 * its left, which suits smooth images such as heatmaps), deflated at `level` (zlib's 0-9).
 */
export function encodeRgbPng(rgb: Uint8Array, width: number, height: number, level = 3): Buffer {
  const stride = width * 3;
  if (rgb.length !== stride * height) throw new Error(`encodeRgbPng: ${rgb.length} bytes for ${width}x${height} RGB`);
  const filtered = Buffer.alloc((stride + 1) * height);
  for (let y = 0; y < height; y++) {
    const o = y * (stride + 1);
    const r = y * stride;
    filtered[o] = 1; // Sub
    for (let i = 0; i < 3; i++) filtered[o + 1 + i] = rgb[r + i];
    for (let i = 3; i < stride; i++) filtered[o + 1 + i] = (rgb[r + i] - rgb[r + i - 3]) & 0xff;
  }
  return encodeFilteredRgbPng(filtered, width, height, level);
}

/** An 8-bit RGB PNG from its rows already filtered (each row: a filter byte, then width x 3 bytes),
 *  deflated at `level`: for a caller that filters while it makes the pixels (server/drawing/heatmap.ts). */
export function encodeFilteredRgbPng(filtered: Buffer, width: number, height: number, level = 3): Buffer {
  if (filtered.length !== (width * 3 + 1) * height)
    throw new Error(`encodeFilteredRgbPng: ${filtered.length} bytes for ${width}x${height} filtered RGB rows`);
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // RGB
  return Buffer.concat([SIGNATURE, chunk('IHDR', header), chunk('IDAT', deflateSync(filtered, { level })), chunk('IEND', Buffer.alloc(0))]);
}
