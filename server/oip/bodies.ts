// The Open Inference Protocol's (KServe v2) request and response bodies: JSON tensors, and Triton's
// binary tensor data extension (a JSON header of Inference-Header-Content-Length bytes followed by
// the tensors' raw bytes, in the order of the tensors that declare binary_data_size). Pure functions:
// the routes (routes/v2.ts) run the model.

import { Errors } from '../errors.js';
import { type Datatype, DATATYPES, flatten, readBinaryBytes, readBinaryNumbers, readJsonBytes, readNumbers, binaryOf } from './tensors.js';

export { DATATYPES, type Datatype } from './tensors.js';

type Parameters = Record<string, unknown>;

/** An input tensor as received: numbers for numeric types, byte strings for BYTES. */
export interface InputTensor {
  name: string;
  datatype: Datatype;
  shape: number[];
  parameters: Parameters;
  /** Numeric data, row-major (FP32 keeps float32 precision). */
  numbers?: Float64Array | Float32Array;
  /** BYTES data: one buffer per element. */
  bytes?: Buffer[];
}

export interface RequestedOutput {
  name: string;
  parameters: Parameters;
}

export interface InferRequest {
  id?: string;
  parameters: Parameters;
  inputs: InputTensor[];
  /** Absent: every output of the model. */
  outputs?: RequestedOutput[];
}

/** An output tensor to send: FP32 values or BYTES strings. */
export interface OutputTensor {
  name: string;
  datatype: 'FP32' | 'BYTES';
  shape: number[];
  data: Float32Array | string[];
  /** Send its data in the binary part (binary_data_size in its parameters). */
  binary: boolean;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const elements = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

function parameters(v: unknown, where: string): Parameters {
  if (v === undefined) return {};
  if (!isObject(v)) throw Errors.badRequest(`${where}: 'parameters' must be an object`);
  return v;
}

/**
 * Parses an infer request body. `headerLength` is the Inference-Header-Content-Length header when
 * present: the JSON is that many bytes and the binary data follows.
 */
export function parseInferRequest(body: Buffer, headerLength: string | undefined): InferRequest {
  let jsonEnd = body.length;
  if (headerLength !== undefined) {
    const n = Number(headerLength);
    if (!/^\d+$/.test(headerLength.trim()) || n > body.length)
      throw Errors.badRequest(
        `Inference-Header-Content-Length ${JSON.stringify(headerLength)} must be a byte count within the body's ${body.length} bytes`,
      );
    jsonEnd = n;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(body.subarray(0, jsonEnd).toString('utf8'));
  } catch (err) {
    throw Errors.badRequest(
      `the request's JSON does not parse: ${(err as Error).message}` +
        (headerLength === undefined ? ' (binary tensor data needs the Inference-Header-Content-Length header)' : ''),
    );
  }
  if (!isObject(raw)) throw Errors.badRequest('the request must be a JSON object with "inputs"');
  if (raw.id !== undefined && typeof raw.id !== 'string') throw Errors.badRequest("'id' must be a string");
  if (!Array.isArray(raw.inputs) || raw.inputs.length === 0) throw Errors.badRequest("'inputs' must be a non-empty array of tensors");
  let offset = jsonEnd;
  const inputs = raw.inputs.map((t, k): InputTensor => {
    if (!isObject(t)) throw Errors.badRequest(`inputs[${k}] must be an object with name, shape, datatype and data`);
    const name = t.name;
    if (typeof name !== 'string' || name === '') throw Errors.badRequest(`inputs[${k}] has no name`);
    if (typeof t.datatype !== 'string' || !(DATATYPES as readonly string[]).includes(t.datatype))
      throw Errors.badRequest(`input '${name}': datatype ${JSON.stringify(t.datatype)} is not one of ${DATATYPES.join(', ')}`);
    const datatype = t.datatype as Datatype;
    if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isInteger(d) && d >= 0))
      throw Errors.badRequest(`input '${name}': shape must be an array of non-negative integers`);
    const shape = t.shape as number[];
    const params = parameters(t.parameters, `input '${name}'`);
    const binarySize = params.binary_data_size;
    const tensor: InputTensor = { name, datatype, shape, parameters: params };
    if (binarySize !== undefined) {
      if (t.data !== undefined) throw Errors.badRequest(`input '${name}': both 'data' and binary_data_size; send one`);
      if (headerLength === undefined)
        throw Errors.badRequest(`input '${name}': binary_data_size without the Inference-Header-Content-Length header`);
      if (!Number.isInteger(binarySize) || (binarySize as number) < 0)
        throw Errors.badRequest(`input '${name}': binary_data_size must be a byte count`);
      const size = binarySize as number;
      if (offset + size > body.length)
        throw Errors.badRequest(`input '${name}': binary_data_size ${size} runs past the body (${body.length - offset} bytes left)`);
      const bytes = body.subarray(offset, offset + size);
      offset += size;
      if (datatype === 'BYTES') tensor.bytes = readBinaryBytes(bytes, name);
      else tensor.numbers = readBinaryNumbers(bytes, datatype, name);
    } else {
      if (t.data === undefined) throw Errors.badRequest(`input '${name}' has no data`);
      const values = flatten(t.data, Math.max(1, shape.length), name);
      if (datatype === 'BYTES') tensor.bytes = readJsonBytes(values, name);
      else tensor.numbers = readNumbers(values, datatype, name);
    }
    const count = tensor.bytes?.length ?? tensor.numbers!.length;
    if (count !== elements(shape))
      throw Errors.badRequest(`input '${name}': shape [${shape.join(', ')}] holds ${elements(shape)} elements, the data ${count}`);
    return tensor;
  });
  if (offset !== body.length)
    throw Errors.badRequest(`${body.length - offset} bytes after the last tensor's binary data: binary_data_size and the body disagree`);
  const names = new Set<string>();
  for (const t of inputs) {
    if (names.has(t.name)) throw Errors.badRequest(`input '${t.name}' given twice`);
    names.add(t.name);
  }
  let outputs: RequestedOutput[] | undefined;
  if (raw.outputs !== undefined) {
    if (!Array.isArray(raw.outputs)) throw Errors.badRequest("'outputs' must be an array");
    outputs = raw.outputs.map((o, k) => {
      if (!isObject(o) || typeof o.name !== 'string') throw Errors.badRequest(`outputs[${k}] must be an object with a name`);
      return { name: o.name, parameters: parameters(o.parameters, `output '${o.name}'`) };
    });
  }
  return {
    ...(typeof raw.id === 'string' ? { id: raw.id } : {}),
    parameters: parameters(raw.parameters, 'the request'),
    inputs,
    ...(outputs ? { outputs } : {}),
  };
}

/** Whether an output goes in the binary part: its own binary_data, else the request's binary_data_output. */
export function wantsBinary(output: RequestedOutput | undefined, request: InferRequest): boolean {
  const own = output?.parameters.binary_data;
  if (own !== undefined) {
    if (typeof own !== 'boolean') throw Errors.badRequest(`output '${output!.name}': binary_data must be true or false`);
    return own;
  }
  const all = request.parameters.binary_data_output;
  if (all !== undefined && typeof all !== 'boolean') throw Errors.badRequest('binary_data_output must be true or false');
  return all === true;
}

/** The classification extension's k for an output, or 0. */
export function classificationCount(output: RequestedOutput | undefined): number {
  const k = output?.parameters.classification;
  if (k === undefined) return 0;
  if (!Number.isInteger(k) || (k as number) < 1)
    throw Errors.badRequest(`output '${output!.name}': classification must be a positive integer`);
  return k as number;
}

/** Top-k of each row of a [rows, cols] tensor as "value:index:label" strings, largest first. */
export function classify(values: Float32Array, rows: number, k: number, labels: readonly string[]): string[] {
  const cols = values.length / rows;
  const out: string[] = [];
  for (let r = 0; r < rows; r++) {
    const row = values.subarray(r * cols, (r + 1) * cols);
    const order = Array.from(row.keys())
      .sort((a, b) => row[b] - row[a] || a - b)
      .slice(0, Math.min(k, cols));
    for (const i of order) out.push(`${row[i]}:${i}${labels[i] !== undefined ? `:${labels[i]}` : ''}`);
  }
  return out;
}

/** The response body: a JSON object, or (when an output is binary) the JSON header and the raw data. */
export function encodeInferResponse(
  head: { model_name: string; model_version?: string; id?: string; parameters?: Parameters },
  outputs: readonly OutputTensor[],
): { json: object } | { body: Buffer; headerLength: number } {
  const parts: Buffer[] = [];
  const described = outputs.map((t) => {
    const base = { name: t.name, datatype: t.datatype, shape: t.shape };
    if (!t.binary) return { ...base, data: t.datatype === 'FP32' ? Array.from(t.data as Float32Array) : t.data };
    const bytes = binaryOf(t);
    parts.push(bytes);
    return { ...base, parameters: { binary_data_size: bytes.length } };
  });
  const json = { ...head, outputs: described };
  if (parts.length === 0) return { json };
  const header = Buffer.from(JSON.stringify(json), 'utf8');
  return { body: Buffer.concat([header, ...parts]), headerLength: header.length };
}
