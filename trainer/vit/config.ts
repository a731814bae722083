// The ViT's configuration as a TypeBox schema: the type, the defaults (the seed model's) and the
// one-line errors all come from it (runtime/schema.ts). Keys follow the seed's PyTorch config dict, so
// its config loads here unchanged.

import { type Static, Type } from '@sinclair/typebox';
import { defaultsOf, firstProblem, oneOf } from '../../runtime/schema.js';

const posInt = (def: number) => Type.Integer({ minimum: 1, default: def });
const probability = (def: number) => Type.Number({ minimum: 0, exclusiveMaximum: 1, default: def });
const positive = (def: number) => Type.Number({ exclusiveMinimum: 0, default: def });
const bool = (def: boolean) => Type.Boolean({ default: def });

export const ViTConfigSchema = Type.Object(
  {
    /** Input height and width in pixels (square images, as the seed). */
    image_size: posInt(32),
    /** Side of a square patch; the image side must be a multiple of it. */
    patch_size: posInt(4),
    /** Input channels: 3 for RGB. */
    num_channels: posInt(3),
    /** Width of every token. */
    hidden_size: posInt(48),
    /** Transformer blocks. */
    num_hidden_layers: posInt(4),
    /** Attention heads per block; must divide hidden_size. */
    num_attention_heads: posInt(4),
    /** Width of the MLP's hidden layer. */
    intermediate_size: posInt(192),
    /** Dropout after the embeddings, the attention output projection and the MLP. */
    hidden_dropout_prob: probability(0),
    /** Dropout on the attention probabilities. */
    attention_probs_dropout_prob: probability(0),
    /** Stochastic depth (Huang et al. 2016): in training, each image skips a block's attention or MLP
     *  branch with a probability rising linearly from 0 at the first block to this at the last, as timm's
     *  drop path; the kept branches are scaled by 1 / (1 - p). Nothing changes at inference. */
    drop_path_rate: probability(0),
    /** Std of the normal initialization of weights and embeddings. */
    initializer_range: positive(0.02),
    /** Classes the classifier scores. */
    num_classes: posInt(10),
    /** Whether the query, key and value projections have biases. */
    qkv_bias: bool(true),
    /** Epsilon of every layer norm (PyTorch's default; transformers' ViT and DeiT use 1e-12). */
    layer_norm_eps: positive(1e-5),
    /** The MLP's activation: 'gelu_new', GELU's tanh approximation (the seed's NewGELUActivation), or
     *  'gelu', the exact form 0.5 x (1 + erf(x / sqrt 2)) (transformers' ViT and DeiT, torch's nn.GELU). */
    hidden_act: oneOf(['gelu_new', 'gelu'] as const, { default: 'gelu_new' }),
    /** A LayerNorm over the tokens after the last block, before the classifier (transformers' ViT and
     *  DeiT `layernorm`); the seed has none. */
    final_layernorm: bool(false),
    /** DeiT's distillation token (Touvron et al. 2021): a second learned token after [CLS], with its own
     *  position embedding; the maps leave it out as they leave out [CLS]. */
    distillation_token: bool(false),
    /** With the distillation token: a second classifier on its output, the logits being the mean of
     *  the two heads' (DeiTForImageClassificationWithTeacher). Without it only [CLS] is classified. */
    distillation_classifier: bool(false),
    /** Per-channel mean subtracted from pixels scaled to [0, 1]. */
    mean: Type.Array(Type.Number(), { minItems: 1, default: [0.5, 0.5, 0.5] }),
    /** Per-channel std that pixels are divided by after the mean. */
    std: Type.Array(Type.Number({ exclusiveMinimum: 0 }), { minItems: 1, default: [0.5, 0.5, 0.5] }),
    /** Save q/k/v as one `attention.qkv_projection` (the seed's fast attention) instead of per-head tensors. */
    use_faster_attention: bool(false),
    /** 0: the seed's patch embedding. n > 0: a convolutional tokenizer instead (Hassani et al. 2021,
     *  "Escaping the Big Data Paradigm with Compact Transformers"): n stages of a k x k convolution (no
     *  bias), ReLU and a 3 x 3 max-pool with stride 2, the last stage giving hidden_size channels; each
     *  pixel of the final map is a token. patch_size must then be 2^n, the side of the image square
     *  each token stands for, so attention maps line up with the image as the patch embedding's do. */
    tokenizer_layers: Type.Integer({ minimum: 0, maximum: 4, default: 0 }),
    /** Channels of the tokenizer's stages before the last. */
    tokenizer_channels: posInt(64),
    /** Side of the tokenizer's convolution kernels (odd: padded to keep the size). */
    tokenizer_kernel: Type.Union(
      [1, 3, 5, 7].map((k) => Type.Literal(k)),
      { default: 3 },
    ),
    /** Shifted Patch Tokenization (Lee, Lee & Song 2021, "Vision Transformer for Small-Size Datasets"):
     *  the image and four copies shifted diagonally by half a patch are cut into patches together, and
     *  each patch's features pass a LayerNorm before the projection. Patch embedding only. */
    shifted_patch_tokenization: bool(false),
    /** Locality Self-Attention (same paper): each head's attention scale is learned (from
     *  1/sqrt(head size)) and a token does not attend to itself (the diagonal is masked). */
    locality_self_attention: bool(false),
  },
  { additionalProperties: false },
);

export type ViTConfig = Static<typeof ViTConfigSchema>;

export const SEED_CONFIG: Readonly<ViTConfig> = Object.freeze(defaultsOf(ViTConfigSchema) as ViTConfig);

/** Keys of the seed's PyTorch config that do not change the computation and are accepted as given. */
const IGNORED_KEYS = new Set(['num_patches']);

/** Validates a parsed JSON object, filling defaults; throws one line naming the first problem. */
export function parseViTConfig(raw: unknown, source = 'config'): ViTConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`${source}: expected a JSON object`);
  const given = Object.fromEntries(Object.entries(raw).filter(([k]) => !IGNORED_KEYS.has(k)));
  const known = ViTConfigSchema.properties;
  const unknown = Object.keys(given).find((k) => !(k in known));
  if (unknown !== undefined) throw new Error(`${source}: unknown key '${unknown}' (known: ${Object.keys(known).join(', ')})`);
  const config = { ...(defaultsOf(ViTConfigSchema) as ViTConfig), ...given };
  const problem = firstProblem(ViTConfigSchema, config);
  if (problem) throw new Error(`${source}: '${problem.path}' must be ${problem.expects}, got ${JSON.stringify(problem.got)}`);
  if (config.image_size % config.patch_size !== 0)
    throw new Error(`${source}: image_size ${config.image_size} is not a multiple of patch_size ${config.patch_size}`);
  if (config.tokenizer_layers > 0 && config.patch_size !== 2 ** config.tokenizer_layers) {
    throw new Error(
      `${source}: a tokenizer of ${config.tokenizer_layers} stages halves ` +
        `the image ${config.tokenizer_layers} times, so each token stands for ` +
        `a ${2 ** config.tokenizer_layers}-pixel square: patch_size must be ` +
        `${2 ** config.tokenizer_layers}, got ${config.patch_size}`,
    );
  }
  if (config.shifted_patch_tokenization && config.tokenizer_layers > 0)
    throw new Error(
      `${source}: shifted_patch_tokenization cuts patches; it does not go ` +
        `with the convolutional tokenizer (tokenizer_layers ` +
        `${config.tokenizer_layers})`,
    );
  if (config.shifted_patch_tokenization && config.patch_size % 2 !== 0)
    throw new Error(`${source}: shifted_patch_tokenization shifts by half a patch: patch_size must be even, got ${config.patch_size}`);
  if (config.distillation_classifier && !config.distillation_token)
    throw new Error(`${source}: distillation_classifier classifies the distillation token: it needs distillation_token`);
  if (config.hidden_size % config.num_attention_heads !== 0)
    throw new Error(`${source}: hidden_size ${config.hidden_size} is not a multiple of num_attention_heads ${config.num_attention_heads}`);
  for (const key of ['mean', 'std'] as const) {
    if (config[key].length !== config.num_channels)
      throw new Error(`${source}: '${key}' has ${config[key].length} values for ${config.num_channels} channels`);
  }
  return config;
}

export const numPatches = (c: ViTConfig) => (c.image_size / c.patch_size) ** 2;
/** Tokens before the patches: [CLS], then DeiT's distillation token. */
export const prefixTokens = (c: ViTConfig) => (c.distillation_token ? 2 : 1);
export const numTokens = (c: ViTConfig) => numPatches(c) + prefixTokens(c);
export const headSize = (c: ViTConfig) => c.hidden_size / c.num_attention_heads;
