// Compiles a graph to an ONNX ModelProto (opset 17) with the ONNX schema's protobuf classes
// (onnx-proto.ts), then serializes it. Inputs and params become graph inputs, or params become
// initializers when their values are given (an inference export).

import { type Shape, type Tensor, topoSort } from './graph.js';
import { ONNX_RUNTIME, OPS, OPSET, type OnnxEmitter } from './ops.js';
import {
  DataType,
  type ExternalPlace,
  type INodeProto,
  type ITensorProto,
  type IValueInfoProto,
  type ModelProto,
  encodeAttribute,
  externalTensor,
  floatTensor,
  int64Tensor,
  int8Tensor,
  onnx,
  serializeModel,
} from './onnx-proto.js';

export { onnx, decodeModel, serializeModel } from './onnx-proto.js';

export interface CompileOptions {
  /** Output name -> tensor, in the order the model lists them. */
  outputs: ReadonlyArray<readonly [string, Tensor]>;
  /** Param values to store as initializers; params without a value stay graph inputs. */
  initializers?: ReadonlyMap<string, Float32Array>;
  /** Params whose values lie in an external data file (shared with another graph): where they are. */
  external?: ReadonlyMap<string, ExternalPlace>;
  /** Fixes the order of graph inputs (others follow in graph order). */
  inputOrder?: readonly string[];
  metadata?: Readonly<Record<string, string>>;
  graphName?: string;
  docString?: string;
  /** false: no MaxPool with its Indices output (the max-pool gradient emitted without it), for
   *  providers that refuse it (WebGPU). Default true: the indices' emission is faster on the CPU. */
  maxPoolIndices?: boolean;
}

function valueInfo(name: string, shape: Shape): IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: DataType.FLOAT,
        shape: { dim: shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

/** An emitter that appends an op's ONNX to the given nodes and initializers (value names from
 *  `fresh`): compileModel's, and trainer/quantize.ts's over an existing graph. Small constants are
 *  written once. */
export function graphEmitter(
  nodes: INodeProto[],
  initializers: ITensorProto[],
  fresh: (hint: string) => string,
  maxPoolIndices = true,
): OnnxEmitter {
  const constCache = new Map<string, string>();
  return {
    node: (opType, ins, outs, attrs = {}, domain) => {
      nodes.push({
        opType,
        ...(domain ? { domain } : {}),
        input: ins,
        output: outs,
        name: fresh(opType),
        attribute: Object.entries(attrs).map(([k, v]) => encodeAttribute(k, v)),
      });
    },
    int64s: (values) => {
      const key = `i:${values.join(',')}`;
      let name = constCache.get(key);
      if (!name) {
        name = fresh('const_i64');
        initializers.push(int64Tensor(name, values));
        constCache.set(key, name);
      }
      return name;
    },
    floats: (values, shape) => {
      const key = values.length <= 16 ? `f:${shape.join('x')}:${Array.from(values).join(',')}` : undefined;
      let name = key ? constCache.get(key) : undefined;
      if (!name) {
        name = fresh('const_f32');
        initializers.push(floatTensor(name, values, shape));
        if (key) constCache.set(key, name);
      }
      return name;
    },
    int8s: (values, shape) => {
      const name = fresh('const_i8');
      initializers.push(int8Tensor(name, values, shape));
      return name;
    },
    fresh,
    maxPoolIndices,
  };
}

/** Builds the ModelProto object (not yet serialized). */
export function compileModel(opts: CompileOptions): ModelProto {
  const nodes: INodeProto[] = [];
  const initializers: ITensorProto[] = [];
  const inputs = new Map<string, Shape>();
  const leaves = new Map<string, Shape>();
  const names = new Map<number, string>();
  let counter = 0;
  const fresh = (hint: string) => `${hint}_${counter++}`;
  const emitter = graphEmitter(nodes, initializers, fresh, opts.maxPoolIndices ?? true);

  const outputTensors = opts.outputs.map(([, t]) => t);
  for (const n of topoSort(outputTensors)) {
    if (n.op === 'input' || n.op === 'param') {
      const name = n.attrs.name as string;
      names.set(n.id, name);
      const prev = leaves.get(name);
      if (prev) {
        if (prev.join() !== n.shape.join()) throw new Error(`onnx: two leaves named '${name}' with different shapes`);
        continue;
      }
      leaves.set(name, n.shape);
      const value = n.op === 'param' ? opts.initializers?.get(name) : undefined;
      const place = n.op === 'param' ? opts.external?.get(name) : undefined;
      if (place) initializers.push(externalTensor(name, n.shape as number[], place));
      else if (value) initializers.push(floatTensor(name, value, n.shape as number[]));
      else inputs.set(name, n.shape);
      continue;
    }
    if (n.op === 'const') {
      names.set(n.id, emitter.floats(n.attrs.value as Float64Array, n.shape as number[]));
      continue;
    }
    const out = fresh(n.op);
    OPS[n.op].onnx(
      emitter,
      n.inputs.map((i) => names.get(i.id)!),
      out,
      n,
    );
    names.set(n.id, out);
  }

  // Graph outputs get their public names; Identity where a value is also used inside or named twice.
  const outputNames = new Set<string>();
  for (const [name, t] of opts.outputs) {
    if (outputNames.has(name)) throw new Error(`onnx: output '${name}' named twice`);
    outputNames.add(name);
    emitter.node('Identity', [names.get(t.id)!], [name]);
  }

  const ordered = [...inputs.keys()];
  if (opts.inputOrder) ordered.sort((a, b) => rank(opts.inputOrder!, a) - rank(opts.inputOrder!, b));
  return onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'vitrine',
    producerVersion: '0.1.0',
    docString: opts.docString ?? '',
    opsetImport: [
      { domain: '', version: OPSET },
      ...(nodes.some((n) => n.domain === ONNX_RUNTIME) ? [{ domain: ONNX_RUNTIME, version: 1 }] : []),
    ],
    metadataProps: Object.entries(opts.metadata ?? {}).map(([key, value]) => ({ key, value })),
    graph: {
      name: opts.graphName ?? 'vitrine',
      node: nodes,
      initializer: initializers,
      input: ordered.map((name) => valueInfo(name, inputs.get(name)!)),
      output: opts.outputs.map(([name, t]) => valueInfo(name, t.shape)),
    },
  });
}

function rank(order: readonly string[], name: string): number {
  const i = order.indexOf(name);
  return i < 0 ? order.length : i;
}

export function compileToBytes(opts: CompileOptions): Uint8Array {
  return serializeModel(compileModel(opts));
}
