// From uploaded bytes to the model's input, in three named steps:
//   sniff     the format from the first bytes (not the declared content type);
//   decode    with sharp (libvips on its own threads, off the event loop): EXIF orientation applied,
//             alpha flattened onto white, gray and CMYK made sRGB, then resized to cover the model's
//             input and centre-cropped (the image keeps its aspect ratio; edges beyond the model's
//             aspect are cut); a Hugging Face model is stretched to its input with its processor's
//             kernel instead (fit 'fill'), as its image processor does;
//   normalize HWC bytes -> CHW floats, (v * rescale - mean) / std per channel (rescale 1/255 unless
//             the model's processor says otherwise).
// The cropped RGB image is kept as the "view" that heatmaps are drawn over: the model input itself
// for small uploads, up to 256 px on the longer side for larger ones: k times the input, and the
// input is then the view's k x k block means.
// A plain PNG that already has the model's size skips sharp (png.ts): same pixels, a fraction of the
// cost; everything else goes through sharp.

import sharp from 'sharp';
import type { ModelConfig, Resample } from '../runtime/model-config.js';
import { Errors } from './errors.js';
import type { Gate } from './gate.js';
import { decodePlainPng } from './png.js';

export const SNIFFED = Object.freeze(['jpeg', 'png', 'gif', 'webp', 'avif', 'heif', 'tiff'] as const);
export type ImageFormat = (typeof SNIFFED)[number];

/** The image format from magic bytes, or null when the bytes are no image format we decode. */
export function sniffImage(b: Uint8Array): ImageFormat | null {
  const ascii = (from: number, to: number) => String.fromCharCode(...b.subarray(from, to));
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg';
  if (b.length >= 8 && b[0] === 0x89 && ascii(1, 4) === 'PNG' && b[4] === 0x0d && b[5] === 0x0a) return 'png';
  if (b.length >= 6 && (ascii(0, 6) === 'GIF87a' || ascii(0, 6) === 'GIF89a')) return 'gif';
  if (b.length >= 12 && ascii(0, 4) === 'RIFF' && ascii(8, 12) === 'WEBP') return 'webp';
  if (b.length >= 12 && ascii(4, 8) === 'ftyp') {
    const brand = ascii(8, 12);
    if (brand === 'avif' || brand === 'avis') return 'avif';
    if (['heic', 'heix', 'hevc', 'mif1', 'msf1'].includes(brand)) return 'heif';
  }
  if (b.length >= 4 && ((b[0] === 0x49 && b[1] === 0x49 && b[2] === 0x2a && b[3] === 0) || (b[0] === 0x4d && b[1] === 0x4d && b[2] === 0 && b[3] === 0x2a))) return 'tiff';
  return null;
}

export interface ModelInput {
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

/** What a model takes, from its config: the one place routes derive it. */
export function modelInput(c: ModelConfig): ModelInput {
  const [height, width] = c.image_size;
  return { height, width, mean: c.mean, std: c.std, fit: c.fit, resample: c.resample, rescale: c.rescale };
}

export interface PreparedImage {
  format: ImageFormat;
  /** Size of the upload after EXIF orientation. */
  original: { width: number; height: number };
  /** (C, H, W) normalized. */
  pixels: Float32Array;
  /** The cropped image as RGB bytes (HWC), what heatmaps are drawn over. */
  view: { data: Buffer; width: number; height: number };
}

const VIEW_MAX = 256;

// NOTE: many small images, each on its own libuv thread: one libvips thread per image and no
// operation cache cost less than the defaults (a thread per core per image, a cache sized for
// repeated large images). Measured here with a 32x32 PNG at concurrency 32: 604 -> 671 requests/s.
sharp.concurrency(1);
sharp.cache(false);

export async function prepareImage(bytes: Buffer, m: ModelInput, maxPixels: number, gate?: Gate): Promise<PreparedImage> {
  const format = sniffImage(bytes);
  if (!format) throw Errors.unsupportedMedia(`the body is not an image in a supported format (${SNIFFED.join(', ')})`);
  const plain = format === 'png' && m.width * m.height <= maxPixels ? decodePlainPng(bytes, m.width, m.height) : null;
  if (plain) {
    const size = { width: plain.width, height: plain.height };
    return { format, original: size, pixels: normalize(plain.rgb, m), view: { data: plain.rgb, ...size } };
  }
  return decodeWithSharp(bytes, format, m, maxPixels, gate);
}

/** The general path: any sniffed format and size, through sharp. */
export async function decodeWithSharp(bytes: Buffer, format: ImageFormat, m: ModelInput, maxPixels: number, gate?: Gate): Promise<PreparedImage> {
  let meta: Awaited<ReturnType<ReturnType<typeof sharp>['metadata']>>;
  try {
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (err) {
    throw Errors.badImage(`the ${format} image cannot be read: ${(err as Error).message.split('\n')[0]}`);
  }
  const w0 = meta.width ?? 0;
  const h0 = meta.height ?? 0;
  if (w0 * h0 > maxPixels) throw Errors.tooLarge(`the image has ${w0}x${h0} = ${w0 * h0} pixels, over the limit of ${maxPixels}`);
  const rotated = (meta.orientation ?? 1) >= 5;
  const original = { width: rotated ? h0 : w0, height: rotated ? w0 : h0 };

  // The view keeps more detail than the model input when the upload has it (area resampling: the
  // input is then the view's block means; with a kernel, the view is the input).
  const area = (m.resample ?? 'area') === 'area';
  const k = !area ? 1 : Math.max(1, Math.min(Math.floor(VIEW_MAX / Math.max(m.width, m.height)), Math.floor(Math.min(original.width / m.width, original.height / m.height))));
  const view = { width: m.width * k, height: m.height * k };
  let rgb: Buffer;
  try {
    const pipeline = sharp(bytes, { limitInputPixels: maxPixels, failOn: 'truncated', pages: 1 })
      .rotate()
      .flatten({ background: '#ffffff' })
      .toColourspace('srgb')
      .resize(view.width, view.height, { fit: m.fit ?? 'cover', position: 'centre', ...(area ? {} : { kernel: m.resample as Exclude<typeof m.resample, 'area'> }) })
      .removeAlpha()
      .raw();
    // The decode proper waits for a slot (the header read above is cheap and runs freely).
    rgb = gate ? await gate.run(() => pipeline.toBuffer()) : await pipeline.toBuffer();
  } catch (err) {
    throw Errors.badImage(`the ${format} image cannot be decoded: ${(err as Error).message.split('\n')[0]}`);
  }
  if (rgb.length !== view.width * view.height * 3) throw Errors.badImage(`the ${format} image decoded to an unexpected size`);
  const input = k === 1 ? rgb : boxDownsample(rgb, view.width, view.height, k);
  return { format, original, pixels: normalize(input, m), view: { data: rgb, ...view } };
}

/**
 * RGB bytes (HWC) shrunk by an integer factor k: each output pixel is the rounded mean of its k x k
 * block (area averaging, exact at integer factors). The view is k times the model input, so this is
 * the model input: one pass over the view here instead of a second sharp pipeline (another libuv hop
 * and libvips resize).
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

/** HWC bytes -> CHW floats with the model's rescale, mean and std. */
export function normalize(hwc: Uint8Array, m: ModelInput): Float32Array {
  const plane = m.width * m.height;
  const C = m.mean.length;
  const out = new Float32Array(C * plane);
  for (let c = 0; c < C; c++) {
    const scale = m.rescale === undefined ? 1 / (255 * m.std[c]) : m.rescale / m.std[c];
    const shift = m.mean[c] / m.std[c];
    for (let p = 0; p < plane; p++) out[c * plane + p] = hwc[p * 3 + (c % 3)] * scale - shift;
  }
  return out;
}
