// Export: the ViT's inference graph (normalized pixels -> logits + every layer's attention
// probabilities) as onnx/model.onnx with the weights as initializers, the explanation graph as
// onnx/relevance.onnx, and config.json + preprocessor_config.json: a vitrine model folder that is also
// a Hugging Face one (transformers.js runs it as it is).

import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Tensor } from './autograd/graph.js';
import { grad } from './autograd/grad.js';
import { add, argmax, input, mul, neg, oneHot, reduceSum, step, sub } from './autograd/ops.js';
import { compileModel, compileToBytes } from './autograd/onnx.js';
import { serializeModel } from './autograd/onnx-proto.js';
import { ROLLOUT_OUTPUT, appendRolloutOutput } from './rollout-graph.js';
import { type FileOps, writeFilesAtomic } from './io/atomic.js';
import { GraphContext } from './nn/module.js';
import { BATCH, INPUT_NAME, type ViT, pixelInput } from './vit/model.js';
import { CIFAR10_CLASSES } from './data/cifar10.js';
import {
  CONFIG_FILE,
  LEGACY_MODEL_FILE,
  MODEL_FILE,
  type ModelConfig,
  PREPROCESSOR_FILE,
  type TrainingRecord,
  modelFolderFiles,
} from '../runtime/model-config.js';

export { INPUT_NAME } from './vit/model.js';
export const LOGITS_OUTPUT = 'logits';
export const attentionOutput = (layer: number) => `attentions.${layer}`;
/** The explanation graph beside model.onnx: its class input and gradient outputs. */
export const RELEVANCE_FILE = 'onnx/relevance.onnx';
/** The light explanation graph: the last block's attention gradient only (the default map's). */
export const LIGHT_RELEVANCE_FILE = 'onnx/relevance-light.onnx';
/** Where earlier exports put it (removed when a folder is exported again). */
const LEGACY_RELEVANCE_FILE = 'relevance.onnx';
export const CLASS_INPUT = 'target_class';
export const attentionGradOutput = (layer: number) => `attention_grads.${layer}`;
/** The explanation graph's gradient of the class logit with respect to its input pixels. */
export const INPUT_GRAD_OUTPUT = 'pixel_values_grad';
/** A target class of -1 asks the explanation graph for its own top prediction. */
export const TOP_CLASS = -1;

/**
 * sum_b logits[b, c_b], the score an explanation graph differentiates: c_b is target_class[b], or the
 * top prediction where it is negative (TOP_CLASS), so one run classifies and explains. Images do not
 * interact, so the gradient of the sum at image b is the gradient of its own class's logit.
 */
export function classScore(logits: Tensor, target: Tensor, classes: number): Tensor {
  // step(-target - 0.5) is 1 exactly where the target is negative; neither it nor argmax has a gradient
  const useTop = step(sub(neg(target), 0.5));
  const chosen = add(target, mul(useTop, sub(argmax(logits), target)));
  return reduceSum(mul(logits, oneHot(chosen, classes)), [0, 1], false);
}

/** Labels for a model: given ones, else CIFAR-10's for a 10-class model, else class_0, class_1, … */
export function defaultLabels(numClasses: number): string[] {
  return numClasses === CIFAR10_CLASSES.length ? [...CIFAR10_CLASSES] : Array.from({ length: numClasses }, (_, i) => `class_${i}`);
}

export function modelConfigFor(model: ViT, labels: readonly string[]): ModelConfig {
  const c = model.config;
  if (labels.length !== c.num_classes) throw new Error(`${labels.length} labels given for a model of ${c.num_classes} classes`);
  return {
    labels: [...labels],
    image_size: [c.image_size, c.image_size],
    mean: [...c.mean],
    std: [...c.std],
    input_name: INPUT_NAME,
    logits_output: LOGITS_OUTPUT,
    attention_outputs: Array.from({ length: c.num_hidden_layers }, (_, i) => attentionOutput(i)),
    rollout_output: ROLLOUT_OUTPUT,
    patch_size: c.patch_size,
    ...(model.prefixTokens > 1 ? { prefix_tokens: model.prefixTokens } : {}),
    relevance: {
      file: RELEVANCE_FILE,
      class_input: CLASS_INPUT,
      gradient_outputs: Array.from({ length: c.num_hidden_layers }, (_, i) => attentionGradOutput(i)),
      input_gradient_output: INPUT_GRAD_OUTPUT,
      top_class: TOP_CLASS,
      light_file: LIGHT_RELEVANCE_FILE,
    },
    vit: { ...c },
  };
}

/**
 * The explanation graph: for each image b and its class c_b (input `target_class`, [batch], class
 * indices as floats; -1 for the image's top prediction), the logits, every layer's attention
 * probabilities A_l with dy_c/dA_l, and dy_c/dx, the gradient of that class's logit (before softmax)
 * with respect to the input pixels. The graph is the autograd's own gradient graph, compiled to ONNX
 * like the training step.
 */
export function relevanceGraph(
  model: ViT,
  ctx = new GraphContext(false),
): { pixels: Tensor; target: Tensor; logits: Tensor; attentions: Tensor[]; grads: Tensor[]; inputGrad: Tensor; score: Tensor } {
  const c = model.config;
  const pixels = pixelInput(c);
  const target = input(CLASS_INPUT, [BATCH]);
  const { logits, attentions } = model.forward(ctx, pixels);
  const score = classScore(logits, target, c.num_classes);
  const all = grad(score, [...attentions, pixels]);
  return { pixels, target, logits, attentions, grads: all.slice(0, -1), inputGrad: all.at(-1)!, score };
}

/** An explanation graph, serialized: the full one (every layer's dy_c/dA_l and dy_c/dx), or the light
 *  one (the logits, every layer's attentions and dy_c/dA of the last block alone: a backward through
 *  that block only, as the gradients of the others are not emitted; the default map,
 *  server/engine/relevance.ts lastLayerRelevanceInto, needs no more). */
export function exportRelevanceOnnx(model: ViT, config: ModelConfig, light = false): Uint8Array {
  const { logits, attentions, grads, inputGrad } = relevanceGraph(model);
  const last = attentions.length - 1;
  const gradients = light
    ? [[attentionGradOutput(last), grads[last]] as const]
    : [...grads.map((g, i) => [attentionGradOutput(i), g] as const), [INPUT_GRAD_OUTPUT, inputGrad] as const];
  return compileToBytes({
    outputs: [[LOGITS_OUTPUT, logits], ...attentions.map((a, i) => [attentionOutput(i), a] as const), ...gradients],
    initializers: new Map(model.namedParameters().map(([name, p]) => [name, p.data])),
    graphName: light ? 'vit_relevance_light' : 'vit_relevance',
    docString:
      `Vision Transformer, ${model.parameterCount()} parameters, with the ` +
      `gradient of the logit of ${CLASS_INPUT} (per image; -1: the top ` +
      `prediction) with respect to ` +
      `${light ? "the last layer's attention probabilities" : "every layer's attention probabilities and to the input pixels"}`,
    metadata: { labels: JSON.stringify(config.labels), class_input: CLASS_INPUT },
  });
}

/** The serialized inference model: the logits, every layer's attentions and their default rollout. */
export function exportOnnx(model: ViT, config: ModelConfig): Uint8Array {
  const c = model.config;
  const ctx = new GraphContext(false);
  const pixels = pixelInput(c);
  const { logits, attentions } = model.forward(ctx, pixels);
  const initializers = new Map(model.namedParameters().map(([name, p]) => [name, p.data]));
  const onnxModel = compileModel({
    outputs: [[LOGITS_OUTPUT, logits], ...attentions.map((a, i) => [attentionOutput(i), a] as const)],
    initializers,
    graphName: 'vit',
    docString: `Vision Transformer, ${model.parameterCount()} parameters; input: normalized pixels (x/255 - mean) / std, NCHW`,
    metadata: {
      labels: JSON.stringify(config.labels),
      image_size: JSON.stringify(config.image_size),
      mean: JSON.stringify(config.mean),
      std: JSON.stringify(config.std),
      patch_size: String(config.patch_size),
      vit: JSON.stringify(config.vit),
    },
  });
  appendRolloutOutput(onnxModel, {
    attentionOutputs: attentions.map((_a, i) => attentionOutput(i)),
    tokens: attentions[0].shape[2] as number,
    prefix: model.prefixTokens,
  });
  return serializeModel(onnxModel);
}

/** Writes the model folder (onnx/model.onnx, onnx/relevance.onnx, config.json,
 *  preprocessor_config.json); all appear whole, or none changes. An earlier export's top-level graphs
 *  in the same folder are removed after. */
export interface ExportOptions {
  /** The run's data and split, carried in config.json so that eval holds out what training did. */
  training?: TrainingRecord;
  /** The file operations the folder is written with (node:fs by default). */
  io?: FileOps;
  /** How images are brought to the model's size, when not vitrine's (a Hugging Face checkpoint's
   *  processor stretches, with its resampling and rescale). */
  preprocessing?: Pick<ModelConfig, 'fit' | 'resample' | 'rescale'>;
}

export async function exportModel(
  model: ViT,
  labels: readonly string[],
  dir: string,
  { training, io, preprocessing }: ExportOptions = {},
): Promise<{ modelFile: string; configFile: string; bytes: number }> {
  const kept = Object.fromEntries(
    Object.entries(preprocessing ?? {}).filter(([k, v]) => ['fit', 'resample', 'rescale'].includes(k) && v !== undefined),
  );
  const config: ModelConfig = { ...modelConfigFor(model, labels), ...kept, ...(training ? { training } : {}) };
  const bytes = exportOnnx(model, config);
  const relevance = exportRelevanceOnnx(model, config);
  const light = exportRelevanceOnnx(model, config, true);
  const files = modelFolderFiles(config);
  try {
    await fs.mkdir(path.join(dir, path.dirname(MODEL_FILE)), { recursive: true });
  } catch (err) {
    throw new Error(`cannot create ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const modelFile = path.join(dir, MODEL_FILE);
  const configFile = path.join(dir, CONFIG_FILE);
  try {
    await writeFilesAtomic(
      [
        [modelFile, bytes],
        [path.join(dir, RELEVANCE_FILE), relevance],
        [path.join(dir, LIGHT_RELEVANCE_FILE), light],
        [path.join(dir, PREPROCESSOR_FILE), JSON.stringify(files.preprocessor, null, 2) + '\n'],
        [configFile, JSON.stringify(files.config, null, 2) + '\n'],
      ],
      io,
    );
    for (const old of [LEGACY_MODEL_FILE, LEGACY_RELEVANCE_FILE]) await fs.rm(path.join(dir, old), { force: true });
  } catch (err) {
    throw new Error(`cannot write to ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return { modelFile, configFile, bytes: bytes.length };
}
