// Turns uint8 CHW images into a normalized float32 batch, with the training augmentations: random crop
// with zero padding (shift by up to `crop_padding` pixels, as torchvision's RandomCrop(padding=p)) and
// horizontal flip. Targets are one-hot rows, label-smoothed when asked.

import { ImageDataset, imageSize } from './dataset.js';
import { Rng } from '../nn/random.js';

export interface AugmentOptions {
  cropPadding: number; // 0 = no crop
  flip: boolean;
}

export const NO_AUGMENT: AugmentOptions = Object.freeze({ cropPadding: 0, flip: false });

export interface BatchOptions {
  mean: readonly number[];
  std: readonly number[];
  numClasses: number;
  labelSmoothing: number;
  augment: AugmentOptions;
}

/** Per channel, the float each byte maps to: (v/255 - mean) / std. */
function lookupTables(d: ImageDataset, o: BatchOptions): Float32Array[] {
  return Array.from({ length: d.channels }, (_, c) => Float32Array.from({ length: 256 }, (_, v) => (v / 255 - o.mean[c]) / o.std[c]));
}

/** Fills `pixels` (n, C, H, W) and `targets` (n, classes) from the images at `indices`. */
export function fillBatch(d: ImageDataset, indices: ArrayLike<number>, o: BatchOptions, rng: Rng, pixels: Float32Array, targets: Float32Array): void {
  const { channels: C, height: H, width: W } = d;
  const per = imageSize(d);
  const luts = lookupTables(d, o);
  const pad = o.augment.cropPadding;
  const off = o.labelSmoothing / o.numClasses;
  const on = 1 - o.labelSmoothing + off;
  targets.fill(off, 0, indices.length * o.numClasses);
  for (let b = 0; b < indices.length; b++) {
    const src = indices[b] * per;
    const dst = b * per;
    const dy = pad > 0 ? rng.int(2 * pad + 1) - pad : 0;
    const dx = pad > 0 ? rng.int(2 * pad + 1) - pad : 0;
    const flip = o.augment.flip && rng.next() < 0.5;
    for (let c = 0; c < C; c++) {
      const lut = luts[c];
      const zero = lut[0]; // padding is black, as torchvision pads with 0 before normalizing
      for (let y = 0; y < H; y++) {
        const sy = y + dy;
        const row = dst + (c * H + y) * W;
        if (sy < 0 || sy >= H) {
          pixels.fill(zero, row, row + W);
          continue;
        }
        const srow = src + (c * H + sy) * W;
        for (let x = 0; x < W; x++) {
          const sx = (flip ? W - 1 - x : x) + dx;
          pixels[row + x] = sx >= 0 && sx < W ? lut[d.images[srow + sx]] : zero;
        }
      }
    }
    targets[b * o.numClasses + d.labels[indices[b]]] = on;
  }
}
