import { readFileSync } from 'node:fs';
import t from 'tap';
import { fillBatch, mixBatch, erase } from '../../../trainer/data/augment.js';
import { makeDataset } from '../../../trainer/data/dataset.js';
import { AutoAugmenter, type Canvas, type OpName, POLICIES, applyOp, augmentationSpace } from '../../../trainer/data/policies.js';
import { Rng } from '../../../trainer/nn/random.js';
import { colourDataset } from '../../helpers/data.js';

interface Fixture {
  shape: [number, number, number];
  input: string;
  dull: string;
  cases: { op: OpName; magnitude: number; input?: 'dull'; output: string }[];
}
const fixture = JSON.parse(readFileSync(new URL('../../fixtures/augment-ops.json', import.meta.url), 'utf8')) as Fixture;
const bytes = (b64: string) => new Uint8Array(Buffer.from(b64, 'base64'));
const [C, H, W] = fixture.shape;
const canvasOf = (px: Uint8Array): Canvas => ({ px: Uint8Array.from(px), tmp: new Uint8Array(px.length), C, H, W });

t.test('every op matches torchvision 0.14 on uint8 tensors (test/fixtures/make-augment-ops.py)', async (t) => {
  for (const k of fixture.cases) {
    const c = canvasOf(bytes(k.input === 'dull' ? fixture.dull : fixture.input));
    applyOp(c, k.op, k.magnitude);
    const want = bytes(k.output);
    let differ = 0;
    let worst = 0;
    for (let i = 0; i < want.length; i++) {
      const d = Math.abs(c.px[i] - want[i]);
      if (d > 0) differ++;
      worst = Math.max(worst, d);
    }
    // pixel for pixel, geometric ops (Shear, Translate, Rotate) included, as docs/training.md says
    t.equal(differ, 0, `${k.op}(${k.magnitude}) ${k.input ?? ''}: ${differ} of ${want.length} values differ, by up to ${worst}`);
  }
});

t.test('magnitude tables follow torchvision', async (t) => {
  const ra = augmentationSpace(31, 32, 32, false);
  t.equal(ra.Rotate.magnitudes[30], 30);
  t.equal(ra.Posterize.magnitudes[0], 8);
  t.equal(ra.Posterize.magnitudes[30], 4);
  t.equal(ra.Solarize.magnitudes[0], 255);
  t.ok(Math.abs(ra.TranslateX.magnitudes[30] - (150 / 331) * 32) < 1e-12);
  const wide = augmentationSpace(31, 32, 32, true);
  t.equal(wide.Rotate.magnitudes[30], 135);
  t.equal(wide.Posterize.magnitudes[30], 2);
  t.equal(wide.TranslateX.magnitudes[30], 32);
  const aa = augmentationSpace(10, 32, 32, false);
  t.same(aa.Posterize.magnitudes, [8, 8, 7, 7, 6, 6, 5, 5, 4, 4]);
});

const d = colourDataset(16, 8, 4, 3);
const base = { mean: [0.5, 0.5, 0.5], std: [0.25, 0.5, 0.5], numClasses: 4, labelSmoothing: 0.1 };
const all = Uint32Array.from({ length: 16 }, (_, i) => i);
const run = (augment: object, seed: number) => {
  const px = new Float32Array(16 * 3 * 64);
  const tg = new Float32Array(16 * 4);
  fillBatch(d, all, { ...base, augment: { cropPadding: 2, flip: true, ...augment } }, new Rng(seed), px, tg);
  return { px, tg };
};

t.test('each policy is deterministic for a seed, varies across seeds, and stays in the normalized range', async (t) => {
  const plain = run({}, 1);
  for (const policy of POLICIES) {
    const a = run({ policy }, 7);
    const b = run({ policy }, 7);
    const c = run({ policy }, 8);
    t.same(Array.from(a.px), Array.from(b.px), `${policy}: same seed, same batch`);
    t.notSame(Array.from(a.px), Array.from(c.px), `${policy}: another seed, another batch`);
    const lo = Math.min(...base.mean.map((m, i) => -m / base.std[i]));
    const hi = Math.max(...base.mean.map((m, i) => (1 - m) / base.std[i]));
    t.ok(
      a.px.every((v) => v >= lo - 1e-6 && v <= hi + 1e-6),
      `${policy}: values within [${lo}, ${hi}]`,
    );
    t.same(Array.from(a.tg), Array.from(plain.tg), `${policy}: targets untouched`);
  }
  // a policy changes images beyond what crop and flip do
  t.notSame(Array.from(run({ policy: 'randaugment', randaugmentMagnitude: 20 }, 7).px), Array.from(run({}, 7).px));
});

t.test('the AutoAugment CIFAR-10 policy and RandAugment draw from their op sets', async (t) => {
  const canvas = canvasOf(bytes(fixture.input));
  const seen = new Set<string>();
  for (let s = 0; s < 200; s++) {
    const c = canvasOf(bytes(fixture.input));
    new AutoAugmenter({ policy: 'randaugment', ops: 1, magnitude: 9 }, H, W).apply(c, new Rng(s));
    seen.add(Buffer.from(c.px).toString('base64'));
  }
  t.ok(seen.size > 20, `RandAugment: ${seen.size} distinct results in 200 draws`);
  const zero = canvasOf(bytes(fixture.input));
  new AutoAugmenter({ policy: 'randaugment', ops: 0, magnitude: 9 }, H, W).apply(zero, new Rng(1));
  t.same(zero.px, canvas.px, 'RandAugment with 0 ops leaves the image');
});

t.test('random erasing blanks one rectangle with the mean colour', async (t) => {
  for (let s = 0; s < 30; s++) {
    const img = new Float32Array(3 * 16 * 16).fill(1);
    const erased = erase(img, 3, 16, 16, new Rng(s));
    const zeros = img.filter((v) => v === 0).length;
    if (!erased) {
      t.equal(zeros, 0);
      continue;
    }
    t.ok(zeros % 3 === 0 && zeros / 3 >= 1 && zeros / 3 <= 0.33 * 256 + 16, `seed ${s}: ${zeros / 3} pixels erased`);
    // the same pixels in every channel
    t.same(
      img.subarray(0, 256).map((v) => (v === 0 ? 1 : 0)),
      img.subarray(512, 768).map((v) => (v === 0 ? 1 : 0)),
    );
  }
  const a = run({ erasing: 1 }, 3);
  t.ok(
    a.px.some((v) => v === 0),
    'erasing on in a batch',
  );
});

t.test('Mixup and CutMix: targets are convex mixtures summing to 1 that match the pixels', async (t) => {
  for (const [mixupAlpha, cutmixAlpha] of [
    [0.8, 0],
    [0, 1],
    [0.8, 1],
  ]) {
    for (let s = 0; s < 10; s++) {
      const a = run({ mixupAlpha, cutmixAlpha }, s);
      const b = run({ mixupAlpha, cutmixAlpha }, s);
      t.same(Array.from(a.tg), Array.from(b.tg), 'deterministic');
      for (let i = 0; i < 16; i++) {
        const row = a.tg.subarray(i * 4, i * 4 + 4);
        const sum = row.reduce((x, y) => x + y, 0);
        if (Math.abs(sum - 1) > 1e-5 || row.some((v) => v < 0)) t.fail(`row ${i}: ${Array.from(row)}`);
      }
    }
    t.pass(`alphas ${mixupAlpha}/${cutmixAlpha}: every target row sums to 1`);
  }
  // CutMix: lambda is the share of pixels each image keeps
  const n = 4;
  const per = 3 * 10 * 10;
  const px = new Float32Array(n * per);
  for (let b = 0; b < n; b++) px.fill(b + 1, b * per, (b + 1) * per);
  const tg = new Float32Array(n * n);
  for (let b = 0; b < n; b++) tg[b * n + b] = 1;
  const { kind, lambda } = mixBatch(px, tg, n, n, 3, 10, 10, { cropPadding: 0, flip: false, cutmixAlpha: 1 }, new Rng(5));
  t.equal(kind, 'cutmix');
  const own = px.subarray(0, per).filter((v) => v === 1).length / per;
  t.ok(Math.abs(own - lambda) < 1e-9, `image 0 keeps ${own} of its pixels, lambda ${lambda}`);
  t.ok(Math.abs(tg[0] - lambda) < 1e-6 && Math.abs(tg[3] - (1 - lambda)) < 1e-6, 'targets follow the pixel shares');
  // Mixup: pixels mixed with the same lambda as targets
  const px2 = new Float32Array(n * per);
  for (let b = 0; b < n; b++) px2.fill(b, b * per, (b + 1) * per);
  const tg2 = new Float32Array(n * n);
  for (let b = 0; b < n; b++) tg2[b * n + b] = 1;
  const m = mixBatch(px2, tg2, n, n, 3, 10, 10, { cropPadding: 0, flip: false, mixupAlpha: 0.4 }, new Rng(9));
  t.equal(m.kind, 'mixup');
  t.ok(Math.abs(px2[0] - (1 - m.lambda) * 3) < 1e-5, `pixel ${px2[0]} = (1 - ${m.lambda}) * 3`);
});

t.test('Beta draws lie in [0, 1] with the right mean', async (t) => {
  const rng = new Rng(4);
  for (const [a, b] of [
    [0.4, 0.4],
    [1, 1],
    [2, 5],
  ]) {
    let sum = 0;
    const n = 20000;
    for (let i = 0; i < n; i++) {
      const x = rng.beta(a, b);
      if (!(x >= 0 && x <= 1)) t.fail(`Beta(${a}, ${b}) drew ${x}`);
      sum += x;
    }
    t.ok(Math.abs(sum / n - a / (a + b)) < 0.01, `Beta(${a}, ${b}) mean ${sum / n}`);
  }
});

t.test('a one-image dataset still fills (the batch mixes with itself)', async (t) => {
  const one = makeDataset(new Uint8Array(3 * 4 * 4).fill(100), Uint16Array.from([1]), { channels: 3, height: 4, width: 4 }, ['a', 'b']);
  const px = new Float32Array(48);
  const tg = new Float32Array(2);
  fillBatch(
    one,
    [0],
    {
      mean: [0, 0, 0],
      std: [1, 1, 1],
      numClasses: 2,
      labelSmoothing: 0,
      augment: { cropPadding: 0, flip: false, policy: 'trivialaugment', mixupAlpha: 1, erasing: 0.5 },
    },
    new Rng(2),
    px,
    tg,
  );
  t.same(Array.from(tg), [0, 1]);
});
