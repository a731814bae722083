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
}

export async function profileGraph(model: Uint8Array | string, feeds: Record<string, ort.Tensor>, { threads, runs }: { threads: number; runs: number }): Promise<Profile> {
  const prefix = path.join(os.tmpdir(), `vitrine-profile-${process.pid}-${Date.now()}`);
  const options: ort.InferenceSession.SessionOptions = { graphOptimizationLevel: 'all', executionMode: 'sequential', intraOpNumThreads: threads, interOpNumThreads: 1, enableProfiling: true, profileFilePrefix: prefix };
  const session = typeof model === 'string' ? await ort.InferenceSession.create(model, options) : await ort.InferenceSession.create(model, options);
  const used = Object.fromEntries(session.inputNames.map((n) => [n, feeds[n]]));
  await session.run(used);
  const t0 = performance.now();
  for (let i = 0; i < runs; i++) await session.run(used);
  const ms = (performance.now() - t0) / runs;
  session.endProfiling(); // writes <prefix>_<date>.json and returns nothing
  await session.release();
  const file = readdirSync(os.tmpdir()).map((f) => path.join(os.tmpdir(), f)).find((f) => f.startsWith(`${prefix}_`) && f.endsWith('.json'))!;
  const events = JSON.parse(readFileSync(file, 'utf8')) as { cat: string; name: string; dur: number; args?: { op_name?: string; output_type_shape?: Record<string, number[]>[] } }[];
  rmSync(file);
  const perRun = runs + 1; // the warm run is profiled too
  const byOp = new Map<string, number>();
  const byNode = new Map<string, { op: string; us: number; shape: string }>();
  for (const e of events.filter((e) => e.cat === 'Node' && e.name.endsWith('_kernel_time'))) {
    const op = e.args?.op_name ?? '?';
    byOp.set(op, (byOp.get(op) ?? 0) + e.dur);
    const n = byNode.get(e.name) ?? { op, us: 0, shape: (e.args?.output_type_shape ?? []).map((o) => JSON.stringify(Object.values(o)[0])).join(' ') };
    n.us += e.dur;
    byNode.set(e.name, n);
  }
  const total = [...byOp.values()].reduce((a, b) => a + b, 0);
  return {
    ms,
    kernelMs: total / perRun / 1000,
    byOp: [...byOp].sort((a, b) => b[1] - a[1]).map(([op, us]) => [op, us / perRun / 1000]),
    nodes: [...byNode].sort((a, b) => b[1].us - a[1].us).map(([name, n]) => ({ name: name.replace(/_kernel_time$/, ''), op: n.op, ms: n.us / perRun / 1000, shape: n.shape })),
  };
}

/** The profile as lines: operator types (at most `ops`) with their share, then the `top` slowest nodes. */
export function printProfile(p: Profile, { ops = 20, top = 25 }: { ops?: number; top?: number } = {}): void {
  for (const [op, ms] of p.byOp.slice(0, ops)) console.log(`  ${op.padEnd(22)} ${ms.toFixed(2).padStart(7)} ms  ${((100 * ms) / p.kernelMs).toFixed(1).padStart(5)}%`);
  if (top <= 0) return;
  console.log('slowest nodes:');
  for (const n of p.nodes.slice(0, top)) console.log(`  ${n.op.padEnd(22)} ${n.ms.toFixed(2).padStart(7)} ms  ${n.name} ${n.shape}`);
}
