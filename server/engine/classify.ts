// What POST /classify and vitrine predict both do with an image's input: run it (beside its mirror
// image for flip test-time augmentation, in one batch when the batcher can), and turn the logits into
// probabilities and the top predictions.

import { mirrorImages } from '../../runtime/pixels.js';
import type { Batcher, JobOptions, JobResult } from './batcher.js';
import type { ServedModel } from './models.js';

export function softmax(logits: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  const out = Float64Array.from(logits, (v) => Math.exp(v - max));
  const sum = out.reduce((a, b) => a + b, 0);
  for (let i = 0; i < out.length; i++) out[i] /= sum;
  return out;
}

/** The left-right mirror of one CHW image of the model's size. */
function mirrorOf(pixels: Float32Array, c: { mean: readonly number[]; image_size: readonly number[] }): Float32Array {
  const mirror = new Float32Array(pixels.length);
  mirrorImages(pixels, mirror, 1, c.mean.length, c.image_size[0], c.image_size[1]);
  return mirror;
}

/** The model's result for one input; with tta 'flip' the logits are the mean over it and its mirror
 *  (the maps stay the image's own). */
export async function runClassification(
  batcher: Batcher,
  model: ServedModel,
  pixels: Float32Array,
  o: { tta?: 'none' | 'flip'; attentions?: boolean } = {},
): Promise<JobResult> {
  const options: JobOptions = { attentions: o.attentions ?? false };
  // the image and its mirror are queued together or not at all
  const [r, mirrored] =
    o.tta === 'flip'
      ? await batcher.submitAll(model.name, [pixels, mirrorOf(pixels, model.config)], [options, { attentions: false }])
      : [await batcher.submit(model.name, pixels, options), null];
  if (mirrored) r.logits = Float32Array.from(r.logits, (v, i) => (v + mirrored.logits[i]) / 2);
  return r;
}

export interface Prediction {
  label: string;
  index: number;
  probability: number;
}

/** The k most probable classes, most probable first. */
export function topPredictions(logits: Float32Array, labels: readonly string[], k: number): Prediction[] {
  const probs = softmax(logits);
  const order = Array.from(probs.keys())
    .sort((a, b) => probs[b] - probs[a])
    .slice(0, Math.min(k, labels.length));
  return order.map((i) => ({ label: labels[i], index: i, probability: probs[i] }));
}
