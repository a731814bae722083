// A kept result as the Redis store writes it, one value a result: [4-byte header length][header
// JSON][view bytes][input]. Format 2 keeps the input as it was kept (RGB bytes, or float32 little-
// endian for a tensor); format 1, from versions that kept floats only, is still read. A value that is
// not one of these, or whose header and length disagree, is refused with the reason (a shared store
// may hold what another version, or anyone who can write there, put in it).

import type { KeptResult } from './store.js';

/** 2: the input as RGB bytes or float32; 1 (still read): float32 only, as `pixels`. */
const FORMAT = 2;

/** [4-byte header length][header JSON][view bytes][input: RGB bytes, or float32 little-endian]. */
export function encodeKept(r: KeptResult): Buffer {
  const floats = r.input instanceof Float32Array;
  const header = Buffer.from(
    JSON.stringify({
      v: FORMAT,
      model: r.model,
      createdAt: r.createdAt,
      top: r.top,
      ...(r.fingerprint ? { fp: r.fingerprint, version: r.version } : {}),
      view: { width: r.view.width, height: r.view.height, bytes: r.view.data.length },
      input: { type: floats ? 'float32' : 'uint8', length: r.input.length },
    }),
  );
  const len = Buffer.alloc(4);
  len.writeUInt32LE(header.length);
  let input: Buffer;
  if (floats) {
    input = Buffer.alloc(r.input.length * 4);
    for (let i = 0; i < r.input.length; i++) input.writeFloatLE(r.input[i], i * 4);
  } else input = Buffer.from(r.input.buffer, r.input.byteOffset, r.input.byteLength);
  return Buffer.concat([len, header, r.view.data, input]);
}

/** A stored value that is not a kept result as encodeKept writes it. */
export class UnreadableResult extends Error {}

export function decodeKept(id: string, b: Buffer): KeptResult {
  const bad = (why: string) => new UnreadableResult(`kept result ${id} ${why}`);
  if (b.length < 4) throw bad('is too short to be one');
  const n = b.readUInt32LE(0);
  if (n > b.length - 4) throw bad(`claims a ${n}-byte header in ${b.length} bytes`);
  let h: {
    v: number;
    model: string;
    createdAt: number;
    top: number;
    fp?: string;
    version?: number;
    view: { width: number; height: number; bytes: number };
    input?: { type: string; length: number };
    pixels?: number;
  };
  try {
    h = JSON.parse(b.subarray(4, 4 + n).toString());
  } catch {
    throw bad('has a header that is not JSON');
  }
  if (h?.v !== FORMAT && h?.v !== 1) throw bad(`has format ${h?.v}; this version reads 1 and ${FORMAT}`);
  const count = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
  // format 1 kept the input as float32 only, its length as `pixels`
  const input = h.v === 1 ? { type: 'float32', length: h.pixels } : h.input;
  const length = input?.length ?? -1;
  if (
    typeof h.model !== 'string' ||
    !count(h.top) ||
    (h.fp !== undefined && (typeof h.fp !== 'string' || !count(h.version))) ||
    !count(h.view?.width) ||
    !count(h.view?.height) ||
    !count(h.view?.bytes) ||
    (input?.type !== 'float32' && input?.type !== 'uint8') ||
    !count(length)
  )
    throw bad('has a malformed header');
  const inputBytes = length * (input.type === 'float32' ? 4 : 1);
  if (b.length !== 4 + n + h.view.bytes + inputBytes)
    throw bad(`holds ${b.length} bytes where its header says ${4 + n + h.view.bytes + inputBytes}`);
  let o = 4 + n;
  const view = { data: Buffer.from(b.subarray(o, o + h.view.bytes)), width: h.view.width, height: h.view.height };
  o += h.view.bytes;
  let kept: Float32Array | Uint8Array;
  if (input.type === 'uint8') kept = new Uint8Array(b.subarray(o, o + length));
  else {
    const floats = new Float32Array(length);
    for (let i = 0; i < length; i++) floats[i] = b.readFloatLE(o + i * 4);
    kept = floats;
  }
  const version = h.fp === undefined ? {} : { fingerprint: h.fp, version: h.version };
  return { id, model: h.model, createdAt: h.createdAt, view, input: kept, top: h.top, ...version };
}
