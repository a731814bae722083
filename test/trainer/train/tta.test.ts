// Flip test-time augmentation in evaluation: each image and its mirror go in one batch of 2n, and
// the logits averaged over the pair are what is scored.

import t from 'tap';
import { evaluate } from '../../../trainer/train/evaluate.js';
import { mirrorImages } from '../../../runtime/pixels.js';
import { assertOneLineError, runCli } from '../../helpers/cli.js';
import { colourDataset } from '../../helpers/data.js';

t.test('mirrorImages reverses every row of every channel', async (t) => {
  const src = Float32Array.from({ length: 2 * 2 * 2 * 3 }, (_, i) => i); // 2 images, 2 channels, 2x3
  const dst = new Float32Array(src.length);
  mirrorImages(src, dst, 2, 2, 2, 3);
  t.same([...dst.subarray(0, 6)], [2, 1, 0, 5, 4, 3]);
  t.same([...dst.subarray(18)], [20, 19, 18, 23, 22, 21]);
});

t.test('evaluate with tta flip: one run of 2n, the logits of each image and its mirror averaged', async (t) => {
  const data = colourDataset(6, 4, 2);
  const runs: number[] = [];
  // a "model" whose logits are the left half's sum minus the right half's, and its negative: a
  // mirrored image gives the opposite logits, so the averaged pair scores 0 and 0
  const run = async (pixels: Float32Array, n: number) => {
    runs.push(n);
    const per = 3 * 16;
    return Float32Array.from({ length: n * 2 }, (_, j) => {
      const img = pixels.subarray(Math.floor(j / 2) * per, (Math.floor(j / 2) + 1) * per);
      let d = 0;
      for (let k = 0; k < per; k++) d += (k % 4 < 2 ? 1 : -1) * img[k];
      return j % 2 === 0 ? d : -d;
    });
  };
  const plain = await evaluate(run, data, { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], batchSize: 4 });
  t.same(runs, [4, 2], 'without: batches of n');
  runs.length = 0;
  const flipped = await evaluate(run, data, { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], batchSize: 4, tta: 'flip' });
  t.same(runs, [8, 4], 'with flip: each batch and its mirrors in one run');
  t.ok(plain.loss !== Math.log(2), 'the plain logits are not zero');
  t.ok(Math.abs(flipped.loss - Math.log(2)) < 1e-6, 'averaged with the mirror, every logit is 0: the loss is log 2');
});

t.test('eval --tta takes none or flip', async (t) => {
  const r = await runCli(['eval', '--model', 'models/cct-cifar10', '--tta', 'rotate']);
  t.equal(r.code, 2);
  assertOneLineError(t, r.stderr, /--tta must be one of none, flip, got 'rotate'/);
});
