// The model folder's config.json: what the server needs to serve any image classifier exported to
// ONNX, ours or foreign. `vitrine export` writes it; the server validates it at load.

import { promises as fs } from 'node:fs';
import path from 'node:path';

export interface ModelConfig {
  /** Class names, index = logit position. */
  labels: string[];
  /** [height, width] the model takes. */
  image_size: [number, number];
  /** Per-channel mean and std applied to pixels scaled to [0, 1]. */
  mean: number[];
  std: number[];
  /** Name of the image input, layout [batch, channels, height, width]. */
  input_name: string;
  /** Name of the [batch, classes] logits output. */
  logits_output: string;
  /** Names of [batch, heads, tokens, tokens] attention outputs, first layer first; may be empty. */
  attention_outputs: string[];
  /** Patch side in pixels, for mapping tokens to image regions; null for models without patches. */
  patch_size: number | null;
  /** Our ViT config when the model is ours. */
  vit?: Record<string, unknown>;
  /** A second graph beside model.onnx that explains a class: it takes the image and a class index per
   *  image (float) and gives, besides the logits and attentions, the gradient of that class's logit
   *  with respect to each layer's attention probabilities. Models without it serve no relevance maps. */
  relevance?: RelevanceGraph;
  /** What the model was trained on, when vitrine trained it: so that evaluation can hold out the same images. */
  training?: TrainingRecord;
}

export interface RelevanceGraph {
  file: string;
  class_input: string;
  /** [batch, heads, tokens, tokens] gradients, first layer first, one per attention output. */
  gradient_outputs: string[];
}

export interface TrainingRecord {
  /** 'cifar10', or the absolute path of the data folder. */
  data: string;
  /** The seeded split of a folder without train/ and val/: the share held out and the seed. */
  val_ratio: number;
  seed: number;
}

export const MODEL_FILE = 'model.onnx';
export const CONFIG_FILE = 'config.json';

const isPosInt = (v: unknown) => Number.isInteger(v) && (v as number) > 0;
const isNumArray = (v: unknown) => Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'number' && Number.isFinite(x));

/** Validates a parsed config.json; throws one line naming the first problem. */
export function parseModelConfig(raw: unknown, source = CONFIG_FILE): ModelConfig {
  const fail = (why: string): never => {
    throw new Error(`${source}: ${why}`);
  };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail('expected a JSON object');
  const c = raw as Record<string, unknown>;
  if (!Array.isArray(c.labels) || c.labels.length === 0 || !c.labels.every((l) => typeof l === 'string')) fail("'labels' must be a non-empty array of strings");
  const size = c.image_size;
  if (!Array.isArray(size) || size.length !== 2 || !size.every(isPosInt)) fail("'image_size' must be [height, width] in pixels");
  if (!isNumArray(c.mean)) fail("'mean' must be an array of numbers, one per channel");
  if (!isNumArray(c.std) || !(c.std as number[]).every((s) => s > 0)) fail("'std' must be an array of positive numbers, one per channel");
  if ((c.mean as number[]).length !== (c.std as number[]).length) fail("'mean' and 'std' must have one value per channel each");
  for (const key of ['input_name', 'logits_output'] as const) if (typeof c[key] !== 'string' || !c[key]) fail(`'${key}' must be a non-empty string`);
  const att = c.attention_outputs ?? [];
  if (!Array.isArray(att) || !att.every((a) => typeof a === 'string')) fail("'attention_outputs' must be an array of output names");
  const patch = c.patch_size ?? null;
  if (patch !== null && !isPosInt(patch)) fail("'patch_size' must be a positive integer or null");
  return {
    labels: c.labels as string[],
    image_size: size as [number, number],
    mean: c.mean as number[],
    std: c.std as number[],
    input_name: c.input_name as string,
    logits_output: c.logits_output as string,
    attention_outputs: att as string[],
    patch_size: patch as number | null,
    ...(c.vit && typeof c.vit === 'object' ? { vit: c.vit as Record<string, unknown> } : {}),
    ...(isTrainingRecord(c.training) ? { training: c.training } : {}),
    ...(c.relevance !== undefined ? { relevance: parseRelevance(c.relevance, att as string[], fail) } : {}),
  };
}

function parseRelevance(v: unknown, attentions: string[], fail: (why: string) => never): RelevanceGraph {
  const r = v as RelevanceGraph;
  if (typeof v !== 'object' || v === null) fail("'relevance' must be an object { file, class_input, gradient_outputs }");
  if (typeof r.file !== 'string' || !r.file || r.file.includes('..') || path.isAbsolute(r.file)) fail("'relevance.file' must name a file in the model folder");
  if (typeof r.class_input !== 'string' || !r.class_input) fail("'relevance.class_input' must be a non-empty string");
  if (!Array.isArray(r.gradient_outputs) || !r.gradient_outputs.every((g) => typeof g === 'string')) fail("'relevance.gradient_outputs' must be an array of output names");
  if (r.gradient_outputs.length !== attentions.length) fail(`'relevance.gradient_outputs' must name one gradient per attention output (${attentions.length})`);
  return { file: r.file, class_input: r.class_input, gradient_outputs: [...r.gradient_outputs] };
}

function isTrainingRecord(v: unknown): v is TrainingRecord {
  const t = v as TrainingRecord;
  return typeof v === 'object' && v !== null && typeof t.data === 'string' && typeof t.val_ratio === 'number' && Number.isInteger(t.seed);
}

export async function readModelConfig(dir: string): Promise<ModelConfig> {
  const file = path.join(dir, CONFIG_FILE);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      let isDir = false;
      try {
        isDir = (await fs.stat(dir)).isDirectory();
      } catch {
        throw new Error(`model folder ${dir} does not exist`);
      }
      throw new Error(isDir ? `${dir} is not a model folder: it has no ${CONFIG_FILE} (a vitrine export has ${CONFIG_FILE} and ${MODEL_FILE})` : `${dir} is not a folder (a model is a folder with ${CONFIG_FILE} and ${MODEL_FILE})`);
    }
    throw new Error(`cannot read ${file}: ${code ?? (err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new Error(`${file}: not valid JSON (${(err as Error).message})`);
  }
  return parseModelConfig(raw, file);
}
