// The GPU check: every graph of .gpu-check/graphs/manifest.json (bench/gpu-check/graphs.ts) on the
// WebGPU provider and on the CPU provider of the same machine: outputs compared, images/s of each,
// and for the training steps where the time goes around the graph (gradients read back, AdamW in
// JavaScript). It imports nothing of vitrine's, only onnxruntime-node, and uses only TypeScript that
// Node.js 24 runs as it is, so that it runs on a GPU machine from what bench/gpu-check/pack.sh carries.
//   node check.ts --graphs graphs [--quick] [--only name,...] [--out results.jsonl]

import { appendFileSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
// erased when Node.js strips the types: the check needs nothing of graphs.ts at run time
import type { GraphEntry as Entry } from './graphs.js';

const { values } = parseArgs({
  options: {
    graphs: { type: 'string', default: 'graphs' },
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    out: { type: 'string' },
    seconds: { type: 'string', default: '6' },
  },
});
const manifest = JSON.parse(readFileSync(path.join(values.graphs!, 'manifest.json'), 'utf8')) as Entry[];
const only = values.only ? new Set(values.only.split(',')) : null;
// --quick: batch 2 and one timed run, for a software Vulkan device (correctness only).
const quick = values.quick!;
const budgetS = Number(values.seconds);
const cores = os.cpus().length;

function emit(record: Record<string, unknown>): void {
  const line = JSON.stringify({ bench: 'gpu-check', ...record });
  console.log(line);
  if (values.out) appendFileSync(values.out, line + '\n');
}

/** A seeded generator (mulberry32) and its normal draws: the same feeds for both providers. */
function rng(seed: number): { next: () => number; normal: () => number } {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, normal: () => Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next()) };
}

const size = (dims: number[]) => dims.reduce((a, b) => a * b, 1);

/** Parameters as the trainer starts them, near enough for timing and comparing: norms' weights 1,
 *  biases 0, everything else normal(0, 0.02). */
function paramValue(name: string, dims: number[], r: ReturnType<typeof rng>): Float32Array {
  if (/norm.*\.weight$/.test(name)) return new Float32Array(size(dims)).fill(1);
  if (/\.bias$/.test(name)) return new Float32Array(size(dims));
  return Float32Array.from({ length: size(dims) }, () => 0.02 * r.normal());
}

function feedsOf(e: Entry, batch: number): Record<string, ort.Tensor> {
  const r = rng(7);
  const feeds: Record<string, ort.Tensor> = {};
  for (const [name, dims] of Object.entries(e.params)) feeds[name] = new ort.Tensor('float32', paramValue(name, dims, r), dims);
  for (const [name, spec] of Object.entries(e.inputs)) {
    const dims = [batch, ...spec.dims.slice(1)];
    const n = size(dims);
    let data: Float32Array;
    if (spec.fill === 'normal') data = Float32Array.from({ length: n }, () => r.normal());
    else if (spec.fill === 'class')
      data = Float32Array.from({ length: n }, (_, i) => (i % 2 === 0 ? -1 : i % 10)); // -1: the predicted class
    else {
      const classes = dims[1];
      data = new Float32Array(n);
      for (let b = 0; b < batch; b++) data[b * classes + Math.floor(r.next() * classes)] = 1;
    }
    feeds[name] = new ort.Tensor('float32', data, dims);
  }
  return feeds;
}

function options(
  provider: 'cpu' | 'webgpu',
  e: Entry,
  preferredOutputLocation?: Record<string, ort.Tensor.DataLocation>,
): ort.InferenceSession.SessionOptions {
  const ep: ort.InferenceSession.ExecutionProviderConfig =
    provider === 'cpu' ? 'cpu' : e.cpuNodes.length > 0 ? { name: 'webgpu', forceCpuNodeNames: e.cpuNodes } : { name: 'webgpu' };
  return {
    executionProviders: [ep],
    graphOptimizationLevel: 'all',
    intraOpNumThreads: cores,
    logSeverityLevel: 3,
    ...(preferredOutputLocation ? { preferredOutputLocation } : {}),
  };
}

/** Seconds per run: a warm-up, then runs until the budget or the count is spent. */
async function timeRuns(run: () => Promise<void>): Promise<number> {
  await run();
  const count = quick ? 1 : 50;
  const start = performance.now();
  let n = 0;
  while (n < count && (n === 0 || performance.now() - start < budgetS * 1000)) {
    await run();
    n++;
  }
  return (performance.now() - start) / 1000 / n;
}

/** Largest |a - b| over the largest |a| or `floor`, whichever is larger. */
function relativeDiff(a: Float32Array, b: Float32Array, floor: number): number {
  if (a.length !== b.length || a.length === 0) return Infinity;
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(a[i]));
  }
  return Number.isFinite(diff) ? diff / Math.max(scale, floor, 1e-30) : Infinity;
}

/** One AdamW update over arrays of these sizes, as trainer/train/optim.ts does it in JavaScript. */
function adamwSeconds(params: Float32Array[]): number {
  const moments = params.map((p) => [new Float32Array(p.length), new Float32Array(p.length)]);
  const grads = params.map((p) => p.slice());
  const start = performance.now();
  for (let k = 0; k < params.length; k++) {
    const [p, g, [m, v]] = [params[k], grads[k], moments[k]];
    for (let i = 0; i < p.length; i++) {
      m[i] = 0.9 * m[i] + 0.1 * g[i];
      v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i];
      p[i] -= 1e-3 * (m[i] / 0.1 / (Math.sqrt(v[i] / 0.001) + 1e-8) + 0.01 * p[i]);
    }
  }
  return (performance.now() - start) / 1000;
}

let failures = 0;
for (const e of manifest) {
  if (only && !only.has(e.name)) continue;
  const batch = quick ? 2 : e.batch;
  const file = path.join(values.graphs!, e.file);
  const feeds = feedsOf(e, batch);
  const cpu = await ort.InferenceSession.create(file, options('cpu', e));
  const gpu = await ort.InferenceSession.create(file, options('webgpu', e));
  const [a, b] = [await cpu.run(feeds), await gpu.run(feeds)];
  // A step's gradients far below the largest (the keys' biases: zero in exact arithmetic) are
  // compared against a thousandth of the largest; a map's values likewise against its own largest.
  let worst = 0;
  let worstName = '';
  const largest = cpu.outputNames.reduce((m, o) => (a[o].data as Float32Array).reduce((x, v) => Math.max(x, Math.abs(v)), m), 0);
  for (const o of cpu.outputNames) {
    const exact = o === 'loss' || o === 'logits' || o.startsWith('grad.');
    const d = relativeDiff(a[o].data as Float32Array, b[o].data as Float32Array, exact ? 1e-3 * largest : 0) / (exact ? 1e-4 : 1e-3);
    if (d > worst) [worst, worstName] = [d, o];
  }
  const agree = worst <= 1;
  if (!agree) failures++;
  const cpuS = await timeRuns(async () => void (await cpu.run(feeds)));
  const gpuS = await timeRuns(async () => void (await gpu.run(feeds)));
  const record: Record<string, unknown> = {
    graph: e.name,
    kind: e.kind,
    batch,
    agree,
    worst_output: worstName,
    worst_over_tolerance: +worst.toPrecision(3),
    cpu_images_per_s: Math.round(batch / cpuS),
    webgpu_images_per_s: Math.round(batch / gpuS),
    cpu_ms: +(cpuS * 1000).toFixed(2),
    webgpu_ms: +(gpuS * 1000).toFixed(2),
    cores,
  };
  if (e.kind === 'step') {
    // The trainer reads every gradient back each step and updates in JavaScript: the same step with
    // the gradients left on the GPU, and one AdamW pass, say what those cost.
    const kept = Object.fromEntries(
      gpu.outputNames.map((o): [string, ort.Tensor.DataLocation] => [o, o.startsWith('grad.') ? 'gpu-buffer' : 'cpu']),
    );
    const resident = await ort.InferenceSession.create(file, options('webgpu', e, kept));
    const keptS = await timeRuns(async () => {
      const out = await resident.run(feeds);
      for (const t of Object.values(out)) if (t.location === 'gpu-buffer') t.dispose();
    });
    const adamS = adamwSeconds(Object.keys(e.params).map((n) => feeds[n].data as Float32Array));
    Object.assign(record, {
      parameters: Object.values(e.params).reduce((s, d) => s + size(d), 0),
      webgpu_grads_on_gpu_ms: +(keptS * 1000).toFixed(2),
      readback_ms: +((gpuS - keptS) * 1000).toFixed(2),
      adamw_js_ms: +(adamS * 1000).toFixed(2),
      webgpu_trainer_images_per_s: Math.round(batch / (gpuS + adamS)),
    });
    await resident.release();
  }
  emit(record);
  await cpu.release();
  await gpu.release();
}
emit({ summary: true, failures, quick });
process.exitCode = failures > 0 ? 1 : 0;
