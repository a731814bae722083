// Export: the ViT's inference graph (normalized pixels -> logits + every layer's attention
// probabilities) as model.onnx with the weights as initializers, and config.json beside it.

import { promises as fs } from 'node:fs';
import path from 'node:path';
import { input } from './autograd/ops.js';
import { compileToBytes } from './autograd/onnx.js';
import { writeFilesAtomic } from './io/atomic.js';
import { GraphContext } from './nn/module.js';
import { BATCH, ViT } from './vit/model.js';
import { CONFIG_FILE, MODEL_FILE, ModelConfig, TrainingRecord } from '../runtime/model-config.js';

export const INPUT_NAME = 'pixel_values';
export const LOGITS_OUTPUT = 'logits';
export const attentionOutput = (layer: number) => `attentions.${layer}`;

export const CIFAR10_LABELS = Object.freeze(['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck']);

/** Labels for a model: given ones, else CIFAR-10's for a 10-class model, else class_0, class_1, … */
export function defaultLabels(numClasses: number): string[] {
  return numClasses === CIFAR10_LABELS.length ? [...CIFAR10_LABELS] : Array.from({ length: numClasses }, (_, i) => `class_${i}`);
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
    patch_size: c.patch_size,
    vit: { ...c },
  };
}

/** The serialized inference model. */
export function exportOnnx(model: ViT, config: ModelConfig): Uint8Array {
  const c = model.config;
  const ctx = new GraphContext(false);
  const pixels = input(INPUT_NAME, [BATCH, c.num_channels, c.image_size, c.image_size]);
  const { logits, attentions } = model.forward(ctx, pixels);
  const initializers = new Map(model.namedParameters().map(([name, p]) => [name, p.data]));
  return compileToBytes({
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
}

/** Writes <dir>/model.onnx and <dir>/config.json; both appear whole, or neither changes. */
export async function exportModel(model: ViT, labels: readonly string[], dir: string, training?: TrainingRecord): Promise<{ modelFile: string; configFile: string; bytes: number }> {
  const config: ModelConfig = { ...modelConfigFor(model, labels), ...(training ? { training } : {}) };
  const bytes = exportOnnx(model, config);
  try {
    await fs.mkdir(dir, { recursive: true });
  } catch (err) {
    throw new Error(`cannot create ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const modelFile = path.join(dir, MODEL_FILE);
  const configFile = path.join(dir, CONFIG_FILE);
  try {
    await writeFilesAtomic([
      [modelFile, bytes],
      [configFile, JSON.stringify(config, null, 2) + '\n'],
    ]);
  } catch (err) {
    throw new Error(`cannot write to ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return { modelFile, configFile, bytes: bytes.length };
}
