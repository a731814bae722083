// Compiles a graph to an ONNX ModelProto (opset 17) with the ONNX schema's protobuf classes
// (the onnx-proto package), then serializes it. Inputs and params become graph inputs, or params become
// initializers when their values are given (an inference export).

import { createRequire } from 'node:module';
import { Shape, Tensor, topoSort } from './graph.js';
import { OPS, OPSET, OnnxEmitter } from './ops.js';

const require = createRequire(import.meta.url);
const { onnx } = require('onnx-proto') as typeof import('onnx-proto');
export { onnx };

const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT64 = onnx.TensorProto.DataType.INT64;

export interface CompileOptions {
  /** Output name -> tensor, in the order the model lists them. */
  outputs: ReadonlyArray<readonly [string, Tensor]>;
  /** Param values to store as initializers; params without a value stay graph inputs. */
  initializers?: ReadonlyMap<string, Float32Array>;
  /** Fixes the order of graph inputs (others follow in graph order). */
  inputOrder?: readonly string[];
  metadata?: Readonly<Record<string, string>>;
  graphName?: string;
  docString?: string;
}

function valueInfo(name: string, shape: Shape): import('onnx-proto').onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: FLOAT,
        shape: { dim: shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function floatTensor(name: string, values: ArrayLike<number>, dims: readonly number[]): import('onnx-proto').onnx.ITensorProto {
  const f32 = values instanceof Float32Array ? values : Float32Array.from(values);
  return { name, dims: [...dims], dataType: FLOAT, rawData: new Uint8Array(f32.buffer.slice(f32.byteOffset, f32.byteOffset + f32.byteLength)) };
}

function int64Tensor(name: string, values: readonly number[]): import('onnx-proto').onnx.ITensorProto {
  const raw = new BigInt64Array(values.map((v) => BigInt(v)));
  return { name, dims: [values.length], dataType: INT64, rawData: new Uint8Array(raw.buffer) };
}

function attribute(name: string, v: number | number[] | string): import('onnx-proto').onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof v === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) return { name, type: T.INTS, ints: v };
  // Integral values of integer attributes are written as INT; epsilon and friends as FLOAT.
  return Number.isInteger(v) && name !== 'epsilon' ? { name, type: T.INT, i: v } : { name, type: T.FLOAT, f: v };
}

/** Builds the ModelProto object (not yet serialized). */
export function compileModel(opts: CompileOptions): import('onnx-proto').onnx.ModelProto {
  const nodes: import('onnx-proto').onnx.INodeProto[] = [];
  const initializers: import('onnx-proto').onnx.ITensorProto[] = [];
  const inputs = new Map<string, Shape>();
  const leaves = new Map<string, Shape>();
  const names = new Map<number, string>();
  let counter = 0;
  const fresh = (hint: string) => `${hint}_${counter++}`;
  const constCache = new Map<string, string>();

  const emitter: OnnxEmitter = {
    node: (opType, ins, outs, attrs = {}) => {
      nodes.push({ opType, input: ins, output: outs, name: fresh(opType), attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)) });
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
    fresh,
  };

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
      if (value) initializers.push(floatTensor(name, value, n.shape as number[]));
      else inputs.set(name, n.shape);
      continue;
    }
    if (n.op === 'const') {
      names.set(n.id, emitter.floats(n.attrs.value as Float64Array, n.shape as number[]));
      continue;
    }
    const out = fresh(n.op);
    OPS[n.op].onnx(emitter, n.inputs.map((i) => names.get(i.id)!), out, n);
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
    opsetImport: [{ domain: '', version: OPSET }],
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

export function serializeModel(model: import('onnx-proto').onnx.ModelProto): Uint8Array {
  return onnx.ModelProto.encode(model).finish();
}

export function compileToBytes(opts: CompileOptions): Uint8Array {
  return serializeModel(compileModel(opts));
}

export function decodeModel(bytes: Uint8Array): import('onnx-proto').onnx.ModelProto {
  return onnx.ModelProto.decode(bytes);
}
