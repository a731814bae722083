import { type ViTConfig, parseViTConfig } from '../../trainer/vit/config.js';

/** A ViT small enough for finite differences: 8x8 images, 2x2 patches of 4 px, 2 blocks, 2 heads. */
export const TINY: ViTConfig = parseViTConfig({
  image_size: 8,
  patch_size: 4,
  num_channels: 3,
  hidden_size: 8,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  intermediate_size: 16,
  num_classes: 3,
  initializer_range: 0.5,
});

/** TINY with a convolutional tokenizer of two stages (8x8 -> 4x4 -> 2x2 tokens of 4 px, as TINY's). */
export const TINY_CONV: ViTConfig = parseViTConfig({ ...TINY, tokenizer_layers: 2, tokenizer_channels: 4 });

/** TINY in grey (one channel, fewer finite differences) with shifted patch tokenization and locality self-attention. */
export const TINY_SPT_LSA: ViTConfig = parseViTConfig({
  ...TINY,
  num_channels: 1,
  mean: [0.5],
  std: [0.5],
  shifted_patch_tokenization: true,
  locality_self_attention: true,
});
