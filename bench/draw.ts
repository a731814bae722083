// What a heatmap draw costs, on this thread: server/drawing/heatmap.ts's drawHeatmap of the example cat (32x32)
// under a smooth 8x8 map (two bumps) at the page's 256 px, CPU time per draw; then zlib's deflate alone
// over the same filtered rows (the draw's own level, zlib's Huffman-only strategy and stored blocks),
// so the draw's loops are the difference. One JSON line per measurement.
//   npm run bench:draw [-- --seconds 3 --size 256]

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { constants, deflateSync, inflateSync } from 'node:zlib';
import sharp from 'sharp';
import { drawHeatmap } from '../server/drawing/heatmap.js';
import { Results, benchFlags } from './common.js';

const flags = benchFlags('npm run bench:draw [-- --seconds 3 --size 256]', {
  seconds: { type: 'string', default: '3' },
  size: { type: 'string', default: '256' },
});
const seconds = Number(flags.seconds) || 3;
const size = Number(flags.size) || 256;
const results = new Results('draw', 'One heatmap draw on this thread (a 32x32 image under an 8x8 map), and zlib alone over its rows');
const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const { data, info } = await sharp(path.join(root, 'server', 'web', 'examples', 'cat.png'))
  .resize(32, 32)
  .removeAlpha()
  .raw()
  .toBuffer({ resolveWithObject: true });
const view = { data, width: info.width, height: info.height };
const bump = (r: number, c: number, r0: number, c0: number, s: number) => Math.exp(-((r - r0) ** 2 + (c - c0) ** 2) / (2 * s * s));
const grid = Array.from({ length: 8 }, (_, r) =>
  Array.from({ length: 8 }, (_, c) => Math.min(1, bump(r, c, 3, 4, 1.5) + 0.6 * bump(r, c, 6, 1, 1))),
);
const options = { size, alpha: 0.5, colormap: 'jet' };

function measure(what: string, fn: () => Buffer, extra: object = {}) {
  let out = fn();
  for (let i = 0; i < 50; i++) out = fn();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let n = 0;
  while (performance.now() - t0 < seconds * 1000) {
    out = fn();
    n++;
  }
  const cpu = process.cpuUsage(cpu0);
  results.add({
    what,
    size,
    cpu_ms: +((cpu.user + cpu.system) / 1000 / n).toFixed(3),
    bytes: out.length,
    runs: n,
    ...extra,
  });
}

const png = drawHeatmap(grid, view, options);
measure('drawHeatmap (PNG)', () => drawHeatmap(grid, view, options));
// the PNG's filtered rows, back out of its IDAT chunk
let at = 8;
const idat: Buffer[] = [];
while (at < png.length) {
  const len = png.readUInt32BE(at);
  if (png.toString('latin1', at + 4, at + 8) === 'IDAT') idat.push(png.subarray(at + 8, at + 8 + len));
  at += 12 + len;
}
const rows = inflateSync(Buffer.concat(idat));
measure("deflate of its rows, level 1 (the draw's)", () => deflateSync(rows, { level: 1 }), { raw_bytes: rows.length });
measure('deflate of its rows, level 1, Huffman only', () => deflateSync(rows, { level: 1, strategy: constants.Z_HUFFMAN_ONLY }));
measure('deflate of its rows, stored (level 0)', () => deflateSync(rows, { level: 0 }));
results.save();
