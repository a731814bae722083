// The arrays an inference worker makes and sends: a batch's input from its images (floats as they
// came, bytes normalized), and the reply's arrays (transferred, not copied, where they can be).

import { type ModelInput, modelInputLength, normalizeInto } from '../../runtime/pixels.js';
import { rolloutMeanInto } from './attention.js';
import type { WorkerModel } from './inference-protocol.js';

/** The batch's input, n images of the model's size: each image's floats, or its bytes normalized
 *  (normalizeInto: the floats training and vitrine eval make), written into `into` when given (long
 *  enough), else into a fresh array. An image of another size is refused, saying the sizes. */
export function batchInput(
  model: Pick<WorkerModel, 'name' | 'inputDims' | 'normalization'>,
  images: readonly ModelInput[],
  into?: Float32Array,
): Float32Array {
  const [c, h, w] = model.inputDims;
  const per = c * h * w;
  const batch = into ? into.subarray(0, images.length * per) : new Float32Array(images.length * per);
  images.forEach((image, i) => {
    if (image.length !== modelInputLength(image, model.inputDims))
      throw new Error(`model ${model.name}: image ${i} has ${image.length} values; it takes ${per} floats or ${h * w * 3} bytes`);
    if (image instanceof Float32Array) batch.set(image, i * per);
    else normalizeInto(image, model.normalization, batch, i * per);
  });
  return batch;
}

/** Whether a typed array spans its whole buffer (so that it can be sent or transferred as it is). */
export const ownsBuffer = (a: ArrayBufferView): boolean => a.byteOffset === 0 && a.byteLength === a.buffer.byteLength;

/** The default rollout of each of the n images of a batch, tokens - prefix values each. */
export function rollouts(
  layers: readonly Float32Array[],
  n: number,
  heads: number,
  tokens: number,
  prefix: number,
): Float32Array<ArrayBuffer> {
  const maps = new Float32Array(n * (tokens - prefix));
  for (let i = 0; i < n; i++) rolloutMeanInto(layers, i, heads, tokens, maps, i * (tokens - prefix), prefix);
  return maps;
}

/** The array itself when it owns its whole buffer (ONNX Runtime's outputs do), so it can be transferred; else a copy. */
export function own(a: Float32Array): Float32Array {
  return ownsBuffer(a) && a.buffer instanceof ArrayBuffer ? a : Float32Array.from(a);
}
