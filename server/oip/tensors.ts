// Tensor data of the Open Inference Protocol (KServe v2): the datatypes, numbers and byte strings read
// from JSON or from Triton's binary data extension, and output tensors written as binary data.

import { Errors } from '../errors.js';

export const DATATYPES = [
  'BOOL',
  'UINT8',
  'UINT16',
  'UINT32',
  'UINT64',
  'INT8',
  'INT16',
  'INT32',
  'INT64',
  'FP16',
  'FP32',
  'FP64',
  'BYTES',
] as const;
export type Datatype = (typeof DATATYPES)[number];

export const ELEMENT_SIZE: Partial<Record<Datatype, number>> = {
  BOOL: 1,
  UINT8: 1,
  INT8: 1,
  UINT16: 2,
  INT16: 2,
  FP16: 2,
  UINT32: 4,
  INT32: 4,
  FP32: 4,
  UINT64: 8,
  INT64: 8,
  FP64: 8,
};

/** Nested JSON arrays in row-major order, flattened (the protocol allows both forms), without
 *  recursion: a client's nesting is walked with a stack of its own, and may be no deeper than the
 *  tensor's shape has dimensions. */
export function flatten(data: unknown, maxDepth: number, name: string): unknown[] {
  if (!Array.isArray(data)) return [data];
  const out: unknown[] = [];
  const stack: [unknown[], number][] = [[data, 0]];
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    if (top[1] >= top[0].length) {
      stack.pop();
      continue;
    }
    const v = top[0][top[1]++];
    if (!Array.isArray(v)) out.push(v);
    else if (stack.length >= maxDepth)
      throw Errors.badRequest(`input '${name}': data is nested deeper than its shape's ${maxDepth} dimension${maxDepth === 1 ? '' : 's'}`);
    else stack.push([v, 0]);
  }
  return out;
}

export function readNumbers(values: unknown[], datatype: Datatype, name: string): Float64Array | Float32Array {
  const out = datatype === 'FP32' ? new Float32Array(values.length) : new Float64Array(values.length);
  for (let i = 0; i < values.length; i++) {
    let v = values[i];
    if (datatype === 'BOOL' && typeof v === 'boolean') v = v ? 1 : 0;
    if (typeof v !== 'number' || !Number.isFinite(v))
      throw Errors.badRequest(`input '${name}': element ${i} is ${JSON.stringify(v)}, not a finite number as ${datatype} takes`);
    out[i] = v;
  }
  return out;
}

export function readBinaryNumbers(raw: Buffer, datatype: Datatype, name: string): Float64Array | Float32Array {
  const size = ELEMENT_SIZE[datatype]!;
  if (raw.length % size !== 0)
    throw Errors.badRequest(`input '${name}': ${raw.length} bytes of binary data is not a whole number of ${datatype} elements`);
  const n = raw.length / size;
  const view = new DataView(raw.buffer, raw.byteOffset, raw.length);
  if (datatype === 'FP32') {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = view.getFloat32(i * 4, true);
    return out;
  }
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const o = i * size;
    switch (datatype) {
      case 'BOOL':
      case 'UINT8':
        out[i] = view.getUint8(o);
        break;
      case 'INT8':
        out[i] = view.getInt8(o);
        break;
      case 'UINT16':
        out[i] = view.getUint16(o, true);
        break;
      case 'INT16':
        out[i] = view.getInt16(o, true);
        break;
      case 'UINT32':
        out[i] = view.getUint32(o, true);
        break;
      case 'INT32':
        out[i] = view.getInt32(o, true);
        break;
      case 'UINT64':
        out[i] = Number(view.getBigUint64(o, true));
        break;
      case 'INT64':
        out[i] = Number(view.getBigInt64(o, true));
        break;
      case 'FP64':
        out[i] = view.getFloat64(o, true);
        break;
      case 'FP16':
        out[i] = view.getUint16(o, true);
        break; // not decoded: no model here takes FP16
    }
  }
  return out;
}

/** BYTES in the binary part: each element a 4-byte little-endian length, then that many bytes. */
export function readBinaryBytes(raw: Buffer, name: string): Buffer[] {
  const out: Buffer[] = [];
  let o = 0;
  while (o < raw.length) {
    if (o + 4 > raw.length)
      throw Errors.badRequest(`input '${name}': BYTES element ${out.length} is cut short (its 4-byte length is incomplete)`);
    const len = raw.readUInt32LE(o);
    if (o + 4 + len > raw.length)
      throw Errors.badRequest(`input '${name}': BYTES element ${out.length} declares ${len} bytes, ${raw.length - o - 4} are left`);
    out.push(raw.subarray(o + 4, o + 4 + len));
    o += 4 + len;
  }
  return out;
}

/** BYTES in JSON: strings, each base64 (as KServe's image examples send files) or plain text. */
export function readJsonBytes(values: unknown[], name: string): Buffer[] {
  return values.map((v, i) => {
    if (typeof v !== 'string') throw Errors.badRequest(`input '${name}': BYTES element ${i} must be a string (base64 for binary content)`);
    return Buffer.from(v, 'base64');
  });
}

/** An output tensor's raw bytes: FP32 little-endian, BYTES each a 4-byte little-endian length and the UTF-8 bytes. */
export function binaryOf(t: { datatype: 'FP32' | 'BYTES'; data: Float32Array | string[] }): Buffer {
  if (t.datatype === 'FP32') {
    const f = t.data as Float32Array;
    const b = Buffer.alloc(f.length * 4);
    for (let i = 0; i < f.length; i++) b.writeFloatLE(f[i], i * 4);
    return b;
  }
  return Buffer.concat(
    (t.data as string[]).flatMap((s) => {
      const bytes = Buffer.from(s, 'utf8');
      const len = Buffer.alloc(4);
      len.writeUInt32LE(bytes.length);
      return [len, bytes];
    }),
  );
}
