// The pure half of the image pipeline (image.ts decodes; this turns bytes into what a model takes),
// with no native module, so that the trainer's batch worker can use it: how a model's input is
// described, block means, and the one normalization every path uses (one map per channel, as tables
// for the trainer's batches and as arithmetic for an image, the same float32 for a byte either way,
// so that it is the same in training, evaluation and serving, bit for bit).

import type { ModelConfig, Resample } from './model-config.js';

/** What a model takes: its input size, its normalization, and how images are fitted to it. */
export interface ImageSpec {
  height: number;
  width: number;
  mean: readonly number[];
  std: readonly number[];
  /** 'cover' (default): keep the aspect ratio and cut the edges; 'fill': stretch to the input. */
  fit?: 'cover' | 'fill';
  /** 'area' (default): block means of a larger view; otherwise sharp's kernel, straight to the input. */
  resample?: Resample;
  /** Pixel values are multiplied by this before the mean (default 1/255). */
  rescale?: number;
}

/** How an image is fitted to the input (what decoding needs of a spec). */
export type Geometry = Pick<ImageSpec, 'width' | 'height' | 'fit' | 'resample'>;

/** An image as a model takes it: its normalized CHW floats (an Open Inference Protocol FP32 tensor, a
 *  tensor given to the API), or the RGB bytes (HWC) of the model's input size that a decode makes,
 *  normalized where the batch is made (the server's inference worker: normalizeInto, the same floats):
 *  a fourth of the memory to keep and to pass, and no fresh float array on the service's event loop. */
export type ModelInput = Float32Array | Uint8Array;

/** How many values an input of this kind holds for a model of [channels, height, width]: CHW floats, or
 *  RGB bytes whatever the channels (normalize reads channel c from byte c mod 3). */
export function modelInputLength(input: ModelInput, [channels, height, width]: readonly number[]): number {
  return input instanceof Float32Array ? channels * height * width : height * width * 3;
}

/** What normalizing an image needs of a spec: the input's size and each channel's map. */
export type Normalization = Pick<ImageSpec, 'width' | 'height' | 'mean' | 'std' | 'rescale'>;

/** What a model takes, from its config. */
export function imageSpec(c: ModelConfig): ImageSpec {
  const [height, width] = c.image_size;
  return { height, width, mean: c.mean, std: c.std, fit: c.fit, resample: c.resample, rescale: c.rescale };
}

/** Channel c's map from a byte: v * scale - shift (in double, then stored as float32). */
function affine(s: Pick<ImageSpec, 'mean' | 'std' | 'rescale'>, c: number): { scale: number; shift: number } {
  return { scale: (s.rescale ?? 1 / 255) / s.std[c], shift: s.mean[c] / s.std[c] };
}

/** Per channel, the float each byte value becomes (for the trainer, whose bytes pass augmentation first). */
export function normalizationTables(s: Pick<ImageSpec, 'mean' | 'std' | 'rescale'>): Float32Array[] {
  return s.mean.map((_, c) => {
    const { scale, shift } = affine(s, c);
    return Float32Array.from({ length: 256 }, (_, v) => v * scale - shift);
  });
}

/**
 * RGB bytes (HWC) -> normalized CHW floats (channel c reads byte c mod 3): the same arithmetic as
 * the tables, so the same float32 for every byte, without building tables per image.
 */
export function normalize(hwc: Uint8Array, s: ImageSpec): Float32Array {
  const out = new Float32Array(s.mean.length * s.width * s.height);
  normalizeInto(hwc, s, out, 0);
  return out;
}

/** normalize's floats written into `out` from `offset` on (an image's place in a batch). */
export function normalizeInto(hwc: Uint8Array, s: Normalization, out: Float32Array, offset: number): void {
  const plane = s.width * s.height;
  for (let c = 0; c < s.mean.length; c++) {
    const { scale, shift } = affine(s, c);
    const at = offset + c * plane;
    for (let p = 0; p < plane; p++) out[at + p] = hwc[p * 3 + (c % 3)] * scale - shift;
  }
}

/** The left-right mirror of RGB bytes (HWC), width x height. */
export function mirrorRgb(hwc: Uint8Array, width: number, height: number): Uint8Array {
  const out = new Uint8Array(hwc.length);
  for (let y = 0; y < height; y++) {
    const row = y * width * 3;
    for (let x = 0; x < width; x++) {
      const from = row + (width - 1 - x) * 3;
      const to = row + x * 3;
      out[to] = hwc[from];
      out[to + 1] = hwc[from + 1];
      out[to + 2] = hwc[from + 2];
    }
  }
  return out;
}

/** RGB bytes (HWC) -> CHW bytes, as data sets hold images. */
export function toChw(hwc: Uint8Array, width: number, height: number): Uint8Array {
  const plane = width * height;
  const out = new Uint8Array(3 * plane);
  for (let p = 0; p < plane; p++) for (let c = 0; c < 3; c++) out[c * plane + p] = hwc[p * 3 + c];
  return out;
}

/**
 * RGB bytes (HWC) shrunk by an integer factor k: each output pixel is the rounded mean of its k x k
 * block (area averaging, exact at integer factors). The view is k times the model input, so this is
 * the model input: one pass over the view instead of a second libvips resize.
 */
export function boxDownsample(rgb: Uint8Array, width: number, height: number, k: number): Buffer {
  const w = Math.floor(width / k);
  const h = Math.floor(height / k);
  const out = Buffer.allocUnsafe(w * h * 3);
  const sums = new Uint32Array(w * 3);
  const half = (k * k) >> 1;
  const area = k * k;
  for (let y = 0; y < h; y++) {
    sums.fill(0);
    for (let dy = 0; dy < k; dy++) {
      const row = (y * k + dy) * width * 3;
      for (let x = 0; x < w; x++) {
        const o = x * 3;
        let p = row + x * k * 3;
        for (let dx = 0; dx < k; dx++, p += 3) {
          sums[o] += rgb[p];
          sums[o + 1] += rgb[p + 1];
          sums[o + 2] += rgb[p + 2];
        }
      }
    }
    for (let i = 0; i < w * 3; i++) out[y * w * 3 + i] = Math.floor((sums[i] + half) / area);
  }
  return out;
}

/** Writes the left-right mirror of n CHW images from `src` into `dst`. */
export function mirrorImages(src: Float32Array, dst: Float32Array, n: number, channels: number, height: number, width: number): void {
  for (let row = 0; row < n * channels * height; row++) {
    const o = row * width;
    for (let x = 0; x < width; x++) dst[o + x] = src[o + width - 1 - x];
  }
}
