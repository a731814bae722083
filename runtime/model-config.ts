// A model folder: what the server needs to serve any image classifier exported to ONNX, ours or
// foreign, read from config.json and preprocessor_config.json and validated at load against TypeBox
// schemas (the words of each error come from them: runtime/schema.ts).
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
import { FormatRegistry, type Static, type TSchema, Type } from '@sinclair/typebox';
import { firstProblem, oneOf } from './schema.js';

const posInt = Type.Integer({ minimum: 1 });
// Sane bounds, so that a config.json cannot make the server allocate without limit for a graph that
// leaves its sizes symbolic (the worker checks sizes the graph fixes against the config).
const MAX_SIDE = 4096;
const MAX_CHANNELS = 4;
const MAX_LABELS = 100_000;
const side = Type.Integer({ minimum: 1, maximum: MAX_SIDE });
const name = Type.String({ minLength: 1 });
const means = Type.Array(Type.Number(), {
  minItems: 1,
  maxItems: MAX_CHANNELS,
  expects: `an array of numbers, one per channel (at most ${MAX_CHANNELS})`,
});
const stds = Type.Array(Type.Number({ exclusiveMinimum: 0 }), {
  minItems: 1,
  maxItems: MAX_CHANNELS,
  expects: `an array of positive numbers, one per channel (at most ${MAX_CHANNELS})`,
});

/** A path inside the model folder: relative, without '..'. */
FormatRegistry.Set('model-file', (s) => s !== '' && !s.includes('..') && !path.isAbsolute(s));

/** A second graph beside model.onnx that explains a class: it takes the image and a class index per
 *  image (float) and gives, besides the logits and attentions, the gradient of that class's logit
 *  with respect to each layer's attention probabilities. */
export const RelevanceGraphSchema = Type.Object({
  file: Type.String({ format: 'model-file', expects: 'a file in the model folder' }),
  class_input: name,
  /** [batch, heads, tokens, tokens] gradients, first layer first, one per attention output. */
  gradient_outputs: Type.Array(Type.String()),
  /** [batch, channels, height, width]: the gradient with respect to the input (graphs written since it was added). */
  input_gradient_output: Type.Optional(Type.String()),
  /** The class_input value that explains each image's own top prediction, in the run that classifies it. */
  top_class: Type.Optional(Type.Literal(-1)),
  /** The light graph: the same inputs, the logits, the attentions and only the last of
   *  gradient_outputs (a backward through the last block alone): what the default map needs. */
  light_file: Type.Optional(Type.String({ format: 'model-file', expects: 'a file in the model folder' })),
});
export type RelevanceGraph = Static<typeof RelevanceGraphSchema>;

export const TrainingRecordSchema = Type.Object({
  /** 'cifar10', or the absolute path of the data folder. */
  data: Type.String(),
  /** The seeded split of a folder without train/ and val/: the share held out and the seed. */
  val_ratio: Type.Number({ minimum: 0, exclusiveMaximum: 1 }),
  seed: Type.Integer(),
});
export type TrainingRecord = Static<typeof TrainingRecordSchema>;

export const RESAMPLES = ['area', 'nearest', 'linear', 'cubic', 'lanczos3'] as const;
export type Resample = (typeof RESAMPLES)[number];
/** PIL's resampling codes, as image processors write them, and ours. */
const PIL_RESAMPLE: Record<number, Resample> = { 0: 'nearest', 1: 'lanczos3', 2: 'linear', 3: 'cubic', 4: 'area', 5: 'linear' };
export const RESAMPLE_TO_PIL: Record<Resample, number> = { nearest: 0, lanczos3: 1, linear: 2, cubic: 3, area: 4 };

export const ModelConfigSchema = Type.Object({
  /** Class names, index = logit position. */
  labels: Type.Array(Type.String(), {
    minItems: 1,
    maxItems: MAX_LABELS,
    expects:
      `a non-empty array of at most ${MAX_LABELS.toLocaleString('en-US')} ` + `strings (or 'id2label' an object from "0", "1", … to names)`,
  }),
  /** [height, width] the model takes. */
  image_size: Type.Tuple([side, side], { expects: `[height, width] in pixels (at most ${MAX_SIDE} each)` }),
  /** Per-channel mean and std applied to pixels scaled to [0, 1]. */
  mean: means,
  std: stds,
  /** Name of the image input, layout [batch, channels, height, width]. */
  input_name: name,
  /** Name of the [batch, classes] logits output. */
  logits_output: name,
  /** Names of [batch, heads, tokens, tokens] attention outputs, first layer first; may be empty. */
  attention_outputs: Type.Array(Type.String()),
  /** Name of a [batch, patches] output giving the default attention rollout (heads averaged, nothing
   *  discarded) in the graph itself (trainer/rollout-graph.ts), when the graph has one: a server fetches
   *  it in place of every layer's attentions for the default map. */
  rollout_output: Type.Optional(name),
  /** Patch side in pixels, for mapping tokens to image regions; null for models without patches. */
  patch_size: Type.Union([posInt, Type.Null()]),
  /** Tokens before the patches: [CLS] first (whose row the maps read), then any others (DeiT's
   *  distillation token, registers), left out of the maps. Default 1. */
  prefix_tokens: Type.Optional(posInt),
  /** Heads of every attention output, when known before a run (imported models say). */
  attention_heads: Type.Optional(posInt),
  /** Our ViT config when the model is ours. */
  vit: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { expects: 'an object (a ViT config)' })),
  /** The relevance graph; models without it serve no relevance maps. */
  relevance: Type.Optional(RelevanceGraphSchema),
  /** What the model was trained on, when vitrine trained it: so that evaluation can hold out the same images. */
  training: Type.Optional(TrainingRecordSchema),
  /** Set by vitrine quantize: the classification graph's large products in int8 (the explanation graphs stay float). */
  quantization: Type.Optional(
    Type.Object(
      {
        weights: Type.Literal('int8'),
        activations: Type.String(),
        products: Type.Integer({ minimum: 0 }),
        kept_float: Type.Integer({ minimum: 0 }),
        op: Type.String(),
        explanation: Type.Literal('float'),
      },
      { expects: 'an object as vitrine quantize writes it' },
    ),
  ),
  /** How an image is brought to image_size: 'cover' keeps its aspect ratio and cuts the edges beyond
   *  the model's (vitrine's, the default); 'fill' stretches it (Hugging Face's image processors). */
  fit: Type.Optional(oneOf(['cover', 'fill'] as const)),
  /** The resampling: 'area' (means over the covered pixels, vitrine's, the default) or a kernel. */
  resample: Type.Optional(oneOf(RESAMPLES)),
  /** What pixel values are multiplied by before the mean is subtracted (default 1/255). */
  rescale: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
});
export type ModelConfig = Static<typeof ModelConfigSchema>;

/** The keys config.json may hold: ModelConfig's, some written more loosely, and transformers' that are read. */
const ConfigFileSchema = Type.Object({
  ...ModelConfigSchema.properties,
  image_size: Type.Union([side, ModelConfigSchema.properties.image_size], {
    expects: `[height, width] in pixels, at most ${MAX_SIDE} each (or one number for a square)`,
  }),
  num_channels: posInt,
});

/** The keys of preprocessor_config.json (ViTImageProcessor's) that are read. */
const PreprocessorSchema = Type.Object({
  size: Type.Union([side, Type.Object({ height: side, width: side })], {
    expects: `{ height, width } in pixels, at most ${MAX_SIDE} each (or one number for a square)`,
  }),
  do_resize: Type.Boolean(),
  resample: Type.Union(
    [0, 1, 2, 3, 4, 5].map((c) => Type.Literal(c)),
    { expects: "one of PIL's codes 0-5" },
  ),
  do_rescale: Type.Boolean(),
  rescale_factor: Type.Number({ exclusiveMinimum: 0 }),
  do_normalize: Type.Boolean(),
  image_mean: means,
  image_std: stds,
});

/** Where exports put the inference graph: transformers.js loads onnx/model.onnx. */
/**
 * The name a model folder is served under when none is given: the folder's name, or its run's for a
 * run's `model/` (runs/cats/model is 'cats'), made a plain model name (letters, digits, '.', '_', '-').
 */
export function servedNameOf(dir: string): string {
  const full = path.resolve(dir);
  const base = path.basename(full);
  const named = base === 'model' && path.basename(path.dirname(full)) !== '' ? path.basename(path.dirname(full)) : base;
  const plain = named
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/^[^A-Za-z0-9]+/, '')
    .slice(0, 128);
  return plain || 'model';
}

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

/** A value in an error: JSON, cut short. */
const shown = (v: unknown) => {
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
};

/** What a layout's parser reads with: each key of either file checked against its schema when present. */
interface Files {
  cfg: <T>(key: string) => T | undefined;
  pre: <T>(key: string) => T | undefined;
  fail: (why: string, where?: string) => never;
  raw: Record<string, unknown>;
  hasProcessor: boolean;
  processorSource: string;
}

type Candidate = Record<string, unknown>; // checked against ModelConfigSchema after

const square = (s: number | [number, number] | { height: number; width: number }): [number, number] =>
  typeof s === 'number' ? [s, s] : Array.isArray(s) ? s : [s.height, s.width];

/** What every layout reads alike: labels (ours, or id2label), mean and std (config.json's own keys win,
 *  so earlier exports read as they always did), and the processor's rescale and resampling. */
function common(
  f: Files,
  size: number | [number, number] | { height: number; width: number } | undefined,
  fallbackResample: Resample,
): Candidate {
  const { cfg, pre, raw: c } = f;
  const labels = cfg<string[]>('labels') ?? (c.id2label !== undefined ? labelsFromId2label(c.id2label, f.fail) : undefined);
  const channels = cfg<number>('num_channels') ?? 3;
  const normalizeOff = pre<boolean>('do_normalize') === false;
  const mean = cfg<number[]>('mean') ?? (normalizeOff ? new Array<number>(channels).fill(0) : pre<number[]>('image_mean'));
  const std = cfg<number[]>('std') ?? (normalizeOff ? new Array<number>(channels).fill(1) : pre<number[]>('image_std'));
  if (mean && std && mean.length !== std.length)
    f.fail('the mean and std must have one value per channel each', c.mean !== undefined ? undefined : f.processorSource);
  const rescale = cfg<number>('rescale') ?? (pre<boolean>('do_rescale') === false ? 1 : (pre<number>('rescale_factor') ?? 1 / 255));
  const code = pre<number>('resample');
  const resample: Resample =
    cfg<Resample>('resample') ?? (code !== undefined && pre<boolean>('do_resize') !== false ? PIL_RESAMPLE[code] : fallbackResample);
  return {
    labels,
    image_size: size === undefined ? undefined : square(size),
    mean,
    std,
    ...(resample !== 'area' || cfg('resample') !== undefined ? { resample } : {}),
    ...(rescale !== 1 / 255 || cfg('rescale') !== undefined ? { rescale } : {}),
  };
}

/** A plain Hugging Face export, as optimum writes one (id2label, no output names): pixel_values ->
 *  logits, no maps, resized as its image processor says (stretched, bilinear unless it says). */
function huggingFaceLayout(f: Files): Candidate {
  if (!f.hasProcessor)
    f.fail(`a Hugging Face config (id2label, no input_name) needs ${PREPROCESSOR_FILE} beside it for the input size, mean and std`);
  const size = f.pre<number | { height: number; width: number }>('size') ?? f.cfg<number | [number, number]>('image_size');
  const rescale = f.cfg<number>('rescale') ?? (f.pre<boolean>('do_rescale') === false ? 1 : (f.pre<number>('rescale_factor') ?? 1 / 255));
  return {
    ...common(f, size, 'linear'),
    rescale,
    input_name: 'pixel_values',
    logits_output: 'logits',
    attention_outputs: [],
    patch_size: null,
    fit: 'fill',
  };
}

/** vitrine's layout (and earlier exports'): output names, attention outputs, the relevance graph, the
 *  token layout. The image is cover-cropped for vitrine's own models (those that carry their ViT
 *  config); a folder with a processor and no ViT config (an imported one) is resized as its processor
 *  says, unless config.json's `fit` says otherwise. */
function vitrineLayout(f: Files): Candidate {
  const { cfg } = f;
  const size = cfg<number | [number, number]>('image_size') ?? f.pre<number | { height: number; width: number }>('size');
  const attentions = cfg<string[]>('attention_outputs') ?? [];
  const relevance = cfg<RelevanceGraph>('relevance');
  if (relevance && relevance.gradient_outputs.length !== attentions.length)
    f.fail(`'relevance.gradient_outputs' must name one gradient per attention output (${attentions.length})`);
  const fit = cfg<'cover' | 'fill'>('fit') ?? (f.hasProcessor && f.raw.vit === undefined ? 'fill' : 'cover');
  const optional = (key: string) => (cfg(key) !== undefined ? { [key]: cfg(key) } : {});
  return {
    ...common(f, size, 'area'),
    input_name: cfg('input_name'),
    logits_output: cfg('logits_output'),
    attention_outputs: attentions,
    patch_size: cfg('patch_size') ?? null,
    ...optional('rollout_output'),
    ...optional('prefix_tokens'),
    ...optional('attention_heads'),
    ...optional('vit'),
    ...optional('training'),
    ...optional('quantization'),
    ...(relevance ? { relevance: { ...relevance, gradient_outputs: [...relevance.gradient_outputs] } } : {}),
    ...(fit === 'fill' || cfg('fit') !== undefined ? { fit } : {}),
  };
}

/**
 * Validates a parsed config.json (and preprocessor_config.json when the folder has one); throws one
 * line naming the first problem. Two layouts meet in one ModelConfig: a plain Hugging Face export
 * (id2label and no output names) and vitrine's.
 */
export function parseModelConfig(
  raw: unknown,
  source = CONFIG_FILE,
  processorRaw?: unknown,
  processorSource = PREPROCESSOR_FILE,
): ModelConfig {
  const fail = (why: string, where = source): never => {
    throw new Error(`${where}: ${why}`);
  };
  const isObject = (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObject(raw)) fail('expected a JSON object');
  if (processorRaw !== undefined && !isObject(processorRaw)) fail('expected a JSON object', processorSource);
  /** A key of a file, checked against its schema when present. */
  const reader =
    (obj: Record<string, unknown>, props: Record<string, TSchema>, where: string) =>
    <T>(key: string): T | undefined => {
      const v = obj[key];
      const problem = v === undefined ? null : firstProblem(props[key], v, key);
      if (problem) fail(`'${problem.path}' must be ${problem.expects}, got ${shown(problem.got)}`, where);
      return v as T | undefined;
    };
  const c = raw as Record<string, unknown>;
  const files: Files = {
    cfg: reader(c, ConfigFileSchema.properties, source),
    pre: reader((processorRaw ?? {}) as Record<string, unknown>, PreprocessorSchema.properties, processorSource),
    fail,
    raw: c,
    hasProcessor: processorRaw !== undefined,
    processorSource,
  };
  const huggingFace = c.input_name === undefined && c.labels === undefined && c.id2label !== undefined;
  const config = huggingFace ? huggingFaceLayout(files) : vitrineLayout(files);
  // what is still missing (a key neither file gave) is named as config.json's
  const problem = firstProblem(ModelConfigSchema, config);
  if (problem) fail(`'${problem.path}' must be ${problem.expects}${problem.got === undefined ? '' : `, got ${shown(problem.got)}`}`);
  return config as ModelConfig;
}

function labelsFromId2label(v: unknown, fail: (why: string) => never): string[] {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail('\'id2label\' must be an object from "0", "1", … to class names');
  const entries = Object.entries(v as Record<string, unknown>);
  const labels: string[] = new Array(entries.length);
  for (const [k, name] of entries) {
    const i = Number(k);
    if (!Number.isInteger(i) || i < 0 || i >= entries.length || String(i) !== k)
      fail(`'id2label' keys must be 0 to ${entries.length - 1}, got "${k}"`);
    if (typeof name !== 'string') fail(`'id2label' must map "${k}" to a class name`);
    labels[i] = name as string;
  }
  return labels;
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
    throw new Error(
      isDir
        ? `${dir} is not a model folder: it has no ${CONFIG_FILE} (a vitrine export has ${CONFIG_FILE} and ${MODEL_FILE})`
        : `${dir} is not a folder (a model is a folder with ${CONFIG_FILE} and ${MODEL_FILE})`,
    );
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
  const deit = vit.distillation_token === true;
  const hf = {
    model_type: deit ? 'deit' : 'vit',
    architectures: [
      deit
        ? vit.distillation_classifier
          ? 'DeiTForImageClassificationWithTeacher'
          : 'DeiTForImageClassification'
        : 'ViTForImageClassification',
    ],
    id2label: Object.fromEntries(config.labels.map((l, i) => [String(i), l])),
    label2id: Object.fromEntries(config.labels.map((l, i) => [l, i])),
    image_size: h === w ? h : [h, w],
    ...(config.patch_size !== null ? { patch_size: config.patch_size } : {}),
    num_channels: config.mean.length,
    ...pick('hidden_size', 'num_hidden_layers', 'num_attention_heads', 'intermediate_size'),
    ...(config.vit ? { hidden_act: vit.hidden_act ?? 'gelu_new' } : {}),
    ...pick('hidden_dropout_prob', 'attention_probs_dropout_prob', 'initializer_range', 'layer_norm_eps', 'qkv_bias'),
    'transformers.js_config': { dtype: 'fp32' },
  };
  const own = {
    input_name: config.input_name,
    logits_output: config.logits_output,
    attention_outputs: config.attention_outputs,
    ...(config.rollout_output !== undefined ? { rollout_output: config.rollout_output } : {}),
    ...(config.prefix_tokens !== undefined ? { prefix_tokens: config.prefix_tokens } : {}),
    ...(config.attention_heads !== undefined ? { attention_heads: config.attention_heads } : {}),
    ...(config.fit !== undefined ? { fit: config.fit } : {}),
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
