import t from 'tap';
import { NO_AUGMENT, fillBatch } from '../../../trainer/data/augment.js';
import { makeDataset } from '../../../trainer/data/dataset.js';
import { Rng } from '../../../trainer/nn/random.js';
import { colourDataset } from '../../helpers/data.js';

const base = { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], numClasses: 3, labelSmoothing: 0 };

t.test('without augmentation: normalized pixels and one-hot targets', async (t) => {
  const d = colourDataset(4, 4, 3);
  const px = new Float32Array(2 * 48);
  const tg = new Float32Array(2 * 3);
  fillBatch(d, [2, 1], { ...base, augment: NO_AUGMENT }, new Rng(1), px, tg);
  t.equal(px[0], Math.fround((d.images[2 * 48] / 255 - 0.5) / 0.5));
  t.same(Array.from(tg), [0, 0, 1, 0, 1, 0]);
});

t.test('label smoothing spreads epsilon over the classes', async (t) => {
  const d = colourDataset(3, 4, 3);
  const tg = new Float32Array(3);
  fillBatch(d, [1], { ...base, labelSmoothing: 0.3, augment: NO_AUGMENT }, new Rng(1), new Float32Array(48), tg);
  t.ok(Math.abs(tg[0] - 0.1) < 1e-7 && Math.abs(tg[1] - 0.8) < 1e-7 && Math.abs(tg[2] - 0.1) < 1e-7, `${Array.from(tg)}`);
});

t.test('crop and flip keep the shape and the label, move pixels, and pad with black', async (t) => {
  // One 4x4 image, every pixel distinct in channel 0.
  const img = new Uint8Array(48);
  for (let p = 0; p < 16; p++) img[p] = 10 + p;
  const d = makeDataset(img, Uint16Array.from([2]), { channels: 3, height: 4, width: 4 }, ['a', 'b', 'c']);
  const black = (0 - 0.5) / 0.5;
  const seen = new Set<string>();
  for (let s = 0; s < 40; s++) {
    const px = new Float32Array(48).fill(NaN);
    const tg = new Float32Array(3);
    fillBatch(d, [0], { ...base, augment: { cropPadding: 1, flip: true } }, new Rng(s), px, tg);
    t.ok(px.every(Number.isFinite), 'every output pixel written');
    t.same(Array.from(tg), [0, 0, 1], 'label kept');
    const bytes = Array.from(px.subarray(0, 16), (v) => (v === black ? 0 : Math.round((v * 0.5 + 0.5) * 255)));
    const kept = bytes.filter((b) => b !== 0);
    t.ok(kept.length >= 9, 'at most one row and one column padded');
    seen.add(bytes.join(','));
  }
  t.ok(seen.size > 5, `augmentations vary (${seen.size} distinct)`);
  // Flip alone mirrors each row exactly.
  for (let s = 0; s < 10; s++) {
    const px = new Float32Array(48);
    fillBatch(d, [0], { ...base, augment: { cropPadding: 0, flip: true } }, new Rng(s), px, new Float32Array(3));
    const row0 = Array.from(px.subarray(0, 4), (v) => Math.round((v * 0.5 + 0.5) * 255));
    t.ok(row0.join() === '10,11,12,13' || row0.join() === '13,12,11,10', `row 0 is ${row0} or its mirror`);
  }
});
