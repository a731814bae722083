// Where a training step's time goes: the step graph of a recipe's architecture (or the seed ViT) run
// by ONNX Runtime with its profiler on, then the time per operator type and the slowest nodes.
//   npx tsx bench/profile-step.ts [--recipe cct-cifar10] [--batch 128] [--runs 6] [--threads 2] [--anchor <images/s>]
// Beside the profile: the step timed without the profiler (whose cost per node inflates small
// kernels, so "every other kernel" is an upper bound), the rate of one large matrix product on the
// same threads (what ONNX Runtime's products reach here at best), and with --anchor (PyTorch's
// images/s from bench:train) the step time that 2.5x that anchor asks for.

import os from 'node:os';
import * as ort from 'onnxruntime-node';
import { compileToBytes } from '../trainer/autograd/onnx.js';
import { Rng } from '../trainer/nn/random.js';
import { trainStepOutputs } from '../trainer/train/step.js';
import { createSession } from '../runtime/ort.js';
import { input, matmul } from '../trainer/autograd/ops.js';
import { INPUT_NAME, ViT, pixelDims } from '../trainer/vit/model.js';
import { profileGraph, printProfile } from './profile.js';
import { benchArchitecture } from './steps.js';
import { benchArgs } from './common.js';

const { arg } = benchArgs(
  'npx tsx bench/profile-step.ts [--recipe cct-cifar10] [--batch 128] [--runs 6] [--threads 2] [--anchor <images/s>]',
  { strings: ['anchor', 'batch', 'recipe', 'runs', 'threads', 'top'] },
);

const recipeName = arg('recipe');
const arch = benchArchitecture(recipeName);
const config = arch.config;
const batch = Number(arg('batch') ?? arch.batch);
const runs = Number(arg('runs') ?? 6);
const threads = Number(arg('threads') ?? os.cpus().length);

// the trainer's own step graph (trainer/train/step.ts)
const model = new ViT(config, 0);
const params = model.namedParameters().map(([, p]) => p);
const { outputs, masks } = trainStepOutputs(model);
const bytes = compileToBytes({ outputs, graphName: 'profiled_step' });

const rng = new Rng(1);
const feeds: Record<string, ort.Tensor> = Object.fromEntries(params.map((p) => [p.name, new ort.Tensor('float32', p.data, p.shape)]));
feeds[INPUT_NAME] = new ort.Tensor(
  'float32',
  Float32Array.from({ length: batch * 3072 }, () => rng.normal()),
  pixelDims(config, batch),
);
const t = new Float32Array(batch * config.num_classes);
for (let i = 0; i < batch; i++) t[i * config.num_classes + rng.int(config.num_classes)] = 1;
feeds.targets = new ort.Tensor('float32', t, [batch, config.num_classes]);
for (const m of masks) {
  const dims = m.shape.map((d) => (typeof d === 'number' ? d : batch));
  feeds[m.name] = new ort.Tensor('float32', new Float32Array(dims.reduce((a, b) => a * b, 1)).fill(1), dims);
}
const p = await profileGraph(bytes, feeds, { threads, runs });
// Times of `runs` runs of a graph after one warm run, in a session opened as the trainer opens its
// step's (runtime/ort.ts: all optimizations, sequential, `threads` intra-op threads, spinning).
async function timeRuns(model: Uint8Array, graphFeeds: Record<string, ort.Tensor>, n: number): Promise<number[]> {
  const { session } = await createSession(model, { device: 'cpu', threads });
  const used = Object.fromEntries(session.inputNames.map((name) => [name, graphFeeds[name]]));
  await session.run(used);
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await session.run(used);
    times.push(performance.now() - t0);
  }
  await session.release();
  return times;
}

// the profiler's own cost per node inflates small kernels: the same graph timed without it, beside
const plain = await timeRuns(bytes, feeds, runs);
const plainMs = plain.reduce((a, b) => a + b, 0) / runs;
console.log(
  `${recipeName ?? 'seed'}: batch ${batch}, ${threads} threads, ` +
    `${p.ms.toFixed(1)} ms a step profiled ` +
    `(${Math.round((batch * 1000) / p.ms)} images/s), ` +
    `${plainMs.toFixed(1)} ms without the profiler ` +
    `(${Math.round((batch * 1000) / plainMs)} images/s); kernels ` +
    `${p.kernelMs.toFixed(1)} ms a run`,
);

// one 1024 x 1024 x 1024 product, as fast as these threads multiply: the best of 20 runs
const N = 1024;
const peakBytes = compileToBytes({ outputs: [['c', matmul(input('a', [N, N]), input('b', [N, N]))]], graphName: 'peak_product' });
const square = () =>
  new ort.Tensor(
    'float32',
    Float32Array.from({ length: N * N }, () => rng.normal()),
    [N, N],
  );
const best = Math.min(...(await timeRuns(peakBytes, { a: square(), b: square() }, 20)));
const peakRate = (2 * N * N * N) / 1e6 / best;
console.log(
  `one ${N}x${N}x${N} matrix product: ${best.toFixed(2)} ms at best, ` +
    `${peakRate.toFixed(0)} GFLOP/s; the step's products at that rate: ` +
    `${(p.products.flop / 1e6 / peakRate).toFixed(1)} ms`,
);
const anchor = Number(arg('anchor') ?? 0);
if (anchor > 0) console.log(`2.5x an anchor of ${anchor} images/s: ${((batch * 1000) / (2.5 * anchor)).toFixed(1)} ms a step`);
printProfile(p, { top: Number(arg('top') ?? 25) });
