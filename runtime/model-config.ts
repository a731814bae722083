// A model folder: what the server needs to serve any image classifier exported to ONNX, ours or
// foreign, read from config.json and preprocessor_config.json and validated at load.
// Three layouts load:
//   vitrine export   onnx/model.onnx (where transformers.js looks), config.json with transformers' ViT
//                    keys (id2label, sizes) beside vitrine's (outputs, relevance, our ViT config) and
//                    preprocessor_config.json (ViTImageProcessor: size, rescale, mean, std): a vitrine
//                    model and a Hugging Face model folder at once;
//   earlier exports  model.onnx and a config.json with labels, image_size [h, w], mean and std;
//   Hugging Face     model.onnx (or onnx/model.onnx), config.json with id2label and
//                    preprocessor_config.json, as optimum exports one: input pixel_values, output
//                    logits, no attention outputs; resized as its image processor does (stretched).

import { existsSync, promises as fs } from 'node:fs';
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
  /** How an image is brought to image_size: 'cover' keeps its aspect ratio and cuts the edges beyond
   *  the model's (vitrine's, the default); 'fill' stretches it (Hugging Face's image processors). */
  fit?: 'cover' | 'fill';
  /** The resampling: 'area' (means over the covered pixels, vitrine's, the default) or a kernel. */
  resample?: Resample;
  /** What pixel values are multiplied by before the mean is subtracted (default 1/255). */
  rescale?: number;
}

export type Resample = 'area' | 'nearest' | 'linear' | 'cubic' | 'lanczos3';
/** PIL's resampling codes, as image processors write them, and ours. */
const PIL_RESAMPLE: Record<number, Resample> = { 0: 'nearest', 1: 'lanczos3', 2: 'linear', 3: 'cubic', 4: 'area', 5: 'linear' };
export const RESAMPLE_TO_PIL: Record<Resample, number> = { nearest: 0, lanczos3: 1, linear: 2, cubic: 3, area: 4 };

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

/** Where exports put the inference graph: transformers.js loads onnx/model.onnx. */
export const MODEL_FILE = 'onnx/model.onnx';
/** Where earlier exports and optimum put it. */
export const LEGACY_MODEL_FILE = 'model.onnx';
export const CONFIG_FILE = 'config.json';
export const PREPROCESSOR_FILE = 'preprocessor_config.json';

/** The folder's inference graph: onnx/model.onnx, else model.onnx; null when it has neither. */
export function modelFileIn(dir: string): string | null {
  for (const f of [MODEL_FILE, LEGACY_MODEL_FILE]) if (existsSync(path.join(dir, f))) return path.join(dir, f);
  return null;
}

const isPosInt = (v: unknown) => Number.isInteger(v) && (v as number) > 0;
const isNumArray = (v: unknown) => Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'number' && Number.isFinite(x));

/**
 * Validates a parsed config.json (and preprocessor_config.json when the folder has one); throws one
 * line naming the first problem. Values in config.json's own keys (labels, image_size, mean, std) win
 * over the processor's, so that earlier exports read as they always did.
 */
export function parseModelConfig(raw: unknown, source = CONFIG_FILE, processorRaw?: unknown, processorSource = PREPROCESSOR_FILE): ModelConfig {
  const fail = (why: string, where = source): never => {
    throw new Error(`${where}: ${why}`);
  };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail('expected a JSON object');
  if (processorRaw !== undefined && (typeof processorRaw !== 'object' || processorRaw === null || Array.isArray(processorRaw))) fail('expected a JSON object', processorSource);
  const c = raw as Record<string, unknown>;
  const p = (processorRaw ?? {}) as Record<string, unknown>;
  const pfail = (why: string) => fail(why, processorSource);
  // A folder without vitrine's output names is a plain Hugging Face export: pixel_values -> logits.
  const foreign = c.input_name === undefined && c.labels === undefined && c.id2label !== undefined;
  if (foreign && processorRaw === undefined) fail(`a Hugging Face config (id2label, no input_name) needs ${PREPROCESSOR_FILE} beside it for the input size, mean and std`);

  const labels = c.labels !== undefined ? c.labels : c.id2label !== undefined ? labelsFromId2label(c.id2label, fail) : undefined;
  if (!Array.isArray(labels) || labels.length === 0 || !labels.every((l) => typeof l === 'string')) fail("'labels' must be a non-empty array of strings (or 'id2label' an object from \"0\", \"1\", … to names)");

  let size: unknown = c.image_size;
  if (typeof size === 'number') size = [size, size];
  if (size === undefined || foreign) {
    const s = p.size as Record<string, unknown> | undefined;
    if (s !== undefined) {
      if (typeof s !== 'object' || s === null || !isPosInt(s.height) || !isPosInt(s.width)) pfail("'size' must be { height, width } in pixels");
      size = [s.height, s.width];
    }
  }
  if (!Array.isArray(size) || size.length !== 2 || !size.every(isPosInt)) fail("'image_size' must be [height, width] in pixels (or one number for a square)");

  const channels = isPosInt(c.num_channels) ? (c.num_channels as number) : 3;
  const normalizeOff = p.do_normalize === false;
  const mean = c.mean ?? (normalizeOff ? new Array(channels).fill(0) : p.image_mean);
  const std = c.std ?? (normalizeOff ? new Array(channels).fill(1) : p.image_std);
  const from = c.mean !== undefined ? fail : pfail;
  if (!isNumArray(mean)) from(`'${c.mean !== undefined ? 'mean' : 'image_mean'}' must be an array of numbers, one per channel`);
  if (!isNumArray(std) || !(std as number[]).every((s) => s > 0)) from(`'${c.std !== undefined ? 'std' : 'image_std'}' must be an array of positive numbers, one per channel`);
  if ((mean as number[]).length !== (std as number[]).length) from("the mean and std must have one value per channel each");

  const input = c.input_name ?? (foreign ? 'pixel_values' : undefined);
  const logits = c.logits_output ?? (foreign ? 'logits' : undefined);
  if (typeof input !== 'string' || !input) fail("'input_name' must be a non-empty string");
  if (typeof logits !== 'string' || !logits) fail("'logits_output' must be a non-empty string");
  const att = foreign ? [] : (c.attention_outputs ?? []);
  if (!Array.isArray(att) || !att.every((a) => typeof a === 'string')) fail("'attention_outputs' must be an array of output names");
  const patch = foreign ? null : (c.patch_size ?? null);
  if (patch !== null && !isPosInt(patch)) fail("'patch_size' must be a positive integer or null");

  let rescale = 1 / 255;
  let resample: Resample = 'area';
  if (foreign) {
    if (p.do_rescale === false) rescale = 1;
    else if (p.rescale_factor !== undefined) {
      if (typeof p.rescale_factor !== 'number' || !(p.rescale_factor > 0)) pfail("'rescale_factor' must be a positive number");
      rescale = p.rescale_factor as number;
    }
    const r = p.resample ?? 2;
    if (p.do_resize !== false) {
      if (typeof r !== 'number' || !(r in PIL_RESAMPLE)) pfail(`'resample' must be one of PIL's codes 0-5, got ${JSON.stringify(r)}`);
      resample = PIL_RESAMPLE[r as number];
    }
  }
  return {
    labels: labels as string[],
    image_size: size as [number, number],
    mean: mean as number[],
    std: std as number[],
    input_name: input as string,
    logits_output: logits as string,
    attention_outputs: att as string[],
    patch_size: patch as number | null,
    ...(c.vit && typeof c.vit === 'object' ? { vit: c.vit as Record<string, unknown> } : {}),
    ...(isTrainingRecord(c.training) ? { training: c.training } : {}),
    ...(!foreign && c.relevance !== undefined ? { relevance: parseRelevance(c.relevance, att as string[], fail) } : {}),
    ...(foreign ? { fit: 'fill' as const, resample, rescale } : {}),
  };
}

function labelsFromId2label(v: unknown, fail: (why: string) => never): string[] {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail("'id2label' must be an object from \"0\", \"1\", … to class names");
  const entries = Object.entries(v as Record<string, unknown>);
  const labels: string[] = new Array(entries.length);
  for (const [k, name] of entries) {
    const i = Number(k);
    if (!Number.isInteger(i) || i < 0 || i >= entries.length || String(i) !== k) fail(`'id2label' keys must be 0 to ${entries.length - 1}, got "${k}"`);
    if (typeof name !== 'string') fail(`'id2label' must map "${k}" to a class name`);
    labels[i] = name as string;
  }
  return labels;
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

async function readJson(file: string, optional: boolean): Promise<unknown> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (optional && code === 'ENOENT') return undefined;
    throw Object.assign(new Error(`cannot read ${file}: ${code ?? (err as Error).message}`), { code });
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`${file}: not valid JSON (${(err as Error).message})`);
  }
}

export async function readModelConfig(dir: string): Promise<ModelConfig> {
  const file = path.join(dir, CONFIG_FILE);
  let raw: unknown;
  try {
    raw = await readJson(file, false);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    let isDir = false;
    try {
      isDir = (await fs.stat(dir)).isDirectory();
    } catch {
      throw new Error(`model folder ${dir} does not exist`);
    }
    throw new Error(isDir ? `${dir} is not a model folder: it has no ${CONFIG_FILE} (a vitrine export has ${CONFIG_FILE} and ${MODEL_FILE})` : `${dir} is not a folder (a model is a folder with ${CONFIG_FILE} and ${MODEL_FILE})`);
  }
  const processorFile = path.join(dir, PREPROCESSOR_FILE);
  return parseModelConfig(raw, file, await readJson(processorFile, true), processorFile);
}

/**
 * The two files an export writes for a config: config.json with transformers' ViT keys (model_type,
 * architectures, id2label, sizes, hidden_act "gelu_new": the seed's tanh GELU) beside vitrine's own
 * (output names, relevance, our ViT config, training), and preprocessor_config.json for
 * ViTImageProcessor (size, resample, rescale, mean, std). Each value is written once: labels as
 * id2label, mean and std in the processor config. parseModelConfig reads them back unchanged.
 */
export function modelFolderFiles(config: ModelConfig): { config: Record<string, unknown>; preprocessor: Record<string, unknown> } {
  const [h, w] = config.image_size;
  const vit = (config.vit ?? {}) as Record<string, unknown>;
  const pick = (...keys: string[]) => Object.fromEntries(keys.filter((k) => vit[k] !== undefined).map((k) => [k, vit[k]]));
  const hf = {
    model_type: 'vit',
    architectures: ['ViTForImageClassification'],
    id2label: Object.fromEntries(config.labels.map((l, i) => [String(i), l])),
    label2id: Object.fromEntries(config.labels.map((l, i) => [l, i])),
    image_size: h === w ? h : [h, w],
    ...(config.patch_size !== null ? { patch_size: config.patch_size } : {}),
    num_channels: config.mean.length,
    ...pick('hidden_size', 'num_hidden_layers', 'num_attention_heads', 'intermediate_size'),
    ...(config.vit ? { hidden_act: 'gelu_new' } : {}),
    ...pick('hidden_dropout_prob', 'attention_probs_dropout_prob', 'initializer_range', 'layer_norm_eps', 'qkv_bias'),
    'transformers.js_config': { dtype: 'fp32' },
  };
  const own = {
    input_name: config.input_name,
    logits_output: config.logits_output,
    attention_outputs: config.attention_outputs,
    ...(config.relevance ? { relevance: config.relevance } : {}),
    ...(config.vit ? { vit: config.vit } : {}),
    ...(config.training ? { training: config.training } : {}),
  };
  const preprocessor = {
    image_processor_type: 'ViTImageProcessor',
    do_resize: true,
    size: { height: h, width: w },
    resample: RESAMPLE_TO_PIL[config.resample ?? 'area'],
    do_rescale: true,
    rescale_factor: config.rescale ?? 1 / 255,
    do_normalize: true,
    image_mean: config.mean,
    image_std: config.std,
  };
  return { config: { ...hf, ...own }, preprocessor };
}
