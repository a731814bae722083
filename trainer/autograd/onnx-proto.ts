// What writing ONNX (onnx.ts) and reading it (onnx-import.ts) share: the schema's protobuf classes
// (the onnx-proto package), their type names, and tensors and attributes in both directions.

import { createRequire } from 'node:module';
import { closeSync, constants as fsConstants, fstatSync, openSync, readSync, realpathSync } from 'node:fs';
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
    if (!Number.isInteger(v))
      throw new Error(`onnx: attribute '${name}' = ${v} is not an integer; write float(${v}) for a FLOAT attribute`);
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
  return {
    name,
    dims: [...dims],
    dataType: DataType.FLOAT,
    rawData: new Uint8Array(f32.buffer.slice(f32.byteOffset, f32.byteOffset + f32.byteLength)),
  };
}

/** An INT64 tensor of `values`, a vector unless `dims` says otherwise ([] for a scalar). */
export function int64Tensor(name: string, values: readonly number[], dims: readonly number[] = [values.length]): ITensorProto {
  const raw = new BigInt64Array(values.map((v) => BigInt(v)));
  return { name, dims: [...dims], dataType: DataType.INT64, rawData: new Uint8Array(raw.buffer) };
}

/** An INT8 tensor of `values`. */
export function int8Tensor(name: string, values: Int8Array, dims: readonly number[]): ITensorProto {
  return {
    name,
    dims: [...dims],
    dataType: DataType.INT8,
    rawData: new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength)),
  };
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

/**
 * The bytes of an external data file at [offset, offset + length): only from a regular file inside
 * the model's folder, never through a link (one pointing at /etc/passwd once carried its text into an
 * import), a device (/dev/zero) or a FIFO (which blocked the import), and only as many bytes as the
 * file holds (a short file once passed, padded with whatever lay in memory after it).
 */
function readExternal(tensor: string, dir: string, location: string, offset: number, length: number | undefined): Uint8Array {
  const file = path.join(dir, location);
  const fail = (why: string) => new Error(`tensor '${tensor}': its external data ${file} ${why}`);
  if (!Number.isSafeInteger(offset) || offset < 0 || (length !== undefined && (!Number.isSafeInteger(length) || length < 0)))
    throw fail(`has a bad offset or length (${offset}, ${length})`);
  let fd: number;
  try {
    // no link followed at the last step; O_NONBLOCK: a FIFO opens at once instead of waiting for a writer
    fd = openSync(file, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw fail(
      code === 'ELOOP'
        ? 'is a link: external data is read only from files in the folder itself'
        : `cannot be read: ${code ?? (err as Error).message}`,
    );
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw fail('is not a regular file (a device, a FIFO or a folder)');
    // a link in a folder on the way (location 'sub/x' with sub a link elsewhere) leaves the folder too
    const inside = path.relative(realpathSync(dir), realpathSync(file));
    if (inside.startsWith('..') || path.isAbsolute(inside)) throw fail('lies outside the model folder (through a linked folder)');
    const size = length ?? stat.size - offset;
    if (offset + size > stat.size) throw fail(`holds ${stat.size} bytes; the tensor needs ${size} from offset ${offset}`);
    const bytes = new Uint8Array(size);
    let read = 0;
    while (read < size) {
      const n = readSync(fd, bytes, read, size - read, offset + read);
      if (n === 0) throw fail(`ended after ${offset + read} bytes; the tensor needs ${size} from offset ${offset}`);
      read += n;
    }
    return bytes;
  } finally {
    closeSync(fd);
  }
}

/** A tensor's values: float types as a Float32Array, integer and bool types as numbers. `dir` is the
 *  model file's folder, where external data is looked for. */
export function readTensor(t: ITensorProto, dir: string): { kind: 'float'; data: Float32Array } | { kind: 'int'; data: number[] } {
  const count = dimsOf(t).reduce((a, b) => a * b, 1);
  let raw = t.rawData && t.rawData.length > 0 ? t.rawData : undefined;
  if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
    const info = Object.fromEntries((t.externalData ?? []).map((e) => [e.key, e.value]));
    if (!info.location || info.location.includes('..') || path.isAbsolute(info.location))
      throw new Error(`tensor '${t.name}': external data location '${info.location}' is not a file beside the model`);
    raw = readExternal(
      t.name ?? '',
      dir,
      info.location,
      Number(info.offset ?? 0),
      info.length !== undefined ? Number(info.length) : undefined,
    );
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
        const view =
          t.dataType === DataType.INT32 ? new Int32Array(b) : t.dataType === DataType.INT8 ? new Int8Array(b) : new Uint8Array(b);
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
    out[i] =
      exp === 0
        ? sign * 2 ** -14 * (frac / 1024)
        : exp === 31
          ? frac
            ? NaN
            : sign * Infinity
          : sign * 2 ** (exp - 15) * (1 + frac / 1024);
  }
  return out;
}

export function decodeModel(bytes: Uint8Array): ModelProto {
  return onnx.ModelProto.decode(bytes);
}

export function serializeModel(model: IModelProto): Uint8Array {
  return onnx.ModelProto.encode(model).finish();
}
