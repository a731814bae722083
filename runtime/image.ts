// The image pipeline, the one way bytes become a model's input in training (image folders),
// evaluation (vitrine eval) and serving (/classify, /v2): sniff the format from the bytes; decode with
// sharp (libvips, on its own threads): EXIF orientation applied, alpha flattened onto white, gray and
// CMYK made sRGB, resized to cover the input and centre-cropped (the aspect ratio kept; a Hugging Face
// model is stretched with its processor's kernel instead, fit 'fill'); then normalized to CHW floats
// (pixels.ts). With area resampling (the default) the image is first resized to a view k times the
// input (up to 256 px, what heatmaps are drawn over) and the input is the view's k x k block means.
// A plain PNG that already has the input's size skips sharp (png.ts): the same pixels, a fraction of
// the cost. This module is the only one that imports sharp.

import sharp from 'sharp';
import { type Geometry, type ImageSpec, boxDownsample, normalize } from './pixels.js';
import { decodePlainPng } from './png.js';
import { coverGeometry, cropRgb, resizeLikePillow } from './resample.js';
import type { Resample } from './model-config.js';

export const SNIFFED = Object.freeze(['jpeg', 'png', 'gif', 'webp', 'avif', 'heif', 'tiff'] as const);
export type ImageFormat = (typeof SNIFFED)[number];

/** Why an image was refused: not an image we decode, unreadable, or over the pixel limit. */
export class ImageError extends Error {
  constructor(
    readonly kind: 'unsupported' | 'unreadable' | 'too-large' | 'timeout',
    message: string,
  ) {
    super(message);
  }
}

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
  if (
    b.length >= 4 &&
    ((b[0] === 0x49 && b[1] === 0x49 && b[2] === 0x2a && b[3] === 0) || (b[0] === 0x4d && b[1] === 0x4d && b[2] === 0 && b[3] === 0x2a))
  )
    return 'tiff';
  return null;
}

export interface DecodedImage {
  format: ImageFormat;
  /** Size of the image after EXIF orientation. */
  original: { width: number; height: number };
  /** The model input's pixels: RGB bytes (HWC), spec.width x spec.height. */
  input: Buffer;
  /** The cropped image as RGB bytes (HWC), what heatmaps are drawn over (the input, or k times it). */
  view: { data: Buffer; width: number; height: number };
}

export interface PreparedImage extends DecodedImage {
  /** (C, H, W) normalized. */
  pixels: Float32Array;
}

export interface DecodeOptions {
  /** Images with more pixels are refused (too-large). */
  maxPixels: number;
  /** Runs the decode proper (e.g. through a gate that bounds decodes at once); default: at once. */
  schedule?: <T>(decode: () => Promise<T>) => Promise<T>;
  /** Seconds the decode proper may take once started (sharp stops it past them), asked when it
   *  starts; 0 or absent: no limit. */
  timeoutS?: () => number;
}

const VIEW_MAX = 256;

// NOTE: many small images, each on its own libuv thread: one libvips thread per image and no
// operation cache cost less than the defaults (a thread per core per image, a cache sized for
// repeated large images). Measured here with a 32x32 PNG at concurrency 32: 604 -> 671 requests/s.
sharp.concurrency(1);
sharp.cache(false);

/** Bytes -> the model input's pixels and the view, by the fast path or sharp's. */
export async function decodeImage(bytes: Buffer, s: Geometry, o: DecodeOptions): Promise<DecodedImage> {
  const format = sniffImage(bytes);
  if (!format) throw new ImageError('unsupported', `the bytes are not an image in a supported format (${SNIFFED.join(', ')})`);
  const plain = format === 'png' && s.width * s.height <= o.maxPixels ? decodePlainPng(bytes, s.width, s.height) : null;
  if (plain) {
    const size = { width: plain.width, height: plain.height };
    return { format, original: size, input: plain.rgb, view: { data: plain.rgb, ...size } };
  }
  return decodeWithSharp(bytes, format, s, o);
}

/** Bytes -> the normalized model input, the view and what was decoded. */
export async function prepareImage(bytes: Buffer, s: ImageSpec, o: DecodeOptions): Promise<PreparedImage> {
  const d = await decodeImage(bytes, s, o);
  return { ...d, pixels: normalize(d.input, s) };
}

/** The general path: any sniffed format and size, through sharp. */
export async function decodeWithSharp(bytes: Buffer, format: ImageFormat, s: Geometry, o: DecodeOptions): Promise<DecodedImage> {
  let meta: Awaited<ReturnType<ReturnType<typeof sharp>['metadata']>>;
  try {
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (err) {
    throw new ImageError('unreadable', `the ${format} image cannot be read: ${(err as Error).message.split('\n')[0]}`);
  }
  const w0 = meta.width ?? 0;
  const h0 = meta.height ?? 0;
  if (w0 * h0 > o.maxPixels)
    throw new ImageError('too-large', `the image has ${w0}x${h0} = ${w0 * h0} pixels, over the limit of ${o.maxPixels}`);
  const rotated = (meta.orientation ?? 1) >= 5;
  const original = { width: rotated ? h0 : w0, height: rotated ? w0 : h0 };

  // The view keeps more detail than the model input when the image has it (area resampling: the
  // input is then the view's block means; with a kernel, the view is the input).
  const area = (s.resample ?? 'area') === 'area';
  const k = !area
    ? 1
    : Math.max(
        1,
        Math.min(
          Math.floor(VIEW_MAX / Math.max(s.width, s.height)),
          Math.floor(Math.min(original.width / s.width, original.height / s.height)),
        ),
      );
  const view = { width: s.width * k, height: s.height * k };
  // An enlargement is resized here as Pillow resizes (resample.ts); anything else by libvips.
  const fit = s.fit ?? 'cover';
  const resized = fit === 'fill' ? { ...view, left: 0, top: 0 } : coverGeometry(original.width, original.height, view.width, view.height);
  const enlarged = resized.width > original.width || resized.height > original.height;
  const kernel: Exclude<Resample, 'area'> = area ? 'lanczos3' : (s.resample as Exclude<Resample, 'area'>);
  const decoded = sharp(bytes, { limitInputPixels: o.maxPixels, failOn: 'truncated', pages: 1 })
    .rotate()
    .flatten({ background: '#ffffff' })
    .toColourspace('srgb');
  const pipeline = (enlarged ? decoded : decoded.resize(view.width, view.height, { fit, position: 'centre', ...(area ? {} : { kernel }) }))
    .removeAlpha()
    .raw();
  const decode = () =>
    pipeline
      .timeout({ seconds: o.timeoutS?.() ?? 0 })
      .toBuffer()
      .then((rgb) => {
        if (!enlarged) return rgb;
        if (rgb.length !== original.width * original.height * 3)
          throw new ImageError('unreadable', `the ${format} image decoded to an unexpected size`);
        const big = resizeLikePillow(rgb, original.width, original.height, resized.width, resized.height, kernel);
        const rgbOut = fit === 'fill' ? big : cropRgb(big, resized.width, resized.left, resized.top, view.width, view.height);
        return Buffer.from(rgbOut.buffer, rgbOut.byteOffset, rgbOut.byteLength); // a view, not a copy
      })
      .catch((err: Error) => {
        if (err instanceof ImageError) throw err;
        const message = err.message.split('\n')[0];
        throw /^timeout: \d+% complete/.test(message)
          ? new ImageError('timeout', `the ${format} image was still being decoded when its time ran out (${message})`)
          : new ImageError('unreadable', `the ${format} image cannot be decoded: ${message}`);
      });
  // The decode proper may wait for a slot (the header read above is cheap and runs freely); what the
  // schedule itself refuses (a full queue, a deadline) passes through as it is.
  const rgb = o.schedule ? await o.schedule(decode) : await decode();
  if (rgb.length !== view.width * view.height * 3) throw new ImageError('unreadable', `the ${format} image decoded to an unexpected size`);
  return { format, original, input: k === 1 ? rgb : boxDownsample(rgb, view.width, view.height, k), view: { data: rgb, ...view } };
}

export interface Raster {
  data: Buffer;
  width: number;
  height: number;
  channels: number;
}

/** An image file's pixels as they are stored (no orientation, no resizing; alpha dropped). */
export async function readPixels(bytes: Buffer): Promise<Raster> {
  const { data, info } = await sharp(bytes, { limitInputPixels: false }).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: info.channels };
}

/** Raw RGB pixels as a PNG file. */
export function encodePng(rgb: Buffer, width: number, height: number): Promise<Buffer> {
  return sharp(rgb, { raw: { width, height, channels: 3 } })
    .png()
    .toBuffer();
}
