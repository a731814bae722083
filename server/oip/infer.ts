// The Open Inference Protocol's model side, written once for both of its bindings (REST in
// http/routes/v2.ts, gRPC in grpc/): a model's metadata, and an infer request run on the engine —
// its input as normalized images (FP32 tensors of the model's shape, or BYTES image files decoded and
// preprocessed as POST /classify does), the outputs asked for checked, the images run in one
// submission, and the answer as output tensors (logits, attention probabilities, or the
// classification extension's "value:index:label" strings).

import { Errors, ServiceError } from '../errors.js';
import type { Gate } from '../gate.js';
import type { Batcher, ModelInput } from '../engine/batcher.js';
import { classifyAndExplain } from '../engine/classify.js';
import type { ServedModel } from '../engine/models.js';
import { decodeImage } from '../engine/preprocess.js';
import { imageSpec } from '../../runtime/pixels.js';
import { type InferRequest, type InputTensor, type OutputTensor, type RequestedOutput, classificationCount, classify } from './bodies.js';

export const PLATFORM = 'onnxruntime_onnx';

/** What running a request needs of the service. */
export interface InferDeps {
  config: { maxQueue: number; maxPixels: number };
  batcher: Batcher;
  decoders: Gate;
}

export interface TensorMetadata {
  name: string;
  datatype: 'FP32' | 'BYTES';
  shape: number[];
}

/** The model's outputs and their shapes (-1 where a dimension varies or is unknown). */
export function outputShapes(m: ServedModel): { name: string; shape: number[] }[] {
  const heads = m.heads ?? -1;
  const tokens = m.grid ? m.grid[0] * m.grid[1] + (m.config.prefix_tokens ?? 1) : -1;
  return [
    { name: m.config.logits_output, shape: [-1, m.config.labels.length] },
    ...(m.grid ? m.config.attention_outputs.map((name) => ({ name, shape: [-1, heads, tokens, tokens] })) : []),
  ];
}

/** A model's metadata as both bindings give it. */
export function modelMetadata(m: ServedModel): {
  name: string;
  versions: string[];
  platform: string;
  inputs: TensorMetadata[];
  outputs: TensorMetadata[];
} {
  const [h, w] = m.config.image_size;
  return {
    name: m.name,
    versions: [String(m.version)],
    platform: PLATFORM,
    inputs: [{ name: m.config.input_name, datatype: 'FP32', shape: [-1, m.config.mean.length, h, w] }],
    outputs: outputShapes(m).map((o) => ({ ...o, datatype: 'FP32' })),
  };
}

/** The served version, or a 404 when the request names another. */
export function checkVersion(m: ServedModel, version: string | undefined): ServedModel {
  if (version !== undefined && version !== '' && version !== String(m.version))
    throw Errors.unknownModel(`model '${m.name}' has no version '${version}' serving (versions: ${m.version})`);
  return m;
}

/** The images of the one input: an FP32 tensor's normalized CHW floats, or image files decoded to
 *  RGB bytes (engine/job.ts ModelInput). */
async function images(deps: InferDeps, m: ServedModel, t: InputTensor, deadline: number): Promise<ModelInput[]> {
  const c = m.config;
  const [h, w] = c.image_size;
  const chw = [c.mean.length, h, w];
  const expect = `FP32 [-1, ${chw.join(', ')}] or BYTES [-1] image files`;
  const count = t.shape[0] ?? 0;
  if (count > deps.config.maxQueue)
    throw Errors.badRequest(`input '${t.name}': ${count} images in one request; at most ${deps.config.maxQueue} (--max-queue)`);
  if (t.datatype === 'FP32') {
    if (t.shape.length !== 4 || t.shape.slice(1).some((d, i) => d !== chw[i]))
      throw Errors.badRequest(`input '${t.name}': shape [${t.shape.join(', ')}] does not match the model's [-1, ${chw.join(', ')}]`);
    const per = chw[0] * chw[1] * chw[2];
    const data = t.numbers as Float32Array;
    return Array.from({ length: count }, (_, i) => data.slice(i * per, (i + 1) * per));
  }
  if (t.datatype === 'BYTES') {
    if (!(t.shape.length === 1 || (t.shape.length === 2 && t.shape[1] === 1)))
      throw Errors.badRequest(`input '${t.name}': BYTES images take shape [-1] or [-1, 1], got [${t.shape.join(', ')}]`);
    return Promise.all(
      t.bytes!.map(async (bytes, i) => {
        try {
          return (await decodeImage(bytes, imageSpec(c), deps.config.maxPixels, deps.decoders, deadline)).input;
        } catch (err) {
          if (err instanceof ServiceError && err.statusCode < 500)
            throw new ServiceError(
              err.code,
              `input '${t.name}' element ${i}: ${err.message}`,
              err.statusCode === 415 ? 400 : err.statusCode,
              err.headers,
            );
          throw err;
        }
      }),
    );
  }
  throw Errors.badRequest(`input '${t.name}' is ${t.datatype}; model '${m.name}' takes ${expect}`);
}

/**
 * Runs an infer request on the model: its outputs in the order asked (every output when none is),
 * each marked `binary` where `binary(output)` says (REST's binary data, gRPC's raw contents).
 * `deadline` is a performance.now() time for the decodes.
 */
export async function runInfer(
  deps: InferDeps,
  m: ServedModel,
  req: InferRequest,
  { deadline, binary }: { deadline: number; binary: (o: RequestedOutput) => boolean },
): Promise<OutputTensor[]> {
  const inputName = m.config.input_name;
  if (req.inputs.length === 0) throw Errors.badRequest(`no inputs: model '${m.name}' takes '${inputName}'`);
  // with no stray name (and none given twice, which the parsers refuse), the one input is the model's
  const stray = req.inputs.find((t) => t.name !== inputName);
  if (stray) throw Errors.badRequest(`model '${m.name}' has no input '${stray.name}' (inputs: ${inputName})`);
  const available = outputShapes(m).map((o) => o.name);
  const requested = req.outputs ?? available.map((name) => ({ name, parameters: {} }));
  const seen = new Set<string>();
  for (const o of requested) {
    if (!available.includes(o.name))
      throw Errors.badRequest(`model '${m.name}' has no output '${o.name}' (outputs: ${available.join(', ')})`);
    if (seen.has(o.name)) throw Errors.badRequest(`output '${o.name}' asked twice`);
    seen.add(o.name);
  }
  const plan = requested.map((o) => ({ name: o.name, binary: binary(o), k: classificationCount(o) }));
  const pixels = await images(deps, m, req.inputs[0], deadline);
  const attentions = plan.some((o) => o.name !== m.config.logits_output);

  const results = (await classifyAndExplain(deps.batcher, m, pixels, { attentions, topk: 1 })).map((c) => c.result);
  const n = results.length;
  return plan.map(({ name, binary, k }): OutputTensor => {
    let values: Float32Array;
    let shape: number[];
    if (name === m.config.logits_output) {
      const classes = m.config.labels.length;
      values = new Float32Array(n * classes);
      results.forEach((r, i) => values.set(r.logits, i * classes));
      shape = [n, classes];
    } else {
      const layer = m.config.attention_outputs.indexOf(name);
      // with no images the shape is the declared one (a foreign model's unknown head count as 0)
      const [, heads, tokens] =
        n > 0
          ? [n, results[0].heads, results[0].tokens]
          : outputShapes(m)
              .find((o) => o.name === name)!
              .shape.map((d) => Math.max(0, d));
      const per = heads * tokens * tokens;
      values = new Float32Array(n * per);
      results.forEach((r, i) => values.set(r.attentions![layer], i * per));
      shape = [n, heads, tokens, tokens];
    }
    if (k > 0) {
      const perRow = shape.slice(1).reduce((a, b) => a * b, 1);
      const kept = Math.min(k, perRow);
      const labels = name === m.config.logits_output ? m.config.labels : [];
      return { name, datatype: 'BYTES', shape: [n, kept], data: classify(values, n, kept, labels), binary };
    }
    return { name, datatype: 'FP32', shape, data: values, binary };
  });
}
