import t from 'tap';
import { type EpochMetrics, epochTicks, renderCurves, valueTicks } from '../../../trainer/train/report.js';

t.test('value ticks fall on round numbers from 0 past the highest value', async (t) => {
  t.same(valueTicks(1.5), [0, 0.5, 1, 1.5], 'a loss of 1.5: 0.5 apart, not 0.375');
  t.same(valueTicks(2.3), [0, 0.5, 1, 1.5, 2, 2.5]);
  t.same(valueTicks(0.07), [0, 0.02, 0.04, 0.06, 0.08]);
  for (let max = 0.01; max < 50; max *= 1.37) {
    const ticks = valueTicks(max);
    const step = ticks[1];
    const mantissa = step / 10 ** Math.floor(Math.log10(step));
    t.ok(
      [1, 2, 5].some((m) => Math.abs(mantissa - m) < 1e-9) && ticks.at(-1)! >= max - 1e-9 && ticks.length <= 6,
      `${max.toFixed(3)}: ${ticks.join(' ')}`,
    );
  }
});

t.test('epoch ticks fall on round numbers, at most about six', async (t) => {
  t.same(epochTicks(1), [1]);
  t.same(epochTicks(4), [1, 2, 3, 4]);
  t.same(epochTicks(70), [1, 20, 40, 60]);
  t.same(epochTicks(100), [1, 20, 40, 60, 80, 100]);
  t.same(epochTicks(60), [1, 10, 20, 30, 40, 50, 60]);
  for (let n = 1; n < 3000; n += 37) {
    const ticks = epochTicks(n);
    t.ok(ticks.length <= 7 && ticks[0] === 1 && ticks.at(-1)! <= n, `${n}: ${ticks}`);
  }
});

t.test('curves name the held-out split and keep the legend off the plot', async (t) => {
  const history: EpochMetrics[] = [1, 2, 3].map((epoch) => ({
    epoch,
    step: epoch * 10,
    lr: 0.01,
    train_loss: 2 / epoch,
    train_accuracy: 0.3 * epoch,
    test_loss: 2.1 / epoch,
    test_accuracy: 0.28 * epoch,
    images_per_s: 100,
    epoch_s: 1,
    elapsed_s: epoch,
  }));
  const val = renderCurves(history, 'run', 'val');
  t.match(val, /validation loss/);
  t.match(val, />0\.5</, 'the loss axis ticks at 0.5');
  t.notMatch(val, />0\.38<|>1\.13</, 'not at quarters of an odd maximum');
  t.match(val, /validation accuracy/);
  t.notMatch(val, /test loss/);
  t.match(renderCurves(history, 'run'), /test accuracy/);
  // legend entries sit above the plot area (which starts at y=50)
  const legendY = [...val.matchAll(/<text x="[\d.]+" y="([\d.]+)" fill="#333">/g)].map((m) => Number(m[1]));
  t.ok(legendY.length === 4 && legendY.every((y) => y < 50), `legend at y=${legendY}`);
});
