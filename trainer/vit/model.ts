// The Vision Transformer, as a graph builder.
//
// Sources: Dosovitskiy et al. 2020, "An Image is Worth 16x16 Words" (arXiv:2010.11929), and the seed's
// PyTorch code from "Implementing Vision Transformer (ViT) from Scratch": patch embedding (a conv with
// kernel = stride = patch, here written as patchify + matmul), a learnable [CLS] token, learnable
// position embeddings, pre-LayerNorm blocks (multi-head self-attention, then an MLP with tanh-GELU,
// each with a residual) and a linear classifier on the [CLS] output, with no final LayerNorm.
// Config options make it transformers' ViT and DeiT as well (hf.ts maps their weights): exact GELU,
// a final LayerNorm, and DeiT's distillation token with a second classifier.
//
// Parameter names follow the seed's module tree so that its state dicts load here (see weights.ts).
// The per-head query/key/value weights are concatenated in the graph into one [3*hidden, hidden]
// projection: one matmul instead of 3*heads, and gradients flow back to each head's tensors.

import type { Tensor } from '../autograd/graph.js';
import {
  add,
  concat,
  constant,
  conv2d,
  input,
  expandAs,
  gelu,
  geluExact,
  matmul,
  maxPool,
  mul,
  pad,
  relu,
  reshape,
  slice,
  softmax,
  squeeze,
  transpose,
  transposeLast2,
} from '../autograd/ops.js';
import { LayerNorm, Linear, truncNormal, normal, zeros } from '../nn/layers.js';
import { Container, type GraphContext, Module, type Parameter } from '../nn/module.js';
import { Rng } from '../nn/random.js';
import { type ViTConfig, headSize, numPatches, numTokens, prefixTokens } from './config.js';

export const BATCH = 'batch'; // the symbolic batch dimension of every graph
/** The model's input, in every graph made of it (training step, evaluation, export): normalized pixels. */
export const INPUT_NAME = 'pixel_values';

/** The pixel input of a graph: (B, channels, size, size). */
export const pixelInput = (c: ViTConfig): Tensor => input(INPUT_NAME, [BATCH, c.num_channels, c.image_size, c.image_size]);

/** The dims of n images fed to it. */
export const pixelDims = (c: ViTConfig, n: number): number[] => [n, c.num_channels, c.image_size, c.image_size];

/** x (B, C, H, W) moved by (dy, dx) pixels, zeros coming in: out[y][x] = in[y - dy][x - dx]. */
function shift(x: Tensor, dy: number, dx: number): Tensor {
  const [, , h, w] = x.shape as [unknown, unknown, number, number];
  const move = (t: Tensor, axis: number, by: number, size: number) =>
    by > 0 ? slice(pad(t, axis, by, 0), axis, 0, size) : slice(pad(t, axis, 0, -by), axis, -by, size - by);
  return move(move(x, 2, dy, h), 3, dx, w);
}

class PatchEmbeddings extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter;
  readonly norm: LayerNorm | null;

  constructor(
    readonly c: ViTConfig,
    rng: Rng,
  ) {
    super();
    // The seed's conv: a module named `projection` holding weights [hidden, channels, patch, patch]
    // (with shifted patches, 5 x channels: the image, then its four shifted copies).
    const ch = c.shifted_patch_tokenization ? 5 * c.num_channels : c.num_channels;
    this.norm = c.shifted_patch_tokenization
      ? this.addChild('layernorm', new LayerNorm(ch * c.patch_size * c.patch_size, c.layer_norm_eps))
      : null;
    const projection = this.addChild('projection', new Container());
    this.weight = projection.parameter('weight', [c.hidden_size, ch, c.patch_size, c.patch_size], normal(rng, c.initializer_range));
    this.bias = projection.parameter('bias', [c.hidden_size], zeros);
  }

  forward(ctx: GraphContext, pixels: Tensor): Tensor {
    const { patch_size: p, image_size: size, hidden_size: d } = this.c;
    const ch = this.weight.shape[1];
    const g = size / p;
    let x = pixels;
    if (this.c.shifted_patch_tokenization) {
      const s = p / 2; // diagonally, by half a patch: left-up, right-up, left-down, right-down
      x = concat([x, shift(x, -s, -s), shift(x, -s, s), shift(x, s, -s), shift(x, s, s)], 1); // (B, 5C, H, W)
    }
    x = reshape(x, [0, ch, g, p, g, p]); // (B, C, rows, p, cols, p)
    x = transpose(x, [0, 2, 4, 1, 3, 5]); // (B, rows, cols, C, p, p)
    x = reshape(x, [0, g * g, ch * p * p]); // (B, patches, C*p*p): row-major patches, as conv + flatten
    if (this.norm) x = this.norm.forward(ctx, x);
    const w = reshape(ctx.p(this.weight), [d, ch * p * p]); // (hidden, C*p*p)
    return add(matmul(x, transposeLast2(w)), ctx.p(this.bias)); // (B, patches, hidden)
  }
}

/** The convolutional tokenizer (config tokenizer_layers > 0): stages of conv (no bias), ReLU and a
 *  3x3 max-pool with stride 2, as CCT's (the ReLU applied after the pool, the same function); the last
 *  map's pixels, row by row, are the tokens. */
class ConvTokenizer extends Module {
  readonly weights: Parameter[];

  constructor(
    readonly c: ViTConfig,
    rng: Rng,
  ) {
    super();
    const k = c.tokenizer_kernel;
    const layers = this.addChild('conv_layers', new Container());
    this.weights = Array.from({ length: c.tokenizer_layers }, (_, i) => {
      const cin = i === 0 ? c.num_channels : c.tokenizer_channels;
      const cout = i === c.tokenizer_layers - 1 ? c.hidden_size : c.tokenizer_channels;
      // Kaiming normal (fan in, ReLU gain), as CCT initializes its tokenizer.
      return layers.child(String(i), new Container()).parameter('weight', [cout, cin, k, k], normal(rng, Math.sqrt(2 / (cin * k * k))));
    });
  }

  forward(ctx: GraphContext, pixels: Tensor): Tensor {
    let x = pixels; // (B, C, size, size)
    // ReLU after the pooling, not before: max(relu(x)) = relu(max(x)) exactly, and the gradients agree
    // (a window whose maximum is not positive passes none either way), on a quarter of the values.
    for (const w of this.weights) x = relu(maxPool(conv2d(x, ctx.p(w), (this.c.tokenizer_kernel - 1) / 2), 3, 2, 1));
    const g = this.c.image_size / this.c.patch_size;
    return transpose(reshape(x, [0, this.c.hidden_size, g * g]), [0, 2, 1]); // (B, tokens, hidden)
  }
}

class Embeddings extends Module {
  readonly cls: Parameter;
  readonly distillation: Parameter | null;
  readonly positions: Parameter;
  readonly patches: PatchEmbeddings | ConvTokenizer;

  constructor(
    readonly c: ViTConfig,
    rng: Rng,
  ) {
    super();
    this.patches =
      c.tokenizer_layers > 0
        ? this.addChild('tokenizer', new ConvTokenizer(c, rng))
        : this.addChild('patch_embeddings', new PatchEmbeddings(c, rng));
    this.cls = this.addParam('cls_token', [1, 1, c.hidden_size], truncNormal(rng, c.initializer_range));
    this.distillation = c.distillation_token
      ? this.addParam('distillation_token', [1, 1, c.hidden_size], truncNormal(rng, c.initializer_range))
      : null;
    this.positions = this.addParam('position_embeddings', [1, numTokens(c), c.hidden_size], truncNormal(rng, c.initializer_range));
  }

  forward(ctx: GraphContext, pixels: Tensor): Tensor {
    const patches = this.patches.forward(ctx, pixels); // (B, patches, hidden)
    const one = slice(patches, 1, 0, 1); // (B, 1, hidden): the batch's shape for the prefix tokens
    const prefix = [this.cls, this.distillation].filter((p) => p !== null).map((p) => expandAs(ctx.p(p), one));
    const tokens = add(concat([...prefix, patches], 1), ctx.p(this.positions)); // (B, tokens, hidden)
    return ctx.dropout(tokens, this.c.hidden_dropout_prob);
  }
}

class AttentionHead extends Module {
  readonly query: Linear;
  readonly key: Linear;
  readonly value: Linear;

  constructor(c: ViTConfig, rng: Rng) {
    super();
    const hs = headSize(c);
    this.query = this.addChild('query', new Linear(c.hidden_size, hs, rng, c.initializer_range, c.qkv_bias));
    this.key = this.addChild('key', new Linear(c.hidden_size, hs, rng, c.initializer_range, c.qkv_bias));
    this.value = this.addChild('value', new Linear(c.hidden_size, hs, rng, c.initializer_range, c.qkv_bias));
  }
}

class MultiHeadAttention extends Module {
  readonly heads: AttentionHead[];
  readonly outputProjection: Linear;
  /** Locality self-attention's learned scale per head. */
  readonly scale: Parameter | null;

  constructor(
    readonly c: ViTConfig,
    rng: Rng,
  ) {
    super();
    this.heads = Array.from({ length: c.num_attention_heads }, () => new AttentionHead(c, rng));
    this.addChild('heads', Container.list(this.heads));
    this.outputProjection = this.addChild('output_projection', new Linear(c.hidden_size, c.hidden_size, rng, c.initializer_range));
    this.scale = c.locality_self_attention
      ? this.addParam('scale', [c.num_attention_heads], (n) => new Float32Array(n).fill(1 / Math.sqrt(headSize(c))))
      : null;
  }

  /** Returns the output (B, tokens, hidden) and the attention probabilities (B, heads, tokens, tokens). */
  forward(ctx: GraphContext, x: Tensor): { out: Tensor; probs: Tensor } {
    const { hidden_size: d, num_attention_heads: h } = this.c;
    const hs = headSize(this.c);
    const t = numTokens(this.c);
    const parts = (['query', 'key', 'value'] as const).flatMap((k) => this.heads.map((head) => head[k]));
    const w = concat(
      parts.map((l) => ctx.p(l.weight)),
      0,
    ); // (3*hidden, hidden): q of every head, then k, then v
    let qkv = matmul(x, transposeLast2(w)); // (B, tokens, 3*hidden)
    if (this.c.qkv_bias)
      qkv = add(
        qkv,
        concat(
          parts.map((l) => ctx.p(l.bias!)),
          0,
        ),
      );
    qkv = reshape(qkv, [0, t, 3, h, hs]); // (B, tokens, 3, heads, head_size)
    qkv = transpose(qkv, [2, 0, 3, 1, 4]); // (3, B, heads, tokens, head_size)
    const [q, k, v] = [0, 1, 2].map((i) => squeeze(slice(qkv, 0, i, i + 1), [0])); // each (B, heads, tokens, head_size)
    let scores: Tensor; // (B, heads, tokens, tokens)
    if (this.scale) {
      // LSA: a learned scale per head, and no token attends to itself (-1e9 on the diagonal: 0 after softmax).
      const diagonal = constant(
        Float64Array.from({ length: t * t }, (_, i) => (i % (t + 1) === 0 ? -1e9 : 0)),
        [t, t],
      );
      scores = add(mul(matmul(q, transposeLast2(k)), reshape(ctx.p(this.scale), [1, h, 1, 1])), diagonal);
    } else scores = mul(matmul(q, transposeLast2(k)), 1 / Math.sqrt(hs));
    const probs = ctx.tap(softmax(scores), 'attention_probe'); // (B, heads, tokens, tokens)
    const attended = matmul(ctx.dropout(probs, this.c.attention_probs_dropout_prob), v); // (B, heads, tokens, head_size)
    const merged = reshape(transpose(attended, [0, 2, 1, 3]), [0, t, d]); // (B, tokens, hidden): heads side by side
    const out = ctx.dropout(this.outputProjection.forward(ctx, merged), this.c.hidden_dropout_prob);
    return { out, probs };
  }
}

class MLP extends Module {
  readonly dense1: Linear;
  readonly dense2: Linear;

  constructor(
    readonly c: ViTConfig,
    rng: Rng,
  ) {
    super();
    this.dense1 = this.addChild('dense_1', new Linear(c.hidden_size, c.intermediate_size, rng, c.initializer_range));
    this.dense2 = this.addChild('dense_2', new Linear(c.intermediate_size, c.hidden_size, rng, c.initializer_range));
  }

  forward(ctx: GraphContext, x: Tensor): Tensor {
    const act = this.c.hidden_act === 'gelu' ? geluExact : gelu;
    return ctx.dropout(this.dense2.forward(ctx, act(this.dense1.forward(ctx, x))), this.c.hidden_dropout_prob);
  }
}

class Block extends Module {
  readonly norm1: LayerNorm;
  readonly attention: MultiHeadAttention;
  readonly norm2: LayerNorm;
  readonly mlp: MLP;

  constructor(
    c: ViTConfig,
    rng: Rng,
    readonly dropPath = 0,
  ) {
    super();
    this.attention = this.addChild('attention', new MultiHeadAttention(c, rng));
    this.norm1 = this.addChild('layernorm_1', new LayerNorm(c.hidden_size, c.layer_norm_eps));
    this.mlp = this.addChild('mlp', new MLP(c, rng));
    this.norm2 = this.addChild('layernorm_2', new LayerNorm(c.hidden_size, c.layer_norm_eps));
  }

  forward(ctx: GraphContext, x: Tensor): { out: Tensor; probs: Tensor } {
    const { out: attended, probs } = this.attention.forward(ctx, this.norm1.forward(ctx, x));
    const h = add(x, ctx.dropPath(attended, this.dropPath)); // (B, tokens, hidden)
    return { out: add(h, ctx.dropPath(this.mlp.forward(ctx, this.norm2.forward(ctx, h)), this.dropPath)), probs };
  }
}

class Encoder extends Module {
  readonly blocks: Block[];

  constructor(c: ViTConfig, rng: Rng) {
    super();
    // stochastic depth rises linearly over the blocks, from 0 at the first
    const L = c.num_hidden_layers;
    this.blocks = Array.from({ length: L }, (_, i) => new Block(c, rng, L > 1 ? (c.drop_path_rate * i) / (L - 1) : c.drop_path_rate));
    this.addChild('blocks', Container.list(this.blocks));
  }
}

/** The classifier heads' parameters (`classifier.*`, DeiT's `distillation_classifier.*`): what is made
 *  anew for other labels, and what a frozen encoder leaves to train. */
export const isHeadParam = (name: string): boolean => /^(classifier|distillation_classifier)\./.test(name);

export interface ViTOutputs {
  logits: Tensor; // (B, classes)
  attentions: Tensor[]; // per layer (B, heads, tokens, tokens)
  /** The residual stream entering each block, (B, tokens, hidden): hidden[0] is the embedded tokens
   *  (position embeddings added), what the explanation graph differentiates besides the attentions. */
  hidden: Tensor[];
}

/** The seed's ViTForClassfication. Parameters are created in the seed's module order and initialized
 *  from `seed` (normal(0, initializer_range) weights, zero biases, truncated-normal embeddings). */
export class ViT extends Module {
  readonly embedding: Embeddings;
  readonly encoder: Encoder;
  readonly layernorm: LayerNorm | null;
  readonly classifier: Linear;
  readonly distillationClassifier: Linear | null;

  constructor(
    readonly config: ViTConfig,
    seed = 0,
  ) {
    super();
    const rng = new Rng(seed);
    this.embedding = this.addChild('embedding', new Embeddings(config, rng));
    this.encoder = this.addChild('encoder', new Encoder(config, rng));
    this.layernorm = config.final_layernorm ? this.addChild('layernorm', new LayerNorm(config.hidden_size, config.layer_norm_eps)) : null;
    this.classifier = this.addChild('classifier', new Linear(config.hidden_size, config.num_classes, rng, config.initializer_range));
    this.distillationClassifier = config.distillation_classifier
      ? this.addChild('distillation_classifier', new Linear(config.hidden_size, config.num_classes, rng, config.initializer_range))
      : null;
    this.assignNames();
  }

  /** Builds the forward graph for pixels (B, channels, size, size), already normalized. */
  forward(ctx: GraphContext, pixels: Tensor): ViTOutputs {
    let x = this.embedding.forward(ctx, pixels); // (B, tokens, hidden)
    const attentions: Tensor[] = [];
    const hidden: Tensor[] = [];
    for (const block of this.encoder.blocks) {
      hidden.push(x);
      const r = block.forward(ctx, x);
      x = r.out;
      attentions.push(r.probs);
    }
    if (this.layernorm) x = this.layernorm.forward(ctx, x);
    const token = (i: number) => squeeze(slice(x, 1, i, i + 1), [1]); // (B, hidden)
    const logits = this.classifier.forward(ctx, token(0));
    if (!this.distillationClassifier) return { logits, attentions, hidden };
    // DeiT with its teacher's head: the mean of the [CLS] and distillation heads
    return { logits: mul(add(logits, this.distillationClassifier.forward(ctx, token(1))), 0.5), attentions, hidden };
  }

  get numPatches(): number {
    return numPatches(this.config);
  }

  get prefixTokens(): number {
    return prefixTokens(this.config);
  }
}
