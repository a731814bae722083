// Where a training step's time goes: the step graph of a recipe's architecture (or the seed ViT) run
// by ONNX Runtime with its profiler on, then the time per operator type and the slowest nodes.
//   npx tsx bench/profile-step.ts [--recipe cct-cifar10] [--batch 128] [--runs 6] [--threads 2]

import { readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { compileToBytes } from '../trainer/autograd/onnx.js';
import { Rng } from '../trainer/nn/random.js';
import { trainStepOutputs } from '../trainer/train/step.js';
import { INPUT_NAME, ViT, pixelDims } from '../trainer/vit/model.js';
import { benchArchitecture } from './steps.js';

const arg = (name: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
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

const prefix = path.join(os.tmpdir(), `vitrine-profile-${process.pid}`);
const session = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'all', executionMode: 'sequential', intraOpNumThreads: threads, enableProfiling: true, profileFilePrefix: prefix });
const rng = new Rng(1);
const feeds: Record<string, ort.Tensor> = Object.fromEntries(params.map((p) => [p.name, new ort.Tensor('float32', p.data, p.shape)]));
feeds[INPUT_NAME] = new ort.Tensor('float32', Float32Array.from({ length: batch * 3072 }, () => rng.normal()), pixelDims(config, batch));
const t = new Float32Array(batch * config.num_classes);
for (let i = 0; i < batch; i++) t[i * config.num_classes + rng.int(config.num_classes)] = 1;
feeds.targets = new ort.Tensor('float32', t, [batch, config.num_classes]);
for (const m of masks) {
  const dims = m.shape.map((d) => (typeof d === 'number' ? d : batch));
  feeds[m.name] = new ort.Tensor('float32', new Float32Array(dims.reduce((a, b) => a * b, 1)).fill(1), dims);
}
const used = Object.fromEntries(session.inputNames.map((n) => [n, feeds[n]]));
await session.run(used);
const t0 = performance.now();
for (let i = 0; i < runs; i++) await session.run(used);
const ms = (performance.now() - t0) / runs;
session.endProfiling(); // writes <prefix>_<date>.json and returns nothing
const file = readdirSync(os.tmpdir()).map((f) => path.join(os.tmpdir(), f)).find((f) => f.startsWith(`${prefix}_`) && f.endsWith('.json'))!;
const events = JSON.parse(readFileSync(file, 'utf8')) as { cat: string; name: string; dur: number; args?: { op_name?: string; output_type_shape?: Record<string, number[]>[] } }[];
rmSync(file);
const nodeEvents = events.filter((e) => e.cat === 'Node' && e.name.endsWith('_kernel_time'));
const byOp = new Map<string, number>();
const byNode = new Map<string, { op: string; us: number; shape: string }>();
for (const e of nodeEvents) {
  const op = e.args?.op_name ?? '?';
  byOp.set(op, (byOp.get(op) ?? 0) + e.dur);
  const n = byNode.get(e.name) ?? { op, us: 0, shape: (e.args?.output_type_shape ?? []).map((o) => JSON.stringify(Object.values(o)[0])).join(' ') };
  n.us += e.dur;
  byNode.set(e.name, n);
}
const total = [...byOp.values()].reduce((a, b) => a + b, 0);
const perRun = runs + 1;
const top = Number(arg('top') ?? 25);
console.log(`${recipeName ?? 'seed'}: batch ${batch}, ${threads} threads, ${ms.toFixed(1)} ms a step (${Math.round((batch * 1000) / ms)} images/s); kernels ${(total / perRun / 1000).toFixed(1)} ms a run`);
for (const [op, us] of [...byOp].sort((a, b) => b[1] - a[1]).slice(0, 20)) console.log(`  ${op.padEnd(22)} ${(us / perRun / 1000).toFixed(2).padStart(7)} ms  ${((100 * us) / total).toFixed(1).padStart(5)}%`);
console.log('slowest nodes:');
for (const [name, n] of [...byNode].sort((a, b) => b[1].us - a[1].us).slice(0, top)) console.log(`  ${n.op.padEnd(22)} ${(n.us / perRun / 1000).toFixed(2).padStart(7)} ms  ${name.replace(/_kernel_time$/, '')} ${n.shape}`);
