// The gRPC binding's messages (proto/grpc_predict_v2.proto, loaded with keepCase, longs as numbers,
// defaults and oneof names) and their translation to and from the protocol's tensors (oip/bodies.ts):
// typed contents in the field of their datatype, or raw contents laid out as REST's binary data is;
// the same checks, with the same words, as the REST binding's.

import { Errors } from '../errors.js';
import type { InferRequest, InputTensor, OutputTensor } from '../oip/bodies.js';
import { DATATYPES, type Datatype, binaryOf, readBinaryBytes, readBinaryNumbers } from '../oip/tensors.js';

type Param = { parameter_choice?: string } & Record<string, unknown>;

export interface Contents {
  bool_contents: boolean[];
  int_contents: number[];
  int64_contents: number[];
  uint_contents: number[];
  uint64_contents: number[];
  fp32_contents: number[];
  fp64_contents: number[];
  bytes_contents: Buffer[];
}

export interface InferRequestMessage {
  model_name: string;
  model_version: string;
  id: string;
  parameters: Record<string, Param>;
  inputs: { name: string; datatype: string; shape: number[]; parameters: Record<string, Param>; contents: Contents | null }[];
  outputs: { name: string; parameters: Record<string, Param> }[];
  raw_input_contents: Buffer[];
}

/** Which field of InferTensorContents holds each datatype (FP16 has none: raw only). */
const FIELD: Record<Datatype, keyof Contents | null> = {
  BOOL: 'bool_contents',
  INT8: 'int_contents',
  INT16: 'int_contents',
  INT32: 'int_contents',
  INT64: 'int64_contents',
  UINT8: 'uint_contents',
  UINT16: 'uint_contents',
  UINT32: 'uint_contents',
  UINT64: 'uint64_contents',
  FP16: null,
  FP32: 'fp32_contents',
  FP64: 'fp64_contents',
  BYTES: 'bytes_contents',
};
const FIELDS = [...new Set(Object.values(FIELD))].filter((f): f is keyof Contents => f !== null);

/** An InferParameter (or a repository parameter) as a plain value. */
function parameterValue(p: Param): unknown {
  return p.parameter_choice ? p[p.parameter_choice] : undefined;
}

export function parametersOf(map: Record<string, Param> | undefined): Record<string, unknown> {
  return Object.fromEntries(Object.entries(map ?? {}).map(([k, v]) => [k, parameterValue(v)]));
}

const elements = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
const filled = (c: Contents | null) => (c ? FIELDS.filter((f) => (c[f]?.length ?? 0) > 0) : []);

function typedTensor(t: InferRequestMessage['inputs'][number], datatype: Datatype): Pick<InputTensor, 'numbers' | 'bytes'> {
  const field = FIELD[datatype];
  const given = filled(t.contents);
  if (field === null) throw Errors.badRequest(`input '${t.name}': ${datatype} has no typed contents field; send it as raw_input_contents`);
  const stray = given.find((f) => f !== field);
  if (stray) throw Errors.badRequest(`input '${t.name}' is ${datatype}: its data goes in contents.${field}, not contents.${stray}`);
  if (datatype === 'BYTES') return { bytes: t.contents?.bytes_contents ?? [] };
  const values = (t.contents?.[field] ?? []) as (number | boolean)[];
  const numbers = datatype === 'FP32' ? new Float32Array(values.length) : new Float64Array(values.length);
  for (let i = 0; i < values.length; i++) numbers[i] = Number(values[i]);
  return { numbers };
}

/** A ModelInfer request as the protocol's InferRequest; `raw` says whether its data came raw. */
export function toInferRequest(msg: InferRequestMessage): { request: InferRequest; raw: boolean } {
  const raw = msg.raw_input_contents.length > 0;
  if (raw && msg.raw_input_contents.length !== msg.inputs.length)
    throw Errors.badRequest(
      `raw_input_contents has ${msg.raw_input_contents.length} entries for ${msg.inputs.length} inputs: one per input, in their order`,
    );
  const names = new Set<string>();
  const inputs = msg.inputs.map((t, k): InputTensor => {
    const name = t.name;
    if (name === '') throw Errors.badRequest(`inputs[${k}] has no name`);
    if (names.has(name)) throw Errors.badRequest(`input '${name}' given twice`);
    names.add(name);
    if (!(DATATYPES as readonly string[]).includes(t.datatype))
      throw Errors.badRequest(`input '${name}': datatype ${JSON.stringify(t.datatype)} is not one of ${DATATYPES.join(', ')}`);
    const datatype = t.datatype as Datatype;
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      throw Errors.badRequest(`input '${name}': shape must be non-negative integers, got [${t.shape.join(', ')}]`);
    const shape = t.shape;
    let data: Pick<InputTensor, 'numbers' | 'bytes'>;
    if (raw) {
      if (filled(t.contents).length > 0)
        throw Errors.badRequest(`input '${name}' has contents and the request raw_input_contents: send one or the other`);
      const bytes = msg.raw_input_contents[k];
      data = datatype === 'BYTES' ? { bytes: readBinaryBytes(bytes, name) } : { numbers: readBinaryNumbers(bytes, datatype, name) };
    } else data = typedTensor(t, datatype);
    const count = data.bytes?.length ?? data.numbers!.length;
    if (count !== elements(shape))
      throw Errors.badRequest(`input '${name}': shape [${shape.join(', ')}] holds ${elements(shape)} elements, the data ${count}`);
    return { name, datatype, shape, parameters: parametersOf(t.parameters), ...data };
  });
  const request: InferRequest = {
    ...(msg.id !== '' ? { id: msg.id } : {}),
    parameters: parametersOf(msg.parameters),
    inputs,
    ...(msg.outputs.length > 0 ? { outputs: msg.outputs.map((o) => ({ name: o.name, parameters: parametersOf(o.parameters) })) } : {}),
  };
  return { request, raw };
}

/** The ModelInfer response: every output raw (when the request's data came raw) or typed. */
export function toInferResponse(head: { model_name: string; model_version: string; id: string }, outputs: readonly OutputTensor[]) {
  const raw = outputs.some((t) => t.binary);
  return {
    ...head,
    parameters: {},
    outputs: outputs.map((t) => ({
      name: t.name,
      datatype: t.datatype,
      shape: t.shape,
      parameters: {},
      contents: raw
        ? null
        : t.datatype === 'FP32'
          ? { fp32_contents: Array.from(t.data as Float32Array) }
          : { bytes_contents: (t.data as string[]).map((s) => Buffer.from(s, 'utf8')) },
    })),
    raw_output_contents: raw ? outputs.map((t) => binaryOf(t)) : [],
  };
}
