// The budget-training keys: whitening start of the tokenizer, alternating flips, the weight average's
// horizon tied to the run's length.
import t from 'tap';
import { fillBatch, NO_AUGMENT } from '../../../trainer/data/augment.js';
import { makeDataset } from '../../../trainer/data/dataset.js';
import { Rng } from '../../../trainer/nn/random.js';
import { alternateFlips, averageDecay } from '../../../trainer/train/loop.js';
import { patchMoment, symmetricEigen, whiteningFilters, WHITEN_EPS } from '../../../trainer/vit/whiten.js';

const noise = (count: number, size: number, seed = 1) => {
  const rng = new Rng(seed);
  // neighbouring pixels correlated (a smoothed noise), and the channels too, as in photographs
  const images = new Uint8Array(count * 3 * size * size);
  for (let i = 0; i < count; i++) {
    let prev = 128;
    for (let p = 0; p < size * size; p++) {
      prev = Math.max(0, Math.min(255, Math.round(0.7 * prev + 0.3 * rng.int(256) + (rng.next() - 0.5) * 40)));
      for (let c = 0; c < 3; c++)
        images[i * 3 * size * size + c * size * size + p] = Math.max(0, Math.min(255, prev + (c - 1) * rng.int(20)));
    }
  }
  return makeDataset(images, new Uint16Array(count), { channels: 3, height: size, width: size }, ['only']);
};
const NORM = { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] };

t.test('symmetricEigen: A = V^T diag(values) V, V orthonormal, values descending', async (t) => {
  const n = 9;
  const rng = new Rng(4);
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = i; j < n; j++) a[i * n + j] = a[j * n + i] = rng.normal();
  const { values, vectors } = symmetricEigen(a, n);
  for (let i = 1; i < n; i++) t.ok(values[i] <= values[i - 1], `value ${i} below value ${i - 1}`);
  let worst = 0;
  let orth = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      let d = 0;
      for (let k = 0; k < n; k++) {
        s += vectors[k * n + i] * values[k] * vectors[k * n + j];
        d += vectors[i * n + k] * vectors[j * n + k];
      }
      worst = Math.max(worst, Math.abs(s - a[i * n + j]));
      orth = Math.max(orth, Math.abs(d - (i === j ? 1 : 0)));
    }
  }
  t.ok(worst < 1e-10, `reconstruction within ${worst.toExponential(1)}`);
  t.ok(orth < 1e-10, `orthonormal within ${orth.toExponential(1)}`);
});

t.test('whiteningFilters: responses over the patches uncorrelated with variance λ/(λ+eps), in ± pairs', async (t) => {
  const d = noise(40, 10);
  const k = 3;
  const out = 12;
  const w = whiteningFilters(d, NORM, k, out);
  const dims = 27;
  const m = patchMoment(d, NORM, k);
  const { values } = symmetricEigen(m, dims);
  let worst = 0;
  for (let i = 0; i < out / 2; i++) {
    for (let j = 0; j < out / 2; j++) {
      let s = 0; // w_i^T M w_j
      for (let r = 0; r < dims; r++) for (let c = 0; c < dims; c++) s += w[i * dims + r] * m[r * dims + c] * w[j * dims + c];
      const want = i === j ? values[i] / (values[i] + WHITEN_EPS) : 0;
      worst = Math.max(worst, Math.abs(s - want));
    }
  }
  t.ok(worst < 1e-5, `second moments of the responses within ${worst.toExponential(1)} of the diagonal`);
  let corr = 0; // the patches' own second moments are far from diagonal: the whitening has work to do
  for (let r = 0; r < dims; r++)
    for (let c = r + 1; c < dims; c++) corr = Math.max(corr, Math.abs(m[r * dims + c]) / Math.sqrt(m[r * dims + r] * m[c * dims + c]));
  t.ok(corr > 0.5, `neighbouring pixels correlated (${corr.toFixed(2)})`);
  t.ok(
    Array.from({ length: (out / 2) * dims }, (_, i) => w[i] === -w[i + (out / 2) * dims]).every(Boolean),
    'the second half is the first negated',
  );
  t.throws(() => whiteningFilters(d, NORM, k, 7), /must be an even number up to 54/);
  t.throws(() => whiteningFilters(d, NORM, k, 56), /must be an even number up to 54/);
  t.throws(() => whiteningFilters(noise(2, 2), NORM, 3, 4), /no 3x3 patch fits the 2x2 images/);
});

t.test('alternating flips: each image changes side every epoch, from a side drawn once', async (t) => {
  const flips = alternateFlips(7, 1000);
  const all = Uint32Array.from({ length: 1000 }, (_, i) => i);
  const [e0, e1, e2] = [0, 1, 2].map((e) => flips(all, e));
  t.ok(
    e0.every((f, i) => f !== e1[i]),
    'epoch 1 mirrors what epoch 0 did not',
  );
  t.same(e2, e0, 'epoch 2 as epoch 0');
  const share = e0.reduce((a, b) => a + b, 0) / 1000;
  t.ok(share > 0.44 && share < 0.56, `about half mirrored in an epoch (${share})`);
  t.same(alternateFlips(7, 1000)(all, 3), e1, 'the same seed, the same sides');
  t.notSame(alternateFlips(8, 1000)(all, 0), e0, 'another seed, other sides');
  t.same([...flips(Uint32Array.from([5, 5, 9]), 1)], [e1[5], e1[5], e1[9]], 'by image, whatever the order');

  // the batch follows the flips it is given
  const d = noise(2, 6);
  const o = { ...NORM, numClasses: 1, labelSmoothing: 0, augment: { ...NO_AUGMENT, flip: true } };
  const px = (f: number[]) => {
    const pixels = new Float32Array(2 * 3 * 36);
    fillBatch(d, [0, 1], o, new Rng(1), pixels, new Float32Array(2), f);
    return pixels;
  };
  const [plain, mirrored] = [px([0, 0]), px([1, 0])];
  const at = (p: Float32Array, img: number, c: number, y: number, x: number) => p[img * 108 + c * 36 + y * 6 + x];
  let same = true;
  for (let c = 0; c < 3; c++)
    for (let y = 0; y < 6; y++)
      for (let x = 0; x < 6; x++)
        same &&= at(mirrored, 0, c, y, x) === at(plain, 0, c, y, 5 - x) && at(mirrored, 1, c, y, x) === at(plain, 1, c, y, x);
  t.ok(same, 'image 0 mirrored, image 1 as it is');
});

t.test("the weight average's horizon as a share of the run", async (t) => {
  t.equal(averageDecay({ ema_decay: 0, ema_horizon: 0.1 }, 1000), 0.99, '10% of 1,000 steps: 100 steps, decay 0.99');
  t.equal(averageDecay({ ema_decay: 0.999, ema_horizon: 0 }, 1000), 0.999, 'ema_decay as given');
  t.equal(averageDecay({ ema_decay: 0, ema_horizon: 0 }, 1000), 0, 'no average');
  t.equal(averageDecay({ ema_decay: 0, ema_horizon: 0.001 }, 100), 0, 'a horizon under one step: no averaging to speak of');
  t.throws(() => averageDecay({ ema_decay: 0.99, ema_horizon: 0.1 }, 1000), /both set the weight average's decay: set one/);
});
