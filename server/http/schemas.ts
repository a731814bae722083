// JSON schemas of the routes (TypeBox): queries, params and every response, so bad queries are 400s
// and responses serialize fast without leaking fields.

import { Type, type Static, type TUnsafe } from '@sinclair/typebox';

/** A string from a fixed list as one `enum` keyword, so that a bad query value's error lists what is
 *  allowed (runtime/schema.ts's oneOf is a union of literals, which the configs' own words read). */
function enumOf<const T extends readonly string[]>(values: T, options: Record<string, unknown> = {}): TUnsafe<T[number]> {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options });
}
import { ERROR_SCHEMA } from '../errors.js';
import { COLORMAP_NAMES } from '../drawing/heatmap.js';
import { MAP_METHODS } from '../engine/maps.js';

export type { Static };
export const ErrorSchema = ERROR_SCHEMA;
export const errors = (...codes: number[]) => Object.fromEntries(codes.map((c) => [c, ErrorSchema]));

export const ClassifyQuery = Type.Object(
  {
    model: Type.Optional(Type.String({ minLength: 1, description: 'model name (default: the default model)' })),
    topk: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 5, description: 'how many predictions' })),
    attention: Type.Optional(
      enumOf(['none', 'rollout', 'cls', 'full', 'relevance'] as const, {
        description:
          'attention in the response (default rollout; omitted for models ' +
          'without attention outputs unless asked); relevance: the default ' +
          "explanation of the top prediction (the last block's gradient-weighted " +
          'attention, rolled out), from the same run as the classification',
      }),
    ),
    tta: Type.Optional(
      enumOf(['none', 'flip'] as const, {
        description: 'flip: the logits averaged over the image and its mirror (two images in the batch); maps are of the image itself',
      }),
    ),
  },
  { additionalProperties: false },
);

const Grid = Type.Array(Type.Array(Type.Number()));

export const ClassifyResponse = Type.Object({
  id: Type.String(),
  model: Type.String(),
  model_version: Type.String({ description: 'the version of the model that answered (each load while serving counts one)' }),
  predictions: Type.Array(Type.Object({ label: Type.String(), index: Type.Integer(), probability: Type.Number() })),
  logits: Type.Array(Type.Number()),
  attention: Type.Optional(
    Type.Object({
      method: Type.String(),
      class: Type.Optional(Type.String({ description: 'relevance: the class explained' })),
      grid: Type.Array(Type.Integer(), { description: '[rows, cols] of patches' }),
      values: Type.Optional(Grid),
      layers: Type.Optional(
        Type.Array(Type.Array(Type.Array(Type.Array(Type.Number()))), { description: 'full: [layer][head][token][token]' }),
      ),
    }),
  ),
  image: Type.Object({ format: Type.String(), width: Type.Integer(), height: Type.Integer() }),
  timings: Type.Object({
    decode_ms: Type.Number(),
    queue_ms: Type.Number(),
    inference_ms: Type.Number(),
    total_ms: Type.Number(),
    batch_size: Type.Integer(),
  }),
});

export const AttentionParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) });

export const AttentionQuery = Type.Object(
  {
    method: Type.Optional(enumOf(MAP_METHODS, { default: 'rollout' })),
    class: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 200,
        description: 'for relevance: the class to explain, a label or an index (default: the top prediction)',
      }),
    ),
    layer: Type.Optional(Type.Integer({ minimum: 0, description: 'for cls: the layer (default: the last)' })),
    head: Type.Optional(
      Type.String({ pattern: '^(mean|max|min|[0-9]+)$', default: 'mean', description: 'head fusion: mean, max, min or a head index' }),
    ),
    discard: Type.Optional(
      Type.Number({ minimum: 0, maximum: 0.99, default: 0, description: 'rollout: share of the lowest weights dropped per layer' }),
    ),
    alpha: Type.Optional(Type.Number({ minimum: 0, maximum: 1, default: 0.5 })),
    size: Type.Optional(Type.Integer({ minimum: 16, maximum: 1024, default: 256 })),
    colormap: Type.Optional(enumOf(COLORMAP_NAMES, { default: 'jet' })),
    format: Type.Optional(enumOf(['png', 'json'] as const, { default: 'png' })),
  },
  { additionalProperties: false },
);

export const AttentionJson = Type.Object({
  id: Type.String(),
  model: Type.String(),
  method: Type.String(),
  layer: Type.Optional(Type.Integer()),
  class: Type.Optional(Type.String()),
  class_index: Type.Optional(Type.Integer()),
  /** relevance and combined: how the map was made (maps.ts RELEVANCE_RULE, COMBINED_RULE). */
  rule: Type.Optional(Type.String()),
  head: Type.Optional(Type.String()),
  discard: Type.Optional(Type.Number()),
  grid: Type.Array(Type.Integer()),
  /** The map's own lowest and highest value (values are scaled to a highest of 1; heatmaps stretch lowest to highest). */
  range: Type.Array(Type.Number(), { minItems: 2, maxItems: 2 }),
  values: Grid,
});

export const GpuAdapterSchema = Type.Object({
  vendor: Type.String(),
  name: Type.String(),
  software: Type.Boolean({ description: 'a Vulkan device that runs on the CPU (Mesa lavapipe, SwiftShader): right for tests, slow' }),
});

export const ModelsResponse = Type.Object({
  default: Type.String(),
  models: Type.Array(
    Type.Object({
      name: Type.String(),
      labels: Type.Array(Type.String()),
      input: Type.Object({
        name: Type.String(),
        shape: Type.Array(Type.Union([Type.Integer(), Type.String()])),
        mean: Type.Array(Type.Number()),
        std: Type.Array(Type.Number()),
        fit: Type.Union([Type.Literal('cover'), Type.Literal('fill')], {
          description: 'cover: the aspect ratio kept, edges cut; fill: stretched (Hugging Face processors)',
        }),
        resample: Type.String({ description: 'area (means over the covered pixels) or a kernel: nearest, linear, cubic, lanczos3' }),
        rescale: Type.Number({ description: 'what pixel values are multiplied by before the mean' }),
      }),
      outputs: Type.Object({ logits: Type.String(), attentions: Type.Array(Type.String()) }),
      methods: Type.Array(Type.String(), {
        description: 'the attention map methods the model serves (relevance needs its relevance graph)',
      }),
      class_methods: Type.Array(Type.String(), {
        description: 'those of methods that explain one class (GET /attention/:id takes class= with them)',
      }),
      patch_size: Type.Union([Type.Integer(), Type.Null()]),
      precision: Type.Object(
        {
          classification: Type.Union([Type.Literal('float'), Type.Literal('int8')]),
          explanation: Type.Literal('float'),
        },
        {
          description:
            'the graphs the model runs: classification int8 after vitrine quantize (its logits and attention maps), ' +
            'the explanation graph (relevance, chefer, grad-input, combined) always float',
        },
      ),
      provider: Type.String({ description: 'the ONNX Runtime execution provider the model runs on: cpu, webgpu or cuda' }),
      adapter: Type.Union([GpuAdapterSchema, Type.Null()], {
        description: 'with webgpu: the GPU, as far as the Vulkan drivers and devices tell',
      }),
    }),
  ),
});
