// Dynamic int8 quantization of a model folder's classification graph: each matrix product of
// activations by a weight matrix (a MatMul whose second operand is a weight, as it is or transposed)
// that is large enough to gain (QUANTIZE below) becomes ONNX Runtime's DynamicQuantizeMatMul
// (com.microsoft): the weights int8 per output column (symmetric, zero point 0), the activations
// quantized to uint8 per tensor at run time. Everything else stays float: LayerNorm, Softmax, GELU,
// the residual adds, the attention products (both operands are activations), so the attention
// probabilities are still outputs and rollout and cls maps come from the int8 graph. The
// explanation graphs stay float: gradients through quantized products are not defined.

import { promises as fs } from 'node:fs';
import path from 'node:path';
import {
  DataType,
  decodeAttribute,
  type IModelProto,
  type INodeProto,
  type ITensorProto,
  decodeModel,
  dimsOf,
  readTensor,
  serializeModel,
} from './autograd/onnx-proto.js';

/**
 * Which products are quantized, by their weight's size: below `minWeights` elements the int8 kernel's
 * fixed cost (quantizing the activations, the output's rescale) outweighs the cheaper arithmetic.
 * `npm run bench:quantize` measures it.
 */
export const QUANTIZE = {
  /** The smallest weight matrix (K x N elements) made int8. */
  minWeights: 4096,
  /** The op products become. */
  op: 'DynamicQuantizeMatMul',
  domain: 'com.microsoft',
} as const;

export interface QuantizedProduct {
  node: string;
  weight: string;
  shape: [number, number];
  /** The largest weight error int8 makes, relative to the column's largest weight (at most 1/254). */
  maxRelativeError: number;
}

export interface QuantizeReport {
  products: QuantizedProduct[];
  /** Products left float, and why. */
  kept: { node: string; why: string }[];
  floatBytes: number;
  int8Bytes: number;
}

/** Per-column symmetric int8: w ≈ q * scale[n], q in [-127, 127]. */
export function quantizeColumns(w: Float32Array, k: number, n: number): { q: Int8Array; scale: Float32Array; maxRelativeError: number } {
  const scale = new Float32Array(n);
  for (let c = 0; c < n; c++) {
    let max = 0;
    for (let r = 0; r < k; r++) max = Math.max(max, Math.abs(w[r * n + c]));
    scale[c] = max > 0 ? max / 127 : 1;
  }
  const q = new Int8Array(k * n);
  let worst = 0;
  for (let r = 0; r < k; r++)
    for (let c = 0; c < n; c++) {
      const v = Math.max(-127, Math.min(127, Math.round(w[r * n + c] / scale[c])));
      q[r * n + c] = v;
      worst = Math.max(worst, Math.abs(v * scale[c] - w[r * n + c]) / (scale[c] * 127));
    }
  return { q, scale, maxRelativeError: worst };
}

/** A weight matrix as a product reads it: [K, N] row-major, and the initializer it came from. */
interface Weight {
  w: Float32Array;
  k: number;
  n: number;
  source: string;
}

const tensor = (name: string, dataType: number, dims: number[], bytes: Uint8Array): ITensorProto => ({
  name,
  dataType,
  dims,
  rawData: bytes,
});

/** Rewrites the graph in place; `dir` is where its external data lies. */
export function quantizeGraph(model: IModelProto, dir: string, minWeights: number = QUANTIZE.minWeights): QuantizeReport {
  const graph = model.graph!;
  const inits = new Map((graph.initializer ?? []).map((t) => [t.name!, t]));
  const producers = new Map<string, INodeProto>();
  for (const n of graph.node ?? []) for (const o of n.output ?? []) producers.set(o, n);

  /** The initializer a value is, through Identity nodes (PyTorch's exporter writes some). */
  const constantOf = (name: string): string => {
    let n = name;
    for (let hops = 0; hops < 8 && !inits.has(n); hops++) {
      const p = producers.get(n);
      if (p?.opType !== 'Identity') break;
      n = p.input![0];
    }
    return n;
  };

  /** A float matrix initializer as the product's [K, N] weight: as stored, or transposed (stored [N, K]). */
  const matrixOf = (init: ITensorProto | undefined, transpose: boolean): Weight | null => {
    if (!init || dimsOf(init).length !== 2 || init.dataType !== DataType.FLOAT) return null;
    const [rows, cols] = dimsOf(init);
    const src = readTensor(init, dir).data as Float32Array;
    if (!transpose) return { w: src, k: rows, n: cols, source: init.name! };
    const w = new Float32Array(rows * cols);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) w[c * rows + r] = src[r * cols + c];
    return { w, k: cols, n: rows, source: init.name! };
  };

  /** The weight a product's second operand is: an initializer, or one transposed by a Transpose node. */
  const weightOf = (name: string): Weight | null => {
    const direct = inits.get(constantOf(name));
    if (direct) return matrixOf(direct, false);
    const t = producers.get(name);
    if (t?.opType !== 'Transpose') return null;
    const perm = t.attribute?.find((a) => a.name === 'perm')?.ints?.map(Number) ?? [1, 0];
    if (perm[0] !== 1 || perm[1] !== 0) return null;
    return matrixOf(inits.get(t.input![0]), true);
  };

  /** A Gemm that is a product by a weight plus a bias vector (alpha 1, beta 1, A not transposed), as
   *  PyTorch exports nn.Linear on 2-D inputs: its weight as [K, N], and its bias. */
  const gemmOf = (node: INodeProto): { weight: Weight; bias: string | null } | null => {
    const attr = (name: string, fallback: number) => {
      const a = node.attribute?.find((x) => x.name === name);
      return a ? Number(decodeAttribute(a)) : fallback;
    };
    if (attr('alpha', 1) !== 1 || attr('beta', 1) !== 1 || attr('transA', 0) !== 0) return null;
    const bias = node.input![2] ? constantOf(node.input![2]) : null;
    const c = bias ? inits.get(bias) : undefined;
    if (bias && (!c || dimsOf(c).length !== 1 || c.dataType !== DataType.FLOAT)) return null;
    const weight = matrixOf(inits.get(constantOf(node.input![1])), attr('transB', 0) !== 0);
    return weight ? { weight, bias } : null;
  };

  const report: QuantizeReport = { products: [], kept: [], floatBytes: 0, int8Bytes: 0 };
  const nodes: INodeProto[] = [];
  for (const node of graph.node ?? []) {
    const gemm = node.opType === 'Gemm' ? gemmOf(node) : null;
    if (node.opType !== 'MatMul' && !gemm) {
      nodes.push(node);
      continue;
    }
    const weight = gemm ? gemm.weight : weightOf(node.input![1]);
    if (!weight) {
      nodes.push(node);
      continue; // activations by activations (the attention products): float by design
    }
    if (weight.k * weight.n < minWeights) {
      report.kept.push({ node: node.name ?? node.output![0], why: `${weight.k}x${weight.n} weights, under ${minWeights}` });
      nodes.push(node);
      continue;
    }
    const { q, scale, maxRelativeError } = quantizeColumns(weight.w, weight.k, weight.n);
    const base = `${weight.source}.int8`;
    if (!inits.has(base)) {
      const added = [
        tensor(base, DataType.INT8, [weight.k, weight.n], new Uint8Array(q.buffer)),
        tensor(`${weight.source}.scale`, DataType.FLOAT, [weight.n], new Uint8Array(scale.buffer)),
        tensor(`${weight.source}.zero`, DataType.INT8, [weight.n], new Uint8Array(weight.n)),
      ];
      for (const t of added) inits.set(t.name!, t);
      graph.initializer!.push(...added);
      report.floatBytes += weight.k * weight.n * 4;
      report.int8Bytes += weight.k * weight.n + weight.n * 5;
    }
    nodes.push({
      name: `${node.name ?? node.output![0]}.int8`,
      opType: QUANTIZE.op,
      domain: QUANTIZE.domain,
      input: [node.input![0], base, `${weight.source}.scale`, `${weight.source}.zero`, ...(gemm?.bias ? [gemm.bias] : [])],
      output: node.output,
    });
    report.products.push({ node: node.name ?? node.output![0], weight: weight.source, shape: [weight.k, weight.n], maxRelativeError });
  }
  graph.node = nodes;
  // what no node reads any more goes: the float weights, and the Transposes that fed them
  let changed = true;
  while (changed) {
    changed = false;
    const read = new Set([...(graph.node ?? []).flatMap((n) => n.input ?? []), ...(graph.output ?? []).map((o) => o.name!)]);
    const before = graph.node!.length;
    graph.node = graph.node!.filter((n) => (n.output ?? []).some((o) => read.has(o)));
    const initsBefore = graph.initializer!.length;
    graph.initializer = graph.initializer!.filter((t) => read.has(t.name!));
    changed = graph.node.length !== before || graph.initializer.length !== initsBefore;
  }
  if (report.products.length > 0 && !(model.opsetImport ?? []).some((o) => o.domain === QUANTIZE.domain))
    model.opsetImport = [...(model.opsetImport ?? []), { domain: QUANTIZE.domain, version: 1 }];
  return report;
}

/** Reads, rewrites and writes a classification graph (`dest` beside any external data it reads). */
export async function quantizeModelFile(src: string, dest: string, minWeights: number = QUANTIZE.minWeights): Promise<QuantizeReport> {
  const model = decodeModel(await fs.readFile(src));
  const report = quantizeGraph(model, path.dirname(src), minWeights);
  await fs.writeFile(dest, serializeModel(model));
  return report;
}
