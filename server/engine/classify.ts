// Classify and explain, written once for every door onto the engine (POST /classify, the Open
// Inference Protocol's infer, vitrine predict and the in-process API): run the images (each beside its
// mirror image for flip test-time augmentation, all queued or none), turn the logits into the top
// predictions, and make the map asked for of each image. A graph that explains its own top prediction
// classifies and explains in one run (its logits are the model's); with flip TTA the class is the
// averaged logits', known only after, so the map is a second run.

import { mirrorImages, mirrorRgb } from '../../runtime/pixels.js';
import type { Batcher, JobOptions, JobResult, ModelInput } from './batcher.js';
import { CLASS_METHODS, type MadeMap, type MapQuery, classMaps, makeMap, needsAttentions } from './maps.js';
import type { ServedModel } from './models.js';

export function softmax(logits: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  const out = Float64Array.from(logits, (v) => Math.exp(v - max));
  const sum = out.reduce((a, b) => a + b, 0);
  for (let i = 0; i < out.length; i++) out[i] /= sum;
  return out;
}

/** The left-right mirror of one image of the model's size, as it was given (CHW floats or RGB bytes). */
function mirrorOf(image: ModelInput, c: { mean: readonly number[]; image_size: readonly number[] }): ModelInput {
  const [height, width] = c.image_size;
  if (!(image instanceof Float32Array)) return mirrorRgb(image, width, height);
  const mirror = new Float32Array(image.length);
  mirrorImages(image, mirror, 1, c.mean.length, height, width);
  return mirror;
}

export interface ClassifyOptions {
  /** 'flip': the logits are the mean over the image and its mirror (the maps stay the image's own). */
  tta?: 'none' | 'flip';
  /** How many predictions (default 5, at most the classes). */
  topk?: number;
  /** Every layer's attention probabilities in the result (attention=full, OIP's attention outputs). */
  attentions?: boolean;
  /** The map to make of each image: of its top prediction unless the query names a class. */
  map?: MapQuery | null;
}

export interface Classified {
  /** The run (with flip TTA, its logits the mean over the image and its mirror). */
  result: JobResult;
  predictions: Prediction[];
  map: MadeMap | null;
  /** The class-specific maps the runs made, under their map keys (a kept result keeps them). */
  classMaps: [string, Float32Array][];
}

/** Whether the map comes from the run that classifies: a class method for the top prediction, by a
 *  graph that explains its own top prediction, without TTA. */
function explainsInOneRun(model: ServedModel, o: ClassifyOptions): boolean {
  const method = o.map?.method ?? 'rollout';
  return !!o.map && CLASS_METHODS.includes(method) && model.config.relevance?.top_class !== undefined && o.tta !== 'flip';
}

/** The runs of the images, in one submission (all queued or none). */
async function run(batcher: Batcher, model: ServedModel, images: ModelInput[], o: ClassifyOptions, oneRun: boolean): Promise<JobResult[]> {
  if (oneRun) {
    const graph = o.map!.method === 'relevance' ? 'light' : 'full';
    return batcher.submitAll(model.key, images, { explain: { class: model.config.relevance!.top_class!, graph } });
  }
  const options: JobOptions = { attentions: o.attentions === true || (model.grid !== null && !!o.map && needsAttentions(o.map)) };
  if (o.tta !== 'flip') return batcher.submitAll(model.key, images, options);
  const mirrors = images.map((p) => mirrorOf(p, model.config));
  const runs = await batcher.submitAll(model.key, [...images, ...mirrors], [...images.map(() => options), ...mirrors.map(() => ({}))]);
  const own = runs.slice(0, images.length);
  own.forEach((r, i) => {
    const mirrored = runs[images.length + i];
    r.logits = Float32Array.from(r.logits, (v, k) => (v + mirrored.logits[k]) / 2);
  });
  return own;
}

/** Classifies each image and makes the map asked for (POST /classify, OIP infer, predict, the API). */
export async function classifyAndExplain(
  batcher: Batcher,
  model: ServedModel,
  images: ModelInput[],
  o: ClassifyOptions = {},
): Promise<Classified[]> {
  const oneRun = explainsInOneRun(model, o);
  const results = await run(batcher, model, images, o, oneRun);
  const labels = model.config.labels;
  return Promise.all(
    results.map(async (result, i): Promise<Classified> => {
      const predictions = topPredictions(result.logits, labels, o.topk ?? 5);
      if (!o.map || !model.grid) return { result, predictions, map: null, classMaps: [] };
      const top = predictions[0].index;
      // the maps the runs make, gathered (those of the classifying run first) so that none is made twice
      const made = new Map(oneRun ? classMaps(result, top) : []);
      const cache = { get: async (key: string) => made.get(key), put: async (key: string, v: Float32Array) => void made.set(key, v) };
      const map = await makeMap(batcher, model, images[i], top, o.map, result, cache);
      const kept = [...made].filter(([key]) => CLASS_METHODS.some((m) => key.startsWith(`${m}:`)));
      return { result, predictions, map, classMaps: kept };
    }),
  );
}

export interface Prediction {
  label: string;
  index: number;
  probability: number;
}

/** The k most probable classes, most probable first (of equal ones, the lower index first): one pass
 *  that keeps the k best so far, not a sort of every class (1,000 of them for an ImageNet model). */
export function topPredictions(logits: Float32Array, labels: readonly string[], k: number): Prediction[] {
  const probs = softmax(logits);
  const n = Math.min(k, labels.length, probs.length);
  const top: number[] = [];
  for (let i = 0; i < probs.length; i++) {
    let at = top.length;
    while (at > 0 && probs[i] > probs[top[at - 1]]) at--;
    if (at >= n) continue;
    top.splice(at, 0, i);
    if (top.length > n) top.length = n;
  }
  return top.map((i) => ({ label: labels[i], index: i, probability: probs[i] }));
}
