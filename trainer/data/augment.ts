// Turns uint8 CHW images into a normalized float32 batch, with the training augmentations in
// torchvision's order: random crop with zero padding (shift by up to `crop_padding` pixels, as
// RandomCrop(padding=p)), horizontal flip, an automatic policy (RandAugment, TrivialAugmentWide or
// AutoAugment's CIFAR-10 policy, see policies.ts), normalization, random erasing; then, over the whole
// batch, Mixup or CutMix. Targets are one-hot rows, label-smoothed when asked, mixed with the images.

import { type ImageDataset, imageSize } from './dataset.js';
import { AutoAugmenter, type Canvas, type Policy } from './policies.js';
import type { Rng } from '../nn/random.js';
import { normalizationTables } from '../../runtime/pixels.js';

export interface AugmentOptions {
  cropPadding: number; // 0 = no crop
  flip: boolean;
  /** An automatic augmentation policy (default none). */
  policy?: Policy;
  /** RandAugment's ops per image and magnitude bin (0-30): defaults 2 and 9 as torchvision. */
  randaugmentOps?: number;
  randaugmentMagnitude?: number;
  /** Probability of erasing one random rectangle of each image (RandomErasing: area 2-33%, aspect 0.3-3.3, filled with the mean colour). */
  erasing?: number;
  /** Beta(alpha, alpha) for Mixup and CutMix (0 = off); when both are on, CutMix is used with probability `mixSwitch`. */
  mixupAlpha?: number;
  cutmixAlpha?: number;
  /** Probability that a batch is mixed at all. */
  mixProb?: number;
  mixSwitch?: number;
}

export const NO_AUGMENT: AugmentOptions = Object.freeze({ cropPadding: 0, flip: false });

/** Whether targets may be soft (mixed), so that training accuracy counts the larger share. */
export const mixes = (a: AugmentOptions) => ((a.mixupAlpha ?? 0) > 0 || (a.cutmixAlpha ?? 0) > 0) && (a.mixProb ?? 1) > 0;

export interface BatchOptions {
  mean: readonly number[];
  std: readonly number[];
  /** Pixel values are multiplied by this before the mean (default 1/255). */
  rescale?: number;
  numClasses: number;
  labelSmoothing: number;
  augment: AugmentOptions;
}

/** Fills `pixels` (n, C, H, W) and `targets` (n, classes) from the images at `indices`. `flips`, when
 *  given (one per index, 1 = mirrored), decides the flips instead of a draw. */
export function fillBatch(
  d: ImageDataset,
  indices: ArrayLike<number>,
  o: BatchOptions,
  rng: Rng,
  pixels: Float32Array,
  targets: Float32Array,
  flips?: ArrayLike<number>,
): void {
  const { channels: C, height: H, width: W } = d;
  const per = imageSize(d);
  const luts = normalizationTables(o); // as the service normalizes, bit for bit
  const a = o.augment;
  const pad = a.cropPadding;
  const off = o.labelSmoothing / o.numClasses;
  const on = 1 - o.labelSmoothing + off;
  const policy =
    a.policy && a.policy !== 'none'
      ? new AutoAugmenter({ policy: a.policy, ops: a.randaugmentOps ?? 2, magnitude: a.randaugmentMagnitude ?? 9 }, H, W)
      : null;
  const canvas: Canvas = { px: new Uint8Array(per), tmp: new Uint8Array(per), C, H, W };
  targets.fill(off, 0, indices.length * o.numClasses);
  for (let b = 0; b < indices.length; b++) {
    const src = indices[b] * per;
    const dst = b * per;
    const dy = pad > 0 ? rng.int(2 * pad + 1) - pad : 0;
    const dx = pad > 0 ? rng.int(2 * pad + 1) - pad : 0;
    const flip = flips ? flips[b] === 1 : a.flip && rng.next() < 0.5;
    // Crop and flip into bytes (padding is black, as torchvision pads with 0 before normalizing).
    const px = canvas.px;
    for (let c = 0; c < C; c++) {
      for (let y = 0; y < H; y++) {
        const sy = y + dy;
        const row = (c * H + y) * W;
        if (sy < 0 || sy >= H) {
          px.fill(0, row, row + W);
          continue;
        }
        const srow = src + (c * H + sy) * W;
        for (let x = 0; x < W; x++) {
          const sx = (flip ? W - 1 - x : x) + dx;
          px[row + x] = sx >= 0 && sx < W ? d.images[srow + sx] : 0;
        }
      }
    }
    policy?.apply(canvas, rng);
    for (let c = 0; c < C; c++) {
      const lut = luts[c];
      for (let i = c * H * W; i < (c + 1) * H * W; i++) pixels[dst + i] = lut[px[i]];
    }
    if (a.erasing && rng.next() < a.erasing) erase(pixels.subarray(dst, dst + per), C, H, W, rng);
    targets[b * o.numClasses + d.labels[indices[b]]] = on;
  }
  if (mixes(a) && rng.next() < (a.mixProb ?? 1)) mixBatch(pixels, targets, indices.length, o.numClasses, C, H, W, a, rng);
}

/** torchvision's RandomErasing(scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0) on one normalized image: 0 is the mean colour. */
export function erase(img: Float32Array, C: number, H: number, W: number, rng: Rng): boolean {
  const area = H * W;
  const logLo = Math.log(0.3);
  const logHi = Math.log(3.3);
  for (let attempt = 0; attempt < 10; attempt++) {
    const target = area * (0.02 + rng.next() * (0.33 - 0.02));
    const aspect = Math.exp(logLo + rng.next() * (logHi - logLo));
    const h = Math.round(Math.sqrt(target * aspect));
    const w = Math.round(Math.sqrt(target / aspect));
    if (!(h < H && w < W) || h === 0 || w === 0) continue;
    const top = rng.int(H - h + 1);
    const left = rng.int(W - w + 1);
    for (let c = 0; c < C; c++) for (let y = top; y < top + h; y++) img.fill(0, (c * H + y) * W + left, (c * H + y) * W + left + w);
    return true;
  }
  return false;
}

/**
 * Mixup (Zhang et al. 2018) or CutMix (Yun et al. 2019) over the batch as timm's batch mode does: each
 * image is mixed with the image at the mirrored position of the batch, with one lambda ~ Beta(alpha,
 * alpha) for the batch; targets are mixed by the share of each image actually seen.
 */
export function mixBatch(
  pixels: Float32Array,
  targets: Float32Array,
  n: number,
  K: number,
  C: number,
  H: number,
  W: number,
  a: AugmentOptions,
  rng: Rng,
): { kind: 'mixup' | 'cutmix'; lambda: number } {
  const mixup = a.mixupAlpha ?? 0;
  const cutmix = a.cutmixAlpha ?? 0;
  const useCutmix = cutmix > 0 && (mixup <= 0 || rng.next() < (a.mixSwitch ?? 0.5));
  let lambda = rng.beta(useCutmix ? cutmix : mixup, useCutmix ? cutmix : mixup);
  const per = C * H * W;
  const src = pixels.slice(0, n * per);
  const tsrc = targets.slice(0, n * K);
  if (useCutmix) {
    // a box of (1 - lambda) of the area, centred anywhere, clipped; lambda becomes the share left
    const ratio = Math.sqrt(1 - lambda);
    const ch = Math.trunc(H * ratio);
    const cw = Math.trunc(W * ratio);
    const cy = rng.int(H);
    const cx = rng.int(W);
    const y0 = Math.max(0, cy - (ch >> 1));
    const y1 = Math.min(H, cy + (ch >> 1));
    const x0 = Math.max(0, cx - (cw >> 1));
    const x1 = Math.min(W, cx + (cw >> 1));
    lambda = 1 - ((y1 - y0) * (x1 - x0)) / (H * W);
    for (let b = 0; b < n; b++) {
      const other = (n - 1 - b) * per;
      for (let c = 0; c < C; c++) {
        for (let y = y0; y < y1; y++) {
          const row = (c * H + y) * W;
          for (let x = x0; x < x1; x++) pixels[b * per + row + x] = src[other + row + x];
        }
      }
    }
  } else {
    for (let b = 0; b < n; b++) {
      const other = (n - 1 - b) * per;
      for (let i = 0; i < per; i++) pixels[b * per + i] = lambda * src[b * per + i] + (1 - lambda) * src[other + i];
    }
  }
  for (let b = 0; b < n; b++) {
    const other = (n - 1 - b) * K;
    for (let k = 0; k < K; k++) targets[b * K + k] = lambda * tsrc[b * K + k] + (1 - lambda) * tsrc[other + k];
  }
  return { kind: useCutmix ? 'cutmix' : 'mixup', lambda };
}
