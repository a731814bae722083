// Draws a patch-grid attention map over the image: the grid is stretched from its lowest value (the
// colormap's first colour) to its highest (its last), so that a map's structure shows whatever its
// range (a near-constant map is not one flat colour; the page shows the range beside it), upsampled smoothly
// (bicubic between cell centres) to the output size, coloured with a colormap and blended over the
// image (nearest pixels when the output is larger, the mean of the pixels it covers when smaller)
// with opacity `alpha`, then encoded as a PNG. Plain loops over the pixels and zlib, no libvips
// pipeline: a 256 px heatmap would be three of those (two resizes and an encode), and a draw runs
// in a heatmap worker (draws.ts), where its cost is all that counts.

import { encodeFilteredRgbPng } from '../../runtime/png.js';

type Stop = [number, number, number];
/** Colormaps as evenly spaced stops (viridis and inferno sampled from matplotlib's tables). */
const COLORMAPS: Readonly<Record<string, readonly Stop[]>> = Object.freeze({
  jet: [
    [0, 0, 131],
    [0, 60, 255],
    [0, 255, 255],
    [255, 255, 0],
    [255, 60, 0],
    [128, 0, 0],
  ],
  viridis: [
    [68, 1, 84],
    [59, 82, 139],
    [33, 145, 140],
    [94, 201, 98],
    [253, 231, 37],
  ],
  inferno: [
    [0, 0, 4],
    [87, 16, 110],
    [188, 55, 84],
    [249, 142, 9],
    [252, 255, 164],
  ],
  gray: [
    [0, 0, 0],
    [255, 255, 255],
  ],
});
export const COLORMAP_NAMES = Object.freeze(Object.keys(COLORMAPS));

function lut(name: string): Uint8Array {
  const stops = COLORMAPS[name];
  const out = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) {
    const x = (i / 255) * (stops.length - 1);
    const k = Math.min(stops.length - 2, Math.floor(x));
    const f = x - k;
    for (let c = 0; c < 3; c++) out[i * 3 + c] = Math.round(stops[k][c] * (1 - f) + stops[k + 1][c] * f);
  }
  return out;
}
const LUTS = new Map(COLORMAP_NAMES.map((n) => [n, lut(n)]));

export interface HeatmapOptions {
  size: number; // output width; height follows the view's aspect
  alpha: number;
  colormap: string;
}

/** Keys' cubic convolution weight (a = -0.5, Catmull-Rom) at distance x. */
function cubic(x: number): number {
  const t = Math.abs(x);
  if (t <= 1) return 1.5 * t * t * t - 2.5 * t * t + 1;
  if (t < 2) return -0.5 * t * t * t + 2.5 * t * t - 4 * t + 2;
  return 0;
}

/** For each of `out` positions, the 4 source taps (clamped to [0, n)) and their weights, centres aligned. */
function taps(n: number, out: number): { index: Int32Array; weight: Float64Array } {
  const index = new Int32Array(out * 4);
  const weight = new Float64Array(out * 4);
  for (let o = 0; o < out; o++) {
    const x = ((o + 0.5) * n) / out - 0.5;
    const x0 = Math.floor(x);
    let sum = 0;
    for (let k = 0; k < 4; k++) {
      const w = cubic(x - (x0 - 1 + k));
      index[o * 4 + k] = Math.min(n - 1, Math.max(0, x0 - 1 + k));
      weight[o * 4 + k] = w;
      sum += w;
    }
    for (let k = 0; k < 4; k++) weight[o * 4 + k] /= sum;
  }
  return { index, weight };
}

/** The lowest and highest of a map's values (a grid's rows, or the values as made). */
export function valueRange(values: Iterable<number>): [number, number] {
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return [min, max];
}

/** Each grid row stretched to [0, 1] (a constant grid is all 0) and upsampled along x (bicubic):
 *  rows x width values. */
function widen(grid: number[][], width: number): Float64Array {
  const rows = grid.length;
  const tx = taps(grid[0].length, width);
  const wide = new Float64Array(rows * width);
  const [min, max] = valueRange(grid.flat());
  const scale = max - min > 1e-12 ? 1 / (max - min) : 0;
  for (let r = 0; r < rows; r++) {
    const cells = grid[r].map((v) => Math.max(0, Math.min(1, (v - min) * scale)));
    for (let x = 0; x < width; x++) {
      const t = x * 4;
      wide[r * width + x] =
        tx.weight[t] * cells[tx.index[t]] +
        tx.weight[t + 1] * cells[tx.index[t + 1]] +
        tx.weight[t + 2] * cells[tx.index[t + 2]] +
        tx.weight[t + 3] * cells[tx.index[t + 3]];
    }
  }
  return wide;
}

/** The view (RGB) at width x height when reducing: the mean of the pixels each output pixel covers. */
function reduceView(view: { data: Uint8Array; width: number; height: number }, width: number, height: number): Uint8Array {
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const y0 = Math.floor((y * view.height) / height);
    const y1 = Math.max(y0 + 1, Math.floor(((y + 1) * view.height) / height));
    for (let x = 0; x < width; x++) {
      const x0 = Math.floor((x * view.width) / width);
      const x1 = Math.max(x0 + 1, Math.floor(((x + 1) * view.width) / width));
      for (let c = 0; c < 3; c++) {
        let sum = 0;
        for (let sy = y0; sy < y1; sy++) for (let sx = x0; sx < x1; sx++) sum += view.data[(sy * view.width + sx) * 3 + c];
        out[(y * width + x) * 3 + c] = Math.round(sum / ((y1 - y0) * (x1 - x0)));
      }
    }
  }
  return out;
}

/** The heatmap PNG (synchronous: it runs in a heatmap worker, draws.ts). One pass over the output
 *  pixels: the map's value (bicubic along y over the rows widened along x), the image's pixel (nearest
 *  when enlarging, else from the reduced view), the blend, and the PNG's row filter (Sub for the
 *  first row, Up after), written straight into the rows zlib deflates. */
export function drawHeatmap(grid: number[][], view: { data: Uint8Array; width: number; height: number }, o: HeatmapOptions): Buffer {
  const width = o.size;
  const height = Math.max(1, Math.round((o.size * view.height) / view.width));
  const wide = widen(grid, width);
  const ty = taps(grid.length, height);
  // where each output pixel's image pixel is: a row offset per y and a column offset per x
  const enlarge = view.width <= width;
  const src = enlarge ? view.data : reduceView(view, width, height);
  const srcWidth = enlarge ? view.width : width;
  const column = enlarge
    ? Int32Array.from({ length: width }, (_, x) => Math.min(view.width - 1, Math.floor(((x + 0.5) * view.width) / width)) * 3)
    : Int32Array.from({ length: width }, (_, x) => x * 3);
  // (1 - alpha) * image + alpha * colour, from two tables
  const image = Float64Array.from({ length: 256 }, (_, b) => (1 - o.alpha) * b + 0.5);
  const colour = Float64Array.from(LUTS.get(o.colormap)!, (c) => o.alpha * c);
  const stride = width * 3 + 1;
  const filtered = Buffer.allocUnsafe(stride * height);
  const previous = new Uint8Array(width * 3); // the row above, as blended (the first row: the pixel to the left)
  for (let y = 0; y < height; y++) {
    const t = y * 4;
    const [a, b, c, d] = [ty.index[t] * width, ty.index[t + 1] * width, ty.index[t + 2] * width, ty.index[t + 3] * width];
    const [wa, wb, wc, wd] = [ty.weight[t], ty.weight[t + 1], ty.weight[t + 2], ty.weight[t + 3]];
    const row = (enlarge ? Math.min(view.height - 1, Math.floor(((y + 0.5) * view.height) / height)) : y) * srcWidth * 3;
    let q = y * stride;
    // the first row Sub (each byte less the one a pixel to its left), the others Up (less the one
    // above): an enlarged image repeats its rows, and the map changes slowly, so Up leaves mostly
    // small differences (measured on CIFAR-10 images at 256 px: ~20% smaller, deflated ~10% faster)
    filtered[q++] = y === 0 ? 1 : 2;
    for (let x = 0, k = 0; x < width; x++, k += 3) {
      const u = 255 * (wa * wide[a + x] + wb * wide[b + x] + wc * wide[c + x] + wd * wide[d + x]);
      const v = (u <= 0 ? 0 : u >= 255 ? 255 : (u + 0.5) | 0) * 3;
      const i = row + column[x];
      const r = (image[src[i]] + colour[v]) | 0;
      const g = (image[src[i + 1]] + colour[v + 1]) | 0;
      const bl = (image[src[i + 2]] + colour[v + 2]) | 0;
      if (y === 0) {
        filtered[q++] = (r - (k > 0 ? previous[k - 3] : 0)) & 0xff;
        filtered[q++] = (g - (k > 0 ? previous[k - 2] : 0)) & 0xff;
        filtered[q++] = (bl - (k > 0 ? previous[k - 1] : 0)) & 0xff;
      } else {
        filtered[q++] = (r - previous[k]) & 0xff;
        filtered[q++] = (g - previous[k + 1]) & 0xff;
        filtered[q++] = (bl - previous[k + 2]) & 0xff;
      }
      previous[k] = r;
      previous[k + 1] = g;
      previous[k + 2] = bl;
    }
  }
  // zlib's fastest level: the draw's cost is most of what a heatmap costs to serve
  return encodeFilteredRgbPng(filtered, width, height, 1);
}
