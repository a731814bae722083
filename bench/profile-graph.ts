// Where a served model's time goes: its onnx/model.onnx (the plain classification, every output the
// server fetches) and its explanation graphs (onnx/relevance-light.onnx, the default map's, and
// onnx/relevance.onnx, the full one; each image explaining its own top prediction) run by ONNX Runtime with its
// profiler on, one intra-op thread as each server worker
// runs them, at one batch; the time of each per run and per image, their ratio, and per graph the
// time per operator type and the slowest nodes.
//   npx tsx bench/profile-graph.ts [--model models/cct-cifar10] [--batch 8] [--runs 200] [--threads 1] [--top 12]

import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { modelFileIn, readModelConfig } from '../runtime/model-config.js';
import { Rng } from '../trainer/nn/random.js';
import { profileGraph, printProfile } from './profile.js';
import { benchArgs } from './common.js';

const { arg } = benchArgs('npx tsx bench/profile-graph.ts [--model models/cct-cifar10] [--batch 8] [--runs 200] [--threads 1] [--top 12]', {
  strings: ['batch', 'model', 'runs', 'threads', 'top'],
});

const dir = arg('model', 'models/cct-cifar10');
const batch = Number(arg('batch', '8'));
const runs = Number(arg('runs', '200'));
const threads = Number(arg('threads', '1'));
const top = Number(arg('top', '12'));

const config = await readModelConfig(dir);
const modelFile = modelFileIn(dir);
if (!modelFile) throw new Error(`${dir}: no ONNX graph`);
const rng = new Rng(1);
const [h, w] = config.image_size;
const channels = config.mean.length;
const feeds: Record<string, ort.Tensor> = {
  [config.input_name]: new ort.Tensor(
    'float32',
    Float32Array.from({ length: batch * channels * h * w }, () => rng.normal()),
    [batch, channels, h, w],
  ),
};
const graphs: [string, string][] = [['model', modelFile]];
if (config.relevance) {
  feeds[config.relevance.class_input] = new ort.Tensor('float32', new Float32Array(batch).fill(config.relevance.top_class ?? 0), [batch]);
  if (config.relevance.light_file) graphs.push(['light', path.join(dir, config.relevance.light_file)]);
  graphs.push(['relevance', path.join(dir, config.relevance.file)]);
}
const times: Record<string, number> = {};
for (const [name, file] of graphs) {
  const p = await profileGraph(file, feeds, { threads, runs });
  times[name] = p.ms;
  console.log(
    `${dir} ${name} (${path.relative(dir, file)}): batch ${batch}, ` +
      `${threads} thread${threads > 1 ? 's' : ''}, ${p.ms.toFixed(2)} ms a ` +
      `run (${((p.ms * 1000) / batch).toFixed(0)} µs an image); kernels ` +
      `${p.kernelMs.toFixed(2)} ms`,
  );
  printProfile(p, { ops: 14, top });
}
if (times.relevance)
  console.log(
    JSON.stringify({
      bench: 'profile-graph',
      model: dir,
      batch,
      threads,
      model_ms: +times.model.toFixed(3),
      relevance_ms: +times.relevance.toFixed(3),
      ratio: +(times.relevance / times.model).toFixed(2),
      ...(times.light ? { light_ms: +times.light.toFixed(3), light_ratio: +(times.light / times.model).toFixed(2) } : {}),
    }),
  );
