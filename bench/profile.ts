// ONNX Runtime's profiler over a graph: the session run `runs` times (after one warm run) with the
// profiler on, then the mean wall time of a run, the kernels' time per operator type and the slowest
// nodes with their output shapes, printed. Serves bench/profile-step.ts (a training step) and
// bench/profile-graph.ts (a model folder's served graphs).

import { readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';

export interface Profile {
  /** Mean wall time of a run, in ms. */
  ms: number;
  /** Kernel time of a run, in ms. */
  kernelMs: number;
  /** Kernel time of a run per operator type, in ms, slowest first. */
  byOp: [string, number][];
  /** The slowest nodes: kernel time of a run in ms, and the output shapes. */
  nodes: { name: string; op: string; ms: number; shape: string }[];
  /** The matrix products (MatMul, FusedMatMul, Gemm, Conv, ConvTranspose) of a run: kernel time in ms and
   * floating-point operations (a multiply-add counts 2), from the shapes the profiler records. */
  products: { ms: number; flop: number };
}

type Shapes = Record<string, number[]>[] | undefined;
const PRODUCTS = new Set(['MatMul', 'FusedMatMul', 'Gemm', 'Conv', 'ConvTranspose']);
const count = (d: number[]) => d.reduce((a, b) => a * b, 1);

/**
 * A product node's floating-point operations from its input and output shapes: 2 x outputs x the
 * length of each dot product. A MatMul's inner length is read from whichever operand is not
 * broadcast (the larger estimate), so a transposed operand (FusedMatMul, Gemm) counts the same;
 * a convolution's is its kernel's size per output channel (a transposed one's, per input).
 */
export function productFlop(op: string, inputs: Shapes, outputs: Shapes): number {
  const ins = (inputs ?? []).map((o) => Object.values(o)[0]);
  const out = (outputs ?? []).map((o) => Object.values(o)[0])[0];
  if (!out || ins.length < 2) return 0;
  const [a, b] = ins;
  if (op === 'Conv') return 2 * count(out) * (count(b) / b[0]);
  if (op === 'ConvTranspose') return 2 * count(a) * (count(b) / b[0]);
  const m = out.length >= 2 ? out[out.length - 2] : 1;
  const n = out[out.length - 1];
  const inner = Math.max((count(a) * n) / count(out), (count(b) * m) / count(out));
  return 2 * count(out) * inner;
}

export async function profileGraph(
  model: Uint8Array | string,
  feeds: Record<string, ort.Tensor>,
  { threads, runs }: { threads: number; runs: number },
): Promise<Profile> {
  const prefix = path.join(os.tmpdir(), `vitrine-profile-${process.pid}-${Date.now()}`);
  const options: ort.InferenceSession.SessionOptions = {
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    enableProfiling: true,
    profileFilePrefix: prefix,
  };
  const session =
    typeof model === 'string' ? await ort.InferenceSession.create(model, options) : await ort.InferenceSession.create(model, options);
  const used = Object.fromEntries(session.inputNames.map((n) => [n, feeds[n]]));
  await session.run(used);
  const t0 = performance.now();
  for (let i = 0; i < runs; i++) await session.run(used);
  const ms = (performance.now() - t0) / runs;
  session.endProfiling(); // writes <prefix>_<date>.json and returns nothing
  await session.release();
  const file = readdirSync(os.tmpdir())
    .map((f) => path.join(os.tmpdir(), f))
    .find((f) => f.startsWith(`${prefix}_`) && f.endsWith('.json'))!;
  const events = JSON.parse(readFileSync(file, 'utf8')) as {
    cat: string;
    name: string;
    dur: number;
    args?: { op_name?: string; input_type_shape?: Shapes; output_type_shape?: Shapes };
  }[];
  rmSync(file);
  const perRun = runs + 1; // the warm run is profiled too
  const byOp = new Map<string, number>();
  const byNode = new Map<string, { op: string; us: number; shape: string }>();
  const products = { us: 0, flop: 0 };
  for (const e of events.filter((e) => e.cat === 'Node' && e.name.endsWith('_kernel_time'))) {
    const op = e.args?.op_name ?? '?';
    if (PRODUCTS.has(op)) {
      products.us += e.dur;
      products.flop += productFlop(op, e.args?.input_type_shape, e.args?.output_type_shape);
    }
    byOp.set(op, (byOp.get(op) ?? 0) + e.dur);
    const n = byNode.get(e.name) ?? {
      op,
      us: 0,
      shape: (e.args?.output_type_shape ?? []).map((o) => JSON.stringify(Object.values(o)[0])).join(' '),
    };
    n.us += e.dur;
    byNode.set(e.name, n);
  }
  const total = [...byOp.values()].reduce((a, b) => a + b, 0);
  return {
    ms,
    kernelMs: total / perRun / 1000,
    byOp: [...byOp].sort((a, b) => b[1] - a[1]).map(([op, us]) => [op, us / perRun / 1000]),
    nodes: [...byNode]
      .sort((a, b) => b[1].us - a[1].us)
      .map(([name, n]) => ({ name: name.replace(/_kernel_time$/, ''), op: n.op, ms: n.us / perRun / 1000, shape: n.shape })),
    products: { ms: products.us / perRun / 1000, flop: products.flop / perRun },
  };
}

/** The profile as lines: operator types (at most `ops`) with their share, then the `top` slowest nodes. */
export function printProfile(p: Profile, { ops = 20, top = 25 }: { ops?: number; top?: number } = {}): void {
  const { ms, flop } = p.products;
  console.log(
    `  matrix products (${[...PRODUCTS].join(', ')}): ${ms.toFixed(1)} ms ` +
      `for ${(flop / 1e9).toFixed(2)} GFLOP (${(flop / 1e6 / ms).toFixed(0)} ` +
      `GFLOP/s); every other kernel ${(p.kernelMs - ms).toFixed(1)} ms`,
  );
  for (const [op, ms] of p.byOp.slice(0, ops))
    console.log(`  ${op.padEnd(22)} ${ms.toFixed(2).padStart(7)} ms  ${((100 * ms) / p.kernelMs).toFixed(1).padStart(5)}%`);
  if (top <= 0) return;
  console.log('slowest nodes:');
  for (const n of p.nodes.slice(0, top)) console.log(`  ${n.op.padEnd(22)} ${n.ms.toFixed(2).padStart(7)} ms  ${n.name} ${n.shape}`);
}
