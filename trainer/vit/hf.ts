// Hugging Face ViT and DeiT checkpoints: the one place where transformers' state-dict names and config
// keys meet ours (as weights.ts is for the seed's). A checkpoint folder is what `save_pretrained`
// writes: config.json, model.safetensors or model.safetensors.index.json with its shards (F32, F16 or
// BF16, widened to float32), and preprocessor_config.json.
//
// Sources: transformers' modeling_vit.py (ViTEmbeddings, ViTSelfAttention's transpose_for_scores:
// the query/key/value rows of head h are h*head_size … (h+1)*head_size-1; ViTLayer's layernorm_before
// and layernorm_after; ViTModel's final layernorm; ViTForImageClassification's classifier on [CLS]) and
// modeling_deit.py (DeiTEmbeddings' distillation_token after [CLS]; DeiTForImageClassification's
// classifier on [CLS]; DeiTForImageClassificationWithTeacher's cls_classifier and
// distillation_classifier, the logits their mean), and configuration_vit.py for the defaults.

import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { CONFIG_FILE, type ModelConfig, PREPROCESSOR_FILE, parseModelConfig } from '../../runtime/model-config.js';
import { type NamedTensor, readSafetensors } from '../io/safetensors.js';
import { type ViTConfig, headSize, numPatches, parseViTConfig, prefixTokens } from './config.js';

export const SAFETENSORS_FILE = 'model.safetensors';
export const SAFETENSORS_INDEX = 'model.safetensors.index.json';

/** The architectures read, by transformers' class name: whether the weights are under `vit.`/`deit.`,
 *  and what heads the checkpoint has. */
const ARCHITECTURES: Record<string, { modelType: 'vit' | 'deit'; head: 'classifier' | 'teacher' | 'none' }> = {
  ViTForImageClassification: { modelType: 'vit', head: 'classifier' },
  ViTModel: { modelType: 'vit', head: 'none' },
  DeiTForImageClassification: { modelType: 'deit', head: 'classifier' },
  DeiTForImageClassificationWithTeacher: { modelType: 'deit', head: 'teacher' },
  DeiTModel: { modelType: 'deit', head: 'none' },
};

/** transformers' ViTConfig defaults (configuration_vit.py; DeiTConfig's are the same). */
const HF_DEFAULTS = {
  hidden_size: 768,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  intermediate_size: 3072,
  hidden_act: 'gelu',
  hidden_dropout_prob: 0,
  attention_probs_dropout_prob: 0,
  initializer_range: 0.02,
  layer_norm_eps: 1e-12,
  image_size: 224,
  patch_size: 16,
  num_channels: 3,
  qkv_bias: true,
} as const;

/** transformers' config keys that do not change the forward pass of image classification. */
const HF_PASSED_OVER = new Set([
  'architectures',
  'model_type',
  'id2label',
  'label2id',
  'transformers_version',
  'torch_dtype',
  'dtype',
  'encoder_stride',
  'problem_type',
  'pooler_output_size',
  'pooler_act',
  'use_mask_token',
  'return_dict',
  'output_hidden_states',
  'output_attentions',
  'torchscript',
  'use_bfloat16',
  'tie_word_embeddings',
  'is_encoder_decoder',
  'is_decoder',
  'add_cross_attention',
  'chunk_size_feed_forward',
  'pruned_heads',
  'finetuning_task',
  'tokenizer_class',
  'prefix',
  'bos_token_id',
  'pad_token_id',
  'eos_token_id',
  'sep_token_id',
  'decoder_start_token_id',
  'task_specific_params',
  'num_labels',
  '_name_or_path',
  '_attn_implementation_autoset',
  'layerdrop',
  'cross_attention_hidden_size',
  'name_or_path',
]);

export interface HfCheckpoint {
  /** Our ViT config for the checkpoint (num_classes = its labels'). */
  vit: ViTConfig;
  /** From id2label; empty for a checkpoint without a classifier (ViTModel, DeiTModel). */
  labels: string[];
  architecture: string;
  /** The tensors under our names. */
  weights: Map<string, NamedTensor>;
  /** The folder's preprocessing (size, mean, std, resampling) as a served model reads it. */
  preprocessing: ModelConfig | null;
  /** What was passed over, for the user (the pooler of a ViTModel). */
  notes: string[];
}

export const isHfCheckpoint = (dir: string) =>
  existsSync(path.join(dir, CONFIG_FILE)) &&
  (existsSync(path.join(dir, SAFETENSORS_FILE)) || existsSync(path.join(dir, SAFETENSORS_INDEX)));

/** transformers' config.json -> our ViT config; refuses other architectures and settings we cannot run. */
export function hfViTConfig(
  raw: Record<string, unknown>,
  source: string,
): { vit: ViTConfig; architecture: string; head: 'classifier' | 'teacher' | 'none' } {
  const modelType = raw.model_type;
  if (modelType !== 'vit' && modelType !== 'deit')
    throw new Error(
      `${source}: model_type ${JSON.stringify(modelType)} is not a ViT: ` +
        `vitrine loads transformers' ViT and DeiT checkpoints (model_type ` +
        `"vit" or "deit")`,
    );
  const archs = Array.isArray(raw.architectures) ? (raw.architectures as unknown[]) : [];
  const architecture =
    typeof archs[0] === 'string' ? archs[0] : modelType === 'vit' ? 'ViTForImageClassification' : 'DeiTForImageClassification';
  const arch = ARCHITECTURES[architecture];
  if (!arch || arch.modelType !== modelType)
    throw new Error(`${source}: architecture ${architecture} is not one vitrine loads (known: ${Object.keys(ARCHITECTURES).join(', ')})`);
  const unknown = Object.keys(raw).filter((k) => !(k in HF_DEFAULTS) && !HF_PASSED_OVER.has(k));
  if (unknown.length > 0) throw new Error(`${source}: config keys vitrine does not know for a ${architecture}: ${unknown.join(', ')}`);
  const c = { ...HF_DEFAULTS, ...raw } as Record<string, unknown>;
  if (c.hidden_act !== 'gelu' && c.hidden_act !== 'gelu_new')
    throw new Error(`${source}: hidden_act ${JSON.stringify(c.hidden_act)} is not one vitrine runs (gelu, gelu_new)`);
  const side = (v: unknown, key: string) => {
    if (typeof v === 'number') return v;
    if (Array.isArray(v) && v.length === 2 && v[0] === v[1]) return v[0] as number;
    throw new Error(`${source}: '${key}' must be one side (square images), got ${JSON.stringify(v)}`);
  };
  const labels = labelsOf(raw);
  const vit = parseViTConfig(
    {
      image_size: side(c.image_size, 'image_size'),
      patch_size: side(c.patch_size, 'patch_size'),
      num_channels: c.num_channels,
      hidden_size: c.hidden_size,
      num_hidden_layers: c.num_hidden_layers,
      num_attention_heads: c.num_attention_heads,
      intermediate_size: c.intermediate_size,
      hidden_act: c.hidden_act,
      hidden_dropout_prob: c.hidden_dropout_prob,
      attention_probs_dropout_prob: c.attention_probs_dropout_prob,
      initializer_range: c.initializer_range,
      layer_norm_eps: c.layer_norm_eps,
      qkv_bias: c.qkv_bias,
      num_classes: Math.max(1, labels.length),
      final_layernorm: true,
      distillation_token: modelType === 'deit',
      distillation_classifier: arch.head === 'teacher',
      mean: new Array(Number(c.num_channels)).fill(0.5),
      std: new Array(Number(c.num_channels)).fill(0.5),
    },
    source,
  );
  return { vit, architecture, head: arch.head };
}

/** A config.json's class names: vitrine's `labels`, else transformers' id2label in index order. */
export function labelsOf(raw: Record<string, unknown>): string[] {
  if (Array.isArray(raw.labels)) return raw.labels.map(String);
  const id2label = raw.id2label;
  if (typeof id2label !== 'object' || id2label === null) return [];
  const entries = Object.entries(id2label as Record<string, unknown>).map(([k, v]) => [Number(k), String(v)] as const);
  return entries.sort((a, b) => a[0] - b[0]).map(([, v]) => v);
}

/** One rule of the name mapping: transformers' name (without `vit.`/`deit.`) -> ours. */
type Rule = readonly [RegExp, (m: RegExpExecArray) => string];

/** transformers' names -> ours, in one table. Query/key/value become per-head tensors (split below). */
const RULES: readonly Rule[] = [
  [/^embeddings\.(cls_token|distillation_token|position_embeddings)$/, (m) => `embedding.${m[1]}`],
  [/^embeddings\.patch_embeddings\.projection\.(weight|bias)$/, (m) => `embedding.patch_embeddings.projection.${m[1]}`],
  [
    /^encoder\.layer\.(\d+)\.attention\.attention\.(query|key|value)\.(weight|bias)$/,
    (m) => `encoder.blocks.${m[1]}.attention.heads.*.${m[2]}.${m[3]}`,
  ],
  [/^encoder\.layer\.(\d+)\.attention\.output\.dense\.(weight|bias)$/, (m) => `encoder.blocks.${m[1]}.attention.output_projection.${m[2]}`],
  [/^encoder\.layer\.(\d+)\.layernorm_before\.(weight|bias)$/, (m) => `encoder.blocks.${m[1]}.layernorm_1.${m[2]}`],
  [/^encoder\.layer\.(\d+)\.layernorm_after\.(weight|bias)$/, (m) => `encoder.blocks.${m[1]}.layernorm_2.${m[2]}`],
  [/^encoder\.layer\.(\d+)\.intermediate\.dense\.(weight|bias)$/, (m) => `encoder.blocks.${m[1]}.mlp.dense_1.${m[2]}`],
  [/^encoder\.layer\.(\d+)\.output\.dense\.(weight|bias)$/, (m) => `encoder.blocks.${m[1]}.mlp.dense_2.${m[2]}`],
  [/^layernorm\.(weight|bias)$/, (m) => `layernorm.${m[1]}`],
];

/** The heads, named at the top level of the checkpoint (not under `vit.`/`deit.`). */
const HEAD_RULES: readonly Rule[] = [
  [/^(?:classifier|cls_classifier)\.(weight|bias)$/, (m) => `classifier.${m[1]}`],
  [/^distillation_classifier\.(weight|bias)$/, (m) => `distillation_classifier.${m[1]}`],
];

const mapped = (rules: readonly Rule[], name: string): string | null => {
  for (const [re, to] of rules) {
    const m = re.exec(name);
    if (m) return to(m);
  }
  return null;
};

/** What a checkpoint may hold that classification does not use. */
const PASSED_OVER = /^(?:(?:vit|deit)\.)?pooler\.dense\.(weight|bias)$/;

/** transformers' tensors -> ours; throws naming every tensor the mapping does not know. */
export function fromHfNames(
  tensors: ReadonlyMap<string, NamedTensor>,
  c: ViTConfig,
  source: string,
  notes: string[] = [],
): Map<string, NamedTensor> {
  const out = new Map<string, NamedTensor>();
  const unknown: string[] = [];
  const hs = headSize(c);
  for (const [name, t] of tensors) {
    if (PASSED_OVER.test(name)) {
      if (!notes.some((n) => n.startsWith('passed over the pooler')))
        notes.push("passed over the pooler (ViTModel's, not used for classification)");
      continue;
    }
    const backbone = /^(?:vit|deit)\.(.*)$/.exec(name)?.[1] ?? name;
    const ours = mapped(RULES, backbone) ?? (backbone === name ? mapped(HEAD_RULES, name) : null);
    if (ours === null) {
      unknown.push(name);
      continue;
    }
    if (!ours.includes('.heads.*.')) {
      out.set(ours, t);
      continue;
    }
    // one [hidden, hidden] projection (or its [hidden] bias) -> a [head_size, hidden] slice per head
    const cols = t.shape.length === 2 ? t.shape[1] : 1;
    if (t.shape[0] !== c.hidden_size)
      throw new Error(`${source}: tensor '${name}' has shape [${t.shape.join(', ')}], expected ${c.hidden_size} rows (hidden_size)`);
    for (let h = 0; h < c.num_attention_heads; h++) {
      out.set(ours.replace('*', String(h)), {
        shape: t.shape.length === 2 ? [hs, cols] : [hs],
        data: t.data.slice(h * hs * cols, (h + 1) * hs * cols),
      });
    }
  }
  if (unknown.length > 0)
    throw new Error(
      `${source}: tensors a ViT/DeiT checkpoint does not have: ` +
        `${unknown.slice(0, 8).join(', ')}${unknown.length > 8 ? ` (and ${unknown.length - 8} more)` : ''}`,
    );
  return out;
}

/** Reads model.safetensors, or every shard model.safetensors.index.json names. */
export async function readHfWeights(dir: string): Promise<Map<string, NamedTensor>> {
  const index = path.join(dir, SAFETENSORS_INDEX);
  if (!existsSync(index)) {
    const file = path.join(dir, SAFETENSORS_FILE);
    if (!existsSync(file)) {
      const torchFile = ['pytorch_model.bin', 'model.pt', 'tf_model.h5', 'flax_model.msgpack'].find((f) => existsSync(path.join(dir, f)));
      throw new Error(
        `${dir}: no ${SAFETENSORS_FILE} or ${SAFETENSORS_INDEX}` +
          (torchFile ? ` (it has ${torchFile}: vitrine reads safetensors; save the model again with safe_serialization=True)` : ''),
      );
    }
    return (await readSafetensors(file)).tensors;
  }
  const map = (await readJsonObject(index)).weight_map as Record<string, unknown> | undefined;
  if (
    typeof map !== 'object' ||
    map === null ||
    Object.values(map).some((v) => typeof v !== 'string' || v.includes('/') || v.includes('\\'))
  ) {
    throw new Error(`${index}: 'weight_map' must be an object from tensor names to shard files in the folder`);
  }
  const out = new Map<string, NamedTensor>();
  for (const shard of new Set(Object.values(map) as string[])) {
    const file = path.join(dir, shard);
    if (!existsSync(file)) throw new Error(`${index}: shard ${shard} is missing`);
    const { tensors } = await readSafetensors(file);
    for (const [name, t] of tensors) {
      if (map[name] !== shard) throw new Error(`${file}: tensor '${name}' is not in ${SAFETENSORS_INDEX}'s weight_map for this shard`);
      out.set(name, t);
    }
  }
  const missing = Object.keys(map).filter((k) => !out.has(k));
  if (missing.length > 0) throw new Error(`${index}: tensors named in weight_map but in no shard: ${missing.slice(0, 5).join(', ')}`);
  return out;
}

/** A JSON object from a file; one line naming the file when it is missing, malformed or not an object. */
export async function readJsonObject(file: string): Promise<Record<string, unknown>> {
  let raw: unknown;
  try {
    raw = JSON.parse(await fs.readFile(file, 'utf8'));
  } catch (err) {
    throw new Error(`${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : (err as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`${file}: expected a JSON object`);
  return raw as Record<string, unknown>;
}

/** A checkpoint folder as transformers saves it -> our config and tensors. */
export async function readHfCheckpoint(dir: string): Promise<HfCheckpoint> {
  const configFile = path.join(dir, CONFIG_FILE);
  const raw = await readJsonObject(configFile);
  const { vit: base, architecture, head } = hfViTConfig(raw, configFile);
  const labels = head === 'none' ? [] : labelsOf(raw);
  if (head !== 'none' && labels.length === 0) throw new Error(`${configFile}: a ${architecture} needs id2label (its classes)`);
  const processorFile = path.join(dir, PREPROCESSOR_FILE);
  const read = existsSync(processorFile) ? await readJsonObject(processorFile) : undefined;
  const notes: string[] = [];
  // DeiT's processor resizes (to 256) and center-crops (to 224): the model's input is the crop. The
  // service cover-crops to the input size instead, keeping the margin the processor cuts (said).
  const crop = read?.do_center_crop === true && read.crop_size !== undefined ? read.crop_size : undefined;
  const processor = read && crop !== undefined ? { ...read, size: crop } : read;
  let preprocessing: ModelConfig | null = null;
  let vit = base;
  if (processor && labels.length > 0) {
    preprocessing = parseModelConfig(raw, configFile, processor, processorFile);
    if (crop !== undefined) {
      preprocessing = { ...preprocessing, fit: 'cover' };
      notes.push(
        `the processor resizes to ${JSON.stringify(read!.size)} and ` +
          `center-crops to ${JSON.stringify(crop)}: served cover-cropped to the ` +
          `${preprocessing.image_size.join('x')} input, without cutting the ` +
          `margin beyond it`,
      );
    }
    const [h, w] = preprocessing.image_size;
    if (h !== w || h !== vit.image_size)
      throw new Error(`${processorFile}: the processor's size ${h}x${w} is not the model's image_size ${vit.image_size}`);
    vit = { ...vit, mean: [...preprocessing.mean], std: [...preprocessing.std] };
  } else if (processor) {
    const mean = processor.image_mean as number[] | undefined;
    const std = processor.image_std as number[] | undefined;
    if (Array.isArray(mean) && Array.isArray(std)) vit = parseViTConfig({ ...vit, mean, std }, processorFile);
  }
  const weights = fromHfNames(await readHfWeights(dir), vit, dir, notes);
  return { vit, labels, architecture, weights, preprocessing, notes };
}

// ---- position embeddings at another image size ----

/** PyTorch's bicubic kernel (A = -0.75), as upsample_bicubic2d. */
function cubicWeights(t: number): [number, number, number, number] {
  const A = -0.75;
  const near = (x: number) => ((A + 2) * x - (A + 3)) * x * x + 1; // |x| <= 1
  const far = (x: number) => ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; // 1 < |x| < 2
  return [far(t + 1), near(t), near(1 - t), far(2 - t)];
}

/** Resizes a [rows, cols, channels] grid as torch.nn.functional.interpolate(mode='bicubic',
 *  align_corners=False) does: source = (dest + 0.5) * in / out - 0.5, neighbours clamped at the edges. */
export function bicubicResize(
  grid: Float32Array,
  rows: number,
  cols: number,
  channels: number,
  outRows: number,
  outCols: number,
): Float32Array {
  const out = new Float32Array(outRows * outCols * channels);
  const taps = (outSize: number, inSize: number) =>
    Array.from({ length: outSize }, (_, o) => {
      const src = ((o + 0.5) * inSize) / outSize - 0.5;
      const i0 = Math.floor(src);
      const w = cubicWeights(src - i0);
      return [-1, 0, 1, 2].map((d, k) => [Math.min(inSize - 1, Math.max(0, i0 + d)), w[k]] as const);
    });
  const ry = taps(outRows, rows);
  const rx = taps(outCols, cols);
  for (let y = 0; y < outRows; y++) {
    for (let x = 0; x < outCols; x++) {
      for (let ch = 0; ch < channels; ch++) {
        let v = 0;
        for (const [iy, wy] of ry[y]) {
          let row = 0;
          for (const [ix, wx] of rx[x]) row += wx * grid[(iy * cols + ix) * channels + ch];
          v += wy * row;
        }
        out[(y * outCols + x) * channels + ch] = v;
      }
    }
  }
  return out;
}

/** Position embeddings [1, prefix + g*g, hidden] for the config's grid: the prefix tokens' rows kept,
 *  the patch grid resized bicubically (transformers' interpolate_pos_encoding) when its size differs. */
export function fitPositions(t: NamedTensor, c: ViTConfig, source: string): { tensor: NamedTensor; from: number; to: number } | null {
  const prefix = prefixTokens(c);
  const d = c.hidden_size;
  const have = t.shape[1] - prefix;
  const want = numPatches(c);
  if (t.shape.length !== 3 || t.shape[0] !== 1 || t.shape[2] !== d)
    throw new Error(`${source}: position embeddings of shape [${t.shape.join(', ')}], expected [1, tokens, ${d}]`);
  if (have === want) return null;
  const g = Math.round(Math.sqrt(have));
  if (g * g !== have) throw new Error(`${source}: ${have} patch positions are not a square grid`);
  const w = Math.sqrt(want);
  const data = new Float32Array((prefix + want) * d);
  data.set(t.data.subarray(0, prefix * d));
  data.set(bicubicResize(t.data.subarray(prefix * d), g, g, d, w, w), prefix * d);
  return { tensor: { shape: [1, prefix + want, d], data }, from: g, to: w };
}
