// Draws a patch-grid attention map over the image: the grid is scaled to [0, 1], upsampled smoothly
// to the output size, coloured with a colormap and blended over the image with opacity `alpha`.

import { encodePng, resizeRaster } from '../runtime/image.js';

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

export async function renderHeatmap(grid: number[][], view: { data: Buffer; width: number; height: number }, o: HeatmapOptions): Promise<Buffer> {
  const rows = grid.length;
  const cols = grid[0].length;
  const width = o.size;
  const height = Math.max(1, Math.round((o.size * view.height) / view.width));
  const cells = Buffer.from(grid.flat().map((v) => Math.round(Math.max(0, Math.min(1, v)) * 255)));
  const smooth = await resizeRaster({ data: cells, width: cols, height: rows, channels: 1 }, width, height, 'cubic');
  if (smooth.length !== width * height) throw new Error(`heatmap: resized map has ${smooth.length} values for ${width}x${height}`);
  const base = await resizeRaster({ ...view, channels: 3 }, width, height, view.width < width ? 'nearest' : 'lanczos3');
  const colors = LUTS.get(o.colormap)!;
  const out = Buffer.alloc(width * height * 3);
  for (let p = 0; p < width * height; p++) {
    const v = smooth[p];
    for (let c = 0; c < 3; c++) out[p * 3 + c] = Math.round((1 - o.alpha) * base[p * 3 + c] + o.alpha * colors[v * 3 + c]);
  }
  return encodePng(out, width, height);
}
