// The faithfulness tests that bench/explain.ts (through HTTP) and bench/explain-select.ts (in-process)
// both run over a map per image: Chefer et al.'s perturbation test and RISE's deletion and insertion
// (Petsiuk et al. 2018). Images are normalized CHW floats, n of them; each bench supplies how its model
// scores a batch of perturbed images.

import { argmax } from '../trainer/train/evaluate.js';

export interface Geometry {
  n: number;
  height: number;
  width: number;
  /** Patch side: the map is a rows x cols grid of patches. */
  patch: number;
}

/** What both tests score perturbed images by, from a model's class probabilities ([n, classes]) and
 *  each image's prediction before: the share still predicted so (the perturbation test), and the mean
 *  probability of the predicted class (deletion and insertion). */
export function predictionScores(
  probabilities: (imgs: Float32Array) => Promise<ArrayLike<number>>,
  predicted: ArrayLike<number>,
  classes: number,
) {
  const n = predicted.length;
  return {
    kept: async (imgs: Float32Array) => {
      const p = await probabilities(imgs);
      let same = 0;
      for (let i = 0; i < n; i++) if (argmax(p, i * classes, classes) === predicted[i]) same++;
      return same / n;
    },
    meanProbability: async (imgs: Float32Array) => {
      const p = await probabilities(imgs);
      let sum = 0;
      for (let i = 0; i < n; i++) sum += p[i * classes + predicted[i]];
      return sum / n;
    },
  };
}

/** Masked shares of the patches for the perturbation test, 10% to 90%. */
export const FRACTIONS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];
/** Equal steps of deletion and insertion. */
export const STEPS = 16;

const gridOf = (g: Geometry) => ({ rows: g.height / g.patch, cols: g.width / g.patch, per: 3 * g.height * g.width });

/** Image i's patches by its map, most relevant first (or least). */
export function patchOrder(map: Float32Array, i: number, g: Geometry, most: boolean): number[] {
  const { rows, cols } = gridOf(g);
  const v = map.subarray(i * rows * cols, (i + 1) * rows * cols);
  return Array.from({ length: rows * cols }, (_, p) => p).sort((a, b) => (most ? v[b] - v[a] : v[a] - v[b]));
}

/** Image i's pixels by its map interpolated bilinearly between patch centres, most relevant first
 *  (ties: the grid's order). */
export function pixelOrder(map: Float32Array, i: number, g: Geometry): number[] {
  const { rows, cols } = gridOf(g);
  const { height: H, width: W, patch: P } = g;
  const v = map.subarray(i * rows * cols, (i + 1) * rows * cols);
  const at = (r: number, c: number) => v[Math.min(rows - 1, Math.max(0, r)) * cols + Math.min(cols - 1, Math.max(0, c))];
  const score = new Float64Array(H * W);
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++) {
      const fy = (y + 0.5) / P - 0.5;
      const fx = (x + 0.5) / P - 0.5;
      const r0 = Math.floor(fy);
      const c0 = Math.floor(fx);
      const dy = fy - r0;
      const dx = fx - c0;
      score[y * W + x] =
        (1 - dy) * ((1 - dx) * at(r0, c0) + dx * at(r0, c0 + 1)) + dy * ((1 - dx) * at(r0 + 1, c0) + dx * at(r0 + 1, c0 + 1));
    }
  return Array.from({ length: H * W }, (_, p) => p).sort((a, b) => score[b] - score[a] || a - b);
}

/** Patch p of image i in `dst` set from `src`, or to 0 (the mean colour after normalization). */
function copyPatch(dst: Float32Array, src: Float32Array | null, i: number, p: number, g: Geometry): void {
  const { cols, per } = gridOf(g);
  const { height: H, width: W, patch: P } = g;
  const r0 = Math.floor(p / cols) * P;
  const c0 = (p % cols) * P;
  for (let c = 0; c < 3; c++)
    for (let y = r0; y < r0 + P; y++)
      for (let k = 0; k < P; k++) {
        const o = i * per + (c * H + y) * W + c0 + k;
        dst[o] = src ? src[o] : 0;
      }
}

/** Pixel q of image i in `dst` set from `src`, or to 0. */
function copyPixel(dst: Float32Array, src: Float32Array | null, i: number, q: number, g: Geometry): void {
  const { per } = gridOf(g);
  for (let c = 0; c < 3; c++) {
    const o = i * per + c * g.height * g.width + q;
    dst[o] = src ? src[o] : 0;
  }
}

/** The images blurred as RISE's insertion starts: a Gaussian kernel of 11 taps, sigma 5, separable, zero-padded. */
export function blurred(x: Float32Array, g: Geometry): Float32Array {
  const { height: H, width: W } = g;
  const half = 5;
  const k1 = Array.from({ length: 11 }, (_, i) => Math.exp(-((i - half) ** 2) / 50));
  const z = k1.reduce((a, b) => a + b, 0);
  const k = k1.map((v) => v / z);
  const out = new Float32Array(x.length);
  const tmp = new Float64Array(H * W);
  for (let img = 0; img < g.n * 3; img++) {
    const o = img * H * W;
    for (let y = 0; y < H; y++)
      for (let xx = 0; xx < W; xx++) {
        let s = 0;
        for (let j = 0; j < 11; j++) {
          const q = xx + j - half;
          if (q >= 0 && q < W) s += k[j] * x[o + y * W + q];
        }
        tmp[y * W + xx] = s;
      }
    for (let y = 0; y < H; y++)
      for (let xx = 0; xx < W; xx++) {
        let s = 0;
        for (let j = 0; j < 11; j++) {
          const q = y + j - half;
          if (q >= 0 && q < H) s += k[j] * tmp[q * W + xx];
        }
        out[o + y * W + xx] = s;
      }
  }
  return out;
}

/**
 * The perturbation test: patches masked with the mean colour in `orders` (per image), 10% to 90% of
 * them; `kept` gives the share of images still predicted as before. The area under that curve over
 * 10-90%, in percent of the span (trapezoids).
 */
export async function perturbationArea(
  x: Float32Array,
  orders: number[][],
  g: Geometry,
  kept: (imgs: Float32Array) => Promise<number>,
): Promise<number> {
  const patches = (g.height / g.patch) * (g.width / g.patch);
  const ys: number[] = [];
  for (const f of FRACTIONS) {
    const k = Math.round(f * patches);
    const img = x.slice();
    for (let i = 0; i < g.n; i++) for (const p of orders[i].slice(0, k)) copyPatch(img, null, i, p, g);
    ys.push(await kept(img));
  }
  let a = 0;
  for (let i = 1; i < ys.length; i++) a += ((ys[i] + ys[i - 1]) / 2) * (FRACTIONS[i] - FRACTIONS[i - 1]);
  return +((100 * a) / (FRACTIONS.at(-1)! - FRACTIONS[0])).toFixed(2);
}

/**
 * RISE's deletion (from `x`, patches or pixels set to the mean colour) or insertion (from `blur`,
 * revealed from `x`), in `orders`, most relevant first, STEPS equal steps; `meanProbability` gives the
 * mean probability of each image's predicted class. The area under that curve, in percent.
 */
export async function riseArea(
  x: Float32Array,
  blur: Float32Array | null,
  orders: number[][],
  level: 'patch' | 'pixel',
  g: Geometry,
  meanProbability: (imgs: Float32Array) => Promise<number>,
): Promise<number> {
  const total = level === 'patch' ? (g.height / g.patch) * (g.width / g.patch) : g.height * g.width;
  const copy = level === 'patch' ? copyPatch : copyPixel;
  const ys: number[] = [];
  for (let st = 0; st <= STEPS; st++) {
    const k = Math.round((st / STEPS) * total);
    const img = blur ? blur.slice() : x.slice();
    for (let i = 0; i < g.n; i++) for (const q of orders[i].slice(0, k)) copy(img, blur ? x : null, i, q, g);
    ys.push(await meanProbability(img));
  }
  let a = 0;
  for (let i = 1; i < ys.length; i++) a += (ys[i] + ys[i - 1]) / 2 / STEPS;
  return +(100 * a).toFixed(2);
}
