// Dynamic int8 quantization of a model folder's classification graph: each matrix product of
// activations by a weight matrix (a MatMul whose second operand is a weight, as it is or transposed)
// that is large enough to gain (QUANTIZE below) becomes the op table's quantized_matmul, written as
// its emission writes it, ONNX Runtime's DynamicQuantizeMatMul (com.microsoft): the weights int8 per
// output column (symmetric, zero point 0), the activations quantized to uint8 per tensor at run time.
// Everything else stays float: LayerNorm, Softmax, GELU, the residual adds, the attention products
// (both operands are activations), so the attention probabilities are still outputs and rollout and
// cls maps come from the int8 graph. The explanation graphs stay float: gradients through quantized
// products are not defined.

import { promises as fs } from 'node:fs';
import path from 'node:path';
import { quantizeColumns } from './autograd/ndarray.js';
import { graphEmitter } from './autograd/onnx.js';
import { ONNX_RUNTIME, OPS, QUANTIZED_MATMUL_ONNX, input, quantizedMatmul } from './autograd/ops.js';
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
  /** What the products become: the op table's quantized_matmul, written as ONNX Runtime's op. */
  op: QUANTIZED_MATMUL_ONNX,
  domain: ONNX_RUNTIME,
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

/** Per-column symmetric int8 (the op table's, re-exported for the command and its tests). */
export { quantizeColumns } from './autograd/ndarray.js';

/** A weight matrix as a product reads it: [K, N] row-major, and the initializer it came from. */
interface Weight {
  w: Float32Array;
  k: number;
  n: number;
  source: string;
}

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
    const x = input(node.input![0], ['rows', weight.k]);
    const bias = gemm?.bias ? input(gemm.bias, [weight.n]) : undefined;
    const product = quantizedMatmul(x, { q, scale }, bias);
    const prefix = `${node.name || node.output![0]}.int8`;
    let counter = 0;
    const emitter = graphEmitter(nodes, graph.initializer!, (hint) => `${prefix}/${hint}_${counter++}`);
    OPS[product.op].onnx(emitter, [node.input![0], ...(gemm?.bias ? [gemm.bias] : [])], node.output![0], product);
    report.floatBytes += weight.k * weight.n * 4;
    report.int8Bytes += weight.k * weight.n + weight.n * 5;
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
  if (report.products.length > 0 && !(model.opsetImport ?? []).some((o) => o.domain === ONNX_RUNTIME))
    model.opsetImport = [...(model.opsetImport ?? []), { domain: ONNX_RUNTIME, version: 1 }];
  return report;
}

/** Reads, rewrites and writes a classification graph (`dest` beside any external data it reads). */
export async function quantizeModelFile(src: string, dest: string, minWeights: number = QUANTIZE.minWeights): Promise<QuantizeReport> {
  const model = decodeModel(await fs.readFile(src));
  const report = quantizeGraph(model, path.dirname(src), minWeights);
  await fs.writeFile(dest, serializeModel(model));
  return report;
}
