// The ViT's configuration: a typed plain object with defaults (the seed model's), validated at load.
// Keys follow the seed's PyTorch config dict, so its config loads here unchanged.

export interface ViTConfig {
  /** Input height and width in pixels (square images, as the seed). */
  image_size: number;
  /** Side of a square patch; the image side must be a multiple of it. */
  patch_size: number;
  /** Input channels: 3 for RGB. */
  num_channels: number;
  /** Width of every token. */
  hidden_size: number;
  /** Transformer blocks. */
  num_hidden_layers: number;
  /** Attention heads per block; must divide hidden_size. */
  num_attention_heads: number;
  /** Width of the MLP's hidden layer. */
  intermediate_size: number;
  /** Dropout after the embeddings, the attention output projection and the MLP. */
  hidden_dropout_prob: number;
  /** Dropout on the attention probabilities. */
  attention_probs_dropout_prob: number;
  /** Stochastic depth (Huang et al. 2016): in training, each image skips a block's attention or MLP
   *  branch with a probability rising linearly from 0 at the first block to this at the last, as timm's
   *  drop path; the kept branches are scaled by 1 / (1 - p). Nothing changes at inference. */
  drop_path_rate: number;
  /** Std of the normal initialization of weights and embeddings. */
  initializer_range: number;
  /** Classes the classifier scores. */
  num_classes: number;
  /** Whether the query, key and value projections have biases. */
  qkv_bias: boolean;
  /** Epsilon of every layer norm (PyTorch's default). */
  layer_norm_eps: number;
  /** Per-channel mean subtracted from pixels scaled to [0, 1]. */
  mean: number[];
  /** Per-channel std that pixels are divided by after the mean. */
  std: number[];
  /** Save q/k/v as one `attention.qkv_projection` (the seed's fast attention) instead of per-head tensors. */
  use_faster_attention: boolean;
  /** 0: the seed's patch embedding. n > 0: a convolutional tokenizer instead (Hassani et al. 2021,
   *  "Escaping the Big Data Paradigm with Compact Transformers"): n stages of a k x k convolution (no
   *  bias), ReLU and a 3 x 3 max-pool with stride 2, the last stage giving hidden_size channels; each
   *  pixel of the final map is a token. patch_size must then be 2^n, the side of the image square
   *  each token stands for, so attention maps line up with the image as the patch embedding's do. */
  tokenizer_layers: number;
  /** Channels of the tokenizer's stages before the last. */
  tokenizer_channels: number;
  /** Side of the tokenizer's convolution kernels (odd: padded to keep the size). */
  tokenizer_kernel: number;
  /** Shifted Patch Tokenization (Lee, Lee & Song 2021, "Vision Transformer for Small-Size Datasets"):
   *  the image and four copies shifted diagonally by half a patch are cut into patches together, and
   *  each patch's features pass a LayerNorm before the projection. Patch embedding only. */
  shifted_patch_tokenization: boolean;
  /** Locality Self-Attention (same paper): each head's attention scale is learned (from
   *  1/sqrt(head size)) and a token does not attend to itself (the diagonal is masked). */
  locality_self_attention: boolean;
}

export const SEED_CONFIG: Readonly<ViTConfig> = Object.freeze({
  image_size: 32,
  patch_size: 4,
  num_channels: 3,
  hidden_size: 48,
  num_hidden_layers: 4,
  num_attention_heads: 4,
  intermediate_size: 192,
  hidden_dropout_prob: 0,
  attention_probs_dropout_prob: 0,
  drop_path_rate: 0,
  initializer_range: 0.02,
  num_classes: 10,
  qkv_bias: true,
  layer_norm_eps: 1e-5,
  mean: [0.5, 0.5, 0.5],
  std: [0.5, 0.5, 0.5],
  use_faster_attention: false,
  tokenizer_layers: 0,
  tokenizer_channels: 64,
  tokenizer_kernel: 3,
  shifted_patch_tokenization: false,
  locality_self_attention: false,
});

type Check = (v: unknown) => string | null;
const positiveInt: Check = (v) => (Number.isInteger(v) && (v as number) > 0 ? null : 'a positive integer');
const probability: Check = (v) => (typeof v === 'number' && v >= 0 && v < 1 ? null : 'a number in [0, 1)');
const positive: Check = (v) => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? null : 'a positive number');
const boolean: Check = (v) => (typeof v === 'boolean' ? null : 'true or false');
const numbers =
  (min: number): Check =>
  (v) =>
    Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'number' && Number.isFinite(x) && x > min) ? null : `an array of numbers above ${min}`;

const CHECKS: Record<keyof ViTConfig, Check> = {
  image_size: positiveInt,
  patch_size: positiveInt,
  num_channels: positiveInt,
  hidden_size: positiveInt,
  num_hidden_layers: positiveInt,
  num_attention_heads: positiveInt,
  intermediate_size: positiveInt,
  hidden_dropout_prob: probability,
  attention_probs_dropout_prob: probability,
  drop_path_rate: probability,
  initializer_range: positive,
  num_classes: positiveInt,
  qkv_bias: boolean,
  layer_norm_eps: positive,
  mean: numbers(-Infinity),
  std: numbers(0),
  use_faster_attention: boolean,
  tokenizer_layers: (v) => (Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 4 ? null : 'an integer in [0, 4]'),
  tokenizer_channels: positiveInt,
  tokenizer_kernel: (v) => (Number.isInteger(v) && (v as number) % 2 === 1 && (v as number) <= 7 ? null : 'an odd integer from 1 to 7'),
  shifted_patch_tokenization: boolean,
  locality_self_attention: boolean,
};

/** Keys of the seed's PyTorch config that do not change the computation and are accepted as given. */
const IGNORED_KEYS = new Set(['num_patches']);

/** Validates a parsed JSON object, filling defaults; throws one line naming the first problem. */
export function parseViTConfig(raw: unknown, source = 'config'): ViTConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`${source}: expected a JSON object`);
  const obj = raw as Record<string, unknown>;
  for (const key of Object.keys(obj)) {
    if (!(key in CHECKS) && !IGNORED_KEYS.has(key)) throw new Error(`${source}: unknown key '${key}' (known: ${Object.keys(CHECKS).join(', ')})`);
  }
  const config = { ...SEED_CONFIG, mean: [...SEED_CONFIG.mean], std: [...SEED_CONFIG.std] } as ViTConfig;
  for (const key of Object.keys(CHECKS) as (keyof ViTConfig)[]) {
    if (!(key in obj)) continue;
    const problem = CHECKS[key](obj[key]);
    if (problem) throw new Error(`${source}: '${key}' must be ${problem}, got ${JSON.stringify(obj[key])}`);
    (config as unknown as Record<string, unknown>)[key] = obj[key];
  }
  if (config.image_size % config.patch_size !== 0) throw new Error(`${source}: image_size ${config.image_size} is not a multiple of patch_size ${config.patch_size}`);
  if (config.tokenizer_layers > 0 && config.patch_size !== 2 ** config.tokenizer_layers) {
    throw new Error(`${source}: a tokenizer of ${config.tokenizer_layers} stages halves the image ${config.tokenizer_layers} times, so each token stands for a ${2 ** config.tokenizer_layers}-pixel square: patch_size must be ${2 ** config.tokenizer_layers}, got ${config.patch_size}`);
  }
  if (config.shifted_patch_tokenization && config.tokenizer_layers > 0) throw new Error(`${source}: shifted_patch_tokenization cuts patches; it does not go with the convolutional tokenizer (tokenizer_layers ${config.tokenizer_layers})`);
  if (config.shifted_patch_tokenization && config.patch_size % 2 !== 0) throw new Error(`${source}: shifted_patch_tokenization shifts by half a patch: patch_size must be even, got ${config.patch_size}`);
  if (config.hidden_size % config.num_attention_heads !== 0) throw new Error(`${source}: hidden_size ${config.hidden_size} is not a multiple of num_attention_heads ${config.num_attention_heads}`);
  for (const key of ['mean', 'std'] as const) {
    if (config[key].length !== config.num_channels) throw new Error(`${source}: '${key}' has ${config[key].length} values for ${config.num_channels} channels`);
  }
  return config;
}

export const numPatches = (c: ViTConfig) => (c.image_size / c.patch_size) ** 2;
export const numTokens = (c: ViTConfig) => numPatches(c) + 1;
export const headSize = (c: ViTConfig) => c.hidden_size / c.num_attention_heads;
