// What writing ONNX (onnx.ts) and reading it (onnx-import.ts) share: the schema's protobuf classes
// (the onnx-proto package), their type names, and tensors and attributes in both directions.

import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import path from 'node:path';

const require = createRequire(import.meta.url);
export const { onnx } = require('onnx-proto') as typeof import('onnx-proto');

export type ModelProto = import('onnx-proto').onnx.ModelProto;
export type IModelProto = import('onnx-proto').onnx.IModelProto;
export type INodeProto = import('onnx-proto').onnx.INodeProto;
export type ITensorProto = import('onnx-proto').onnx.ITensorProto;
export type IAttributeProto = import('onnx-proto').onnx.IAttributeProto;
export type IValueInfoProto = import('onnx-proto').onnx.IValueInfoProto;

export const DataType = onnx.TensorProto.DataType;
const AttrType = onnx.AttributeProto.AttributeType;

/** An attribute as an emitter gives it: an integer is INT, an integer array INTS, a string STRING;
 *  a float is said so ({ float: 1e-5 }), so that 1.0 is never written as INT. */
export type AttrValue = number | readonly number[] | string | { readonly float: number };
export const float = (v: number): { float: number } => ({ float: v });

export function encodeAttribute(name: string, v: AttrValue): IAttributeProto {
  if (typeof v === 'string') return { name, type: AttrType.STRING, s: new TextEncoder().encode(v) };
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new Error(`onnx: attribute '${name}' = ${v} is not an integer; write float(${v}) for a FLOAT attribute`);
    return { name, type: AttrType.INT, i: v };
  }
  if ('float' in v) return { name, type: AttrType.FLOAT, f: v.float };
  return { name, type: AttrType.INTS, ints: [...v] };
}

/** An attribute's value as plain JavaScript: numbers, number arrays, strings, or a tensor. */
export type DecodedAttr = number | number[] | string | ITensorProto;

export function decodeAttribute(a: IAttributeProto): DecodedAttr {
  switch (a.type) {
    case AttrType.INT:
      return Number(a.i ?? 0);
    case AttrType.FLOAT:
      return a.f ?? 0;
    case AttrType.INTS:
      return (a.ints ?? []).map(Number);
    case AttrType.FLOATS:
      return [...(a.floats ?? [])];
    case AttrType.STRING:
      return new TextDecoder().decode(a.s ?? new Uint8Array());
    case AttrType.TENSOR:
      return a.t!;
    default:
      throw new Error(`attribute '${a.name}' has type ${AttrType[a.type ?? 0] ?? a.type}, which is not read`);
  }
}

export function floatTensor(name: string, values: ArrayLike<number>, dims: readonly number[]): ITensorProto {
  const f32 = values instanceof Float32Array ? values : Float32Array.from(values);
  return { name, dims: [...dims], dataType: DataType.FLOAT, rawData: new Uint8Array(f32.buffer.slice(f32.byteOffset, f32.byteOffset + f32.byteLength)) };
}

export function int64Tensor(name: string, values: readonly number[]): ITensorProto {
  const raw = new BigInt64Array(values.map((v) => BigInt(v)));
  return { name, dims: [values.length], dataType: DataType.INT64, rawData: new Uint8Array(raw.buffer) };
}

/** Where a tensor's bytes lie in an external data file (ONNX's external data: location, offset, length). */
export interface ExternalPlace {
  location: string;
  offset: number;
  length: number;
}

/** A float tensor whose values lie in an external file beside the model. */
export function externalTensor(name: string, dims: readonly number[], place: ExternalPlace): ITensorProto {
  return {
    name,
    dims: [...dims],
    dataType: DataType.FLOAT,
    dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
    externalData: [
      { key: 'location', value: place.location },
      { key: 'offset', value: String(place.offset) },
      { key: 'length', value: String(place.length) },
    ],
  };
}

export const dimsOf = (t: ITensorProto): number[] => (t.dims ?? []).map(Number);

/** A tensor's values: float types as a Float32Array, integer and bool types as numbers. `dir` is the
 *  model file's folder, where external data is looked for. */
export function readTensor(t: ITensorProto, dir: string): { kind: 'float'; data: Float32Array } | { kind: 'int'; data: number[] } {
  const count = dimsOf(t).reduce((a, b) => a * b, 1);
  let raw = t.rawData && t.rawData.length > 0 ? t.rawData : undefined;
  if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
    const info = Object.fromEntries((t.externalData ?? []).map((e) => [e.key, e.value]));
    const file = path.join(dir, info.location ?? '');
    if (!info.location || info.location.includes('..') || path.isAbsolute(info.location)) throw new Error(`tensor '${t.name}': external data location '${info.location}' is not a file beside the model`);
    let bytes: Buffer;
    try {
      bytes = readFileSync(file);
    } catch (err) {
      throw new Error(`tensor '${t.name}': cannot read its external data ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    const offset = Number(info.offset ?? 0);
    const length = info.length !== undefined ? Number(info.length) : bytes.length - offset;
    raw = new Uint8Array(bytes.buffer, bytes.byteOffset + offset, length);
  }
  const copy = (bytesPer: number) => {
    if (!raw || raw.length !== count * bytesPer) throw new Error(`tensor '${t.name}': ${raw?.length ?? 0} bytes for ${count} values`);
    return new Uint8Array(raw).buffer; // a copy, aligned (protobufjs gives Buffer views into the file)
  };
  switch (t.dataType) {
    case DataType.FLOAT:
      return { kind: 'float', data: raw ? new Float32Array(copy(4)) : Float32Array.from(t.floatData ?? []) };
    case DataType.DOUBLE:
      return { kind: 'float', data: Float32Array.from(raw ? new Float64Array(copy(8)) : (t.doubleData ?? [])) };
    case DataType.FLOAT16:
      return { kind: 'float', data: raw ? halfToFloat(new Uint16Array(copy(2))) : halfToFloat(Uint16Array.from(t.int32Data ?? [])) };
    case DataType.INT64:
      return { kind: 'int', data: raw ? Array.from(new BigInt64Array(copy(8)), Number) : (t.int64Data ?? []).map(Number) };
    case DataType.INT32:
    case DataType.INT8:
    case DataType.UINT8:
    case DataType.BOOL:
      if (raw) {
        const b = copy(t.dataType === DataType.INT32 ? 4 : 1);
        const view = t.dataType === DataType.INT32 ? new Int32Array(b) : t.dataType === DataType.INT8 ? new Int8Array(b) : new Uint8Array(b);
        return { kind: 'int', data: Array.from(view) };
      }
      return { kind: 'int', data: [...(t.int32Data ?? [])] };
    default:
      throw new Error(`tensor '${t.name}': data type ${DataType[t.dataType ?? 0] ?? t.dataType} is not read`);
  }
}

/** IEEE half floats widened to float32. */
export function halfToFloat(h: Uint16Array): Float32Array {
  const out = new Float32Array(h.length);
  for (let i = 0; i < h.length; i++) {
    const v = h[i];
    const sign = v & 0x8000 ? -1 : 1;
    const exp = (v >> 10) & 0x1f;
    const frac = v & 0x3ff;
    out[i] = exp === 0 ? sign * 2 ** -14 * (frac / 1024) : exp === 31 ? (frac ? NaN : sign * Infinity) : sign * 2 ** (exp - 15) * (1 + frac / 1024);
  }
  return out;
}

export function decodeModel(bytes: Uint8Array): ModelProto {
  return onnx.ModelProto.decode(bytes);
}

export function serializeModel(model: IModelProto): Uint8Array {
  return onnx.ModelProto.encode(model).finish();
}
