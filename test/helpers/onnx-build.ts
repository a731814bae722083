// Small ONNX models written by hand for tests: nodes, initializers and a model around them.

import {
  type AttrValue,
  DataType,
  type IModelProto,
  type INodeProto,
  type ITensorProto,
  decodeModel,
  encodeAttribute,
  floatTensor,
  int64Tensor,
  serializeModel,
} from '../../trainer/autograd/onnx-proto.js';
import { Rng } from '../../trainer/nn/random.js';

const rng = new Rng(7);
export const random = (n: number, [lo, hi]: [number, number] = [-2, 2]) =>
  Float32Array.from({ length: n }, () => lo + (hi - lo) * rng.next());
export const count = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);

/** A node; an attribute is a number, ints, a string, { float }, { floats } or a tensor. */
export function node(
  op: string,
  inputs: string[],
  outputs: string[],
  attrs: Record<string, AttrValue | ITensorProto | { floats: number[] }> = {},
  domain?: string,
): INodeProto {
  const attribute = Object.entries(attrs).map(([name, v]) =>
    typeof v === 'object' && 'dataType' in v
      ? { name, type: 4, t: v }
      : typeof v === 'object' && 'floats' in v
        ? { name, type: 6, floats: v.floats }
        : encodeAttribute(name, v as AttrValue),
  );
  return { opType: op, input: inputs, output: outputs, name: `${op}_${outputs[0]}`, attribute, ...(domain ? { domain } : {}) };
}

/** A float initializer of random values (in `range`). */
export const weights = (name: string, dims: number[], range?: [number, number]) => floatTensor(name, random(count(dims), range), dims);
export const floats = (name: string, values: number[], dims: number[] = [values.length]) => floatTensor(name, values, dims);
/** An integer initializer: INT64 (onnx-proto's int64Tensor), or BOOL / INT32 where `type` says. */
export function ints(name: string, values: number[], dims: number[] = [values.length], type: number = DataType.INT64): ITensorProto {
  if (type === DataType.INT64) return int64Tensor(name, values, dims);
  const raw = type === DataType.BOOL ? Uint8Array.from(values) : new Uint8Array(Int32Array.from(values).buffer);
  return { name, dims, dataType: type, rawData: raw };
}

export interface GraphSpec {
  nodes: INodeProto[];
  inits?: ITensorProto[];
  /** The inputs, each [name, dims] (a string dim is symbolic), float unless `inputType` says. */
  inputs: [string, (number | string)[]][];
  inputType?: number;
  outputs: string[];
  opset?: number;
}

/** The model, encoded and decoded again (as a file read from disk would be). */
export function onnxModel(s: GraphSpec) {
  const opset = s.opset ?? 13;
  const proto: IModelProto = {
    irVersion: opset >= 18 ? 8 : 7,
    opsetImport: [{ domain: '', version: opset }],
    graph: {
      name: 'test',
      node: s.nodes,
      initializer: s.inits ?? [],
      input: s.inputs.map(([name, dims]) => ({
        name,
        type: {
          tensorType: {
            elemType: s.inputType ?? DataType.FLOAT,
            shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
          },
        },
      })),
      output: s.outputs.map((name) => ({ name, type: { tensorType: { elemType: DataType.FLOAT } } })),
    },
  };
  return decodeModel(serializeModel(proto));
}
