import t from 'tap';
import { AdamW, SGD } from '../../../trainer/train/optim.js';
import { learningRate } from '../../../trainer/train/schedule.js';

t.test('AdamW matches a hand computation (decoupled decay, bias correction)', async (t) => {
  const opt = new AdamW({ weightDecay: 0.1, betas: [0.9, 0.99], eps: 1e-8 });
  const p = { name: 'w', data: Float32Array.from([1, -2]), decay: true };
  const lr = 0.01;
  const g1 = Float32Array.from([0.5, -1]);
  const g2 = Float32Array.from([0.25, 2]);
  opt.step([p], [g1], lr);
  opt.step([p], [g2], lr);
  // by hand, for each element
  const expected = [1, -2].map((w0, i) => {
    const gs = [g1[i], g2[i]];
    let w = w0;
    let m = 0;
    let v = 0;
    gs.forEach((g, k) => {
      const step = k + 1;
      w = w - lr * 0.1 * w;
      m = 0.9 * m + 0.1 * g;
      v = 0.99 * v + 0.01 * g * g;
      w = w - (lr * (m / (1 - 0.9 ** step))) / (Math.sqrt(v / (1 - 0.99 ** step)) + 1e-8);
    });
    return w;
  });
  t.ok(Math.abs(p.data[0] - expected[0]) < 1e-6 && Math.abs(p.data[1] - expected[1]) < 1e-6, `${Array.from(p.data)} vs ${expected}`);
  // First step of Adam moves each weight by about lr (plus the decay).
  const q = { name: 'q', data: Float32Array.from([0]), decay: false };
  new AdamW({ weightDecay: 0.1, betas: [0.9, 0.999], eps: 1e-8 }).step([q], [Float32Array.from([3])], 0.01);
  t.ok(Math.abs(q.data[0] + 0.01) < 1e-7, 'no decay when exempt, step of lr');
  t.same([...opt.state().keys()].sort(), ['optimizer.exp_avg.w', 'optimizer.exp_avg_sq.w']);
});

t.test('SGD with momentum matches torch.optim.SGD', async (t) => {
  const opt = new SGD({ weightDecay: 0, momentum: 0.9, nesterov: false });
  const p = { name: 'w', data: Float32Array.from([1]), decay: true };
  opt.step([p], [Float32Array.from([1])], 0.1); // buf = 1, w = 0.9
  opt.step([p], [Float32Array.from([1])], 0.1); // buf = 1.9, w = 0.71
  t.ok(Math.abs(p.data[0] - 0.71) < 1e-6, `${p.data[0]}`);
});

t.test('schedules are pure functions of the step', async (t) => {
  const s = { kind: 'cosine' as const, baseLr: 1, warmupSteps: 10, totalSteps: 110, minLr: 0 };
  t.equal(learningRate(s, 0), 0.1);
  t.equal(learningRate(s, 9), 1);
  t.equal(learningRate(s, 10), 1);
  t.ok(Math.abs(learningRate(s, 60) - 0.5) < 1e-12);
  t.ok(learningRate(s, 110) < 1e-12);
  t.equal(learningRate({ ...s, kind: 'constant' }, 100), 1);
});
