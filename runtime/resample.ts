// Resizing as Pillow's Image.resize does it (what a Hugging Face processor and torchvision apply to
// the images a model was trained on), for enlargements: libvips enlarges with other sample positions
// (a 27x16 image stretched to 32x32 with its linear kernel lies 9.5/255 on average from Pillow's
// bilinear; test/runtime/resize.test.ts), so an image smaller than a model's input goes through this
// instead. Separable, horizontal pass first, each output pixel the filter's weights over the source
// pixels around its centre ((x + 0.5) * scale, the support widened by the scale when reducing), the
// weights in Pillow's 22-bit fixed point and the passes rounded to bytes as Pillow rounds them.

import type { Resample } from './model-config.js';

const PRECISION_BITS = 32 - 8 - 2;

type Filter = { support: number; at: (x: number) => number };

const sinc = (x: number) => (x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x));
const FILTERS: Record<Exclude<Resample, 'nearest' | 'area'>, Filter> = {
  linear: { support: 1, at: (x) => (Math.abs(x) < 1 ? 1 - Math.abs(x) : 0) },
  cubic: {
    support: 2,
    at: (x) => {
      const a = -0.5;
      const t = Math.abs(x);
      if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
      if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
      return 0;
    },
  },
  lanczos3: { support: 3, at: (x) => (x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0) },
};

/** Per output pixel of an axis of `outSize` (source `inSize`): the first source pixel and the fixed-point weights. */
function coefficients(inSize: number, outSize: number, filter: Filter): { first: Int32Array; count: Int32Array; weights: Int32Array[] } {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filter.support * filterScale;
  const first = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights: Int32Array[] = [];
  for (let o = 0; o < outSize; o++) {
    const centre = (o + 0.5) * scale;
    const lo = Math.max(0, Math.trunc(centre - support + 0.5));
    const hi = Math.min(inSize, Math.trunc(centre + support + 0.5));
    const w = Array.from({ length: hi - lo }, (_, k) => filter.at((k + lo - centre + 0.5) / filterScale));
    const total = w.reduce((a, b) => a + b, 0);
    weights.push(
      Int32Array.from(w, (v) => {
        const n = total !== 0 ? v / total : v;
        return Math.trunc(n < 0 ? -0.5 + n * (1 << PRECISION_BITS) : 0.5 + n * (1 << PRECISION_BITS));
      }),
    );
    first[o] = lo;
    count[o] = hi - lo;
  }
  return { first, count, weights };
}

const ONE = 2 ** PRECISION_BITS;
const HALF = 2 ** (PRECISION_BITS - 1);
const clip8 = (v: number) => {
  const r = Math.floor(v / ONE); // Pillow's arithmetic shift
  return r < 0 ? 0 : r > 255 ? 255 : r;
};

/** RGB bytes (width x height) resized to outWidth x outHeight with Pillow's filter for `resample`. */
export function resizeLikePillow(
  rgb: Uint8Array,
  width: number,
  height: number,
  outWidth: number,
  outHeight: number,
  resample: Exclude<Resample, 'area'>,
): Uint8Array {
  if (resample === 'nearest') {
    // Pillow's ImagingScaleAffine: the position starts at half a step and grows by the step, added up
    // (so that the rounding of the sum picks the same pixels at exact halfway points)
    const positions = (inSize: number, outSize: number) => {
      const step = inSize / outSize;
      const at = new Int32Array(outSize);
      let pos = step * 0.5;
      for (let o = 0; o < outSize; o++, pos += step) at[o] = Math.min(inSize - 1, Math.trunc(pos));
      return at;
    };
    const xs = positions(width, outWidth);
    const ys = positions(height, outHeight);
    const out = new Uint8Array(outWidth * outHeight * 3);
    for (let y = 0; y < outHeight; y++)
      for (let x = 0; x < outWidth; x++) {
        const from = (ys[y] * width + xs[x]) * 3;
        const to = (y * outWidth + x) * 3;
        out[to] = rgb[from];
        out[to + 1] = rgb[from + 1];
        out[to + 2] = rgb[from + 2];
      }
    return out;
  }
  const filter = FILTERS[resample];
  let src = rgb;
  let w = width;
  if (outWidth !== width) {
    const h = coefficients(width, outWidth, filter);
    const tmp = new Uint8Array(outWidth * height * 3);
    for (let y = 0; y < height; y++)
      for (let x = 0; x < outWidth; x++) {
        const k = h.weights[x];
        const base = (y * width + h.first[x]) * 3;
        for (let c = 0; c < 3; c++) {
          let s = HALF;
          for (let i = 0; i < h.count[x]; i++) s += src[base + i * 3 + c] * k[i];
          tmp[(y * outWidth + x) * 3 + c] = clip8(s);
        }
      }
    src = tmp;
    w = outWidth;
  }
  if (outHeight === height) return src === rgb ? Uint8Array.from(rgb) : src;
  const v = coefficients(height, outHeight, filter);
  const row = w * 3;
  const out = new Uint8Array(row * outHeight);
  const acc = new Float64Array(row);
  for (let y = 0; y < outHeight; y++) {
    // a row at a time, tap by tap: each source row is read in order
    acc.fill(HALF);
    const k = v.weights[y];
    for (let i = 0; i < v.count[y]; i++) {
      const weight = k[i];
      const from = (v.first[y] + i) * row;
      for (let j = 0; j < row; j++) acc[j] += src[from + j] * weight;
    }
    const at = y * row;
    for (let j = 0; j < row; j++) out[at + j] = clip8(acc[j]);
  }
  return out;
}

/** The size an image is resized to before the centre is cut for `fit: 'cover'` (aspect kept, the
 *  input covered), and where the cut starts; an odd margin leaves its extra pixel before the cut. */
export function coverGeometry(
  width: number,
  height: number,
  outWidth: number,
  outHeight: number,
): { width: number; height: number; left: number; top: number } {
  const scale = Math.max(outWidth / width, outHeight / height);
  const rw = Math.max(outWidth, Math.round(width * scale));
  const rh = Math.max(outHeight, Math.round(height * scale));
  return { width: rw, height: rh, left: Math.floor((rw - outWidth) / 2 + 0.5), top: Math.floor((rh - outHeight) / 2 + 0.5) };
}

/** Cuts a width x height window at (left, top) out of RGB bytes of `fullWidth` columns. */
export function cropRgb(rgb: Uint8Array, fullWidth: number, left: number, top: number, width: number, height: number): Uint8Array {
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++)
    out.set(rgb.subarray(((top + y) * fullWidth + left) * 3, ((top + y) * fullWidth + left + width) * 3), y * width * 3);
  return out;
}
