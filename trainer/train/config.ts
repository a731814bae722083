// The training run's configuration as a TypeBox schema: the type, the defaults, the flags of
// `vitrine train` and the one-line errors all come from it (runtime/schema.ts). A recipe
// (trainer/recipes/<name>.json, or any JSON file) sets some keys; command-line flags override them.

import { type Static, type TSchema, Type } from '@sinclair/typebox';
import { DEVICES } from '../../runtime/ort.js';
import { defaultsOf, firstProblem, flagOf, oneOf } from '../../runtime/schema.js';
import { POLICIES } from '../data/policies.js';
import type { ViTConfig } from '../vit/config.js';

const int = (minimum: number, def: number, more = {}) => Type.Integer({ minimum, default: def, example: 'N', ...more });
const num = (def: number, more = {}) => Type.Number({ minimum: 0, default: def, example: 'X', ...more });
const share = (def: number, more = {}) => Type.Number({ minimum: 0, maximum: 1, default: def, example: 'P', ...more });
const below1 = (def: number) => Type.Number({ minimum: 0, exclusiveMaximum: 1, default: def, example: 'X' });
const bool = (def: boolean) => Type.Boolean({ default: def });
const text = (def: string, example?: string) => Type.String({ minLength: 1, default: def, ...(example ? { example } : {}) });

export const TrainConfigSchema = Type.Object(
  {
    /** 'cifar10', a folder of class folders, or a cifar-10-batches-bin folder. */
    data: text('cifar10', 'cifar10|<folder>'),
    /** Where downloads and decoded caches go. */
    data_dir: text('data'),
    /** Share of each class held out for validation, for folders without train/ and val/. */
    val_ratio: Type.Number({ minimum: 0, exclusiveMaximum: 1, default: 0.1 }),
    /** What an image that cannot be decoded does: skipped with a warning, or stops the run. */
    on_bad_image: oneOf(['skip', 'fail'] as const, { default: 'skip' }),
    /** The ViT: a path to its JSON config, or the config inline; unset keys take the seed's values
     *  (parseViTConfig checks them when the run starts, against the data's classes). */
    model: Type.Union([Type.String({ minLength: 1 }), Type.Unsafe<Partial<ViTConfig>>(Type.Object({}))], {
      default: {},
      expects: 'a path or a JSON object',
      example: `<vit.json>|'{"hidden_size": 64, …}'`,
    }),
    /** Starting weights: a Hugging Face ViT/DeiT checkpoint folder, a vitrine model folder or a run's
     *  weights.safetensors ('' = random). The architecture is the checkpoint's (model may then set only
     *  image_size, dropouts and drop_path_rate); the classifier is made anew when the labels differ. */
    init: Type.String({ default: '', example: '<hf folder|model folder|weights.safetensors>' }),
    /** 'encoder' trains only the classifier (a linear probe) for freeze_epochs, then everything. */
    freeze: oneOf(['none', 'encoder'] as const, { default: 'none' }),
    /** Epochs the encoder stays frozen (0 = the whole run). */
    freeze_epochs: int(0, 0),
    /** Layer-wise learning-rate decay (BEiT's): block i of L takes lr * layer_decay^(L - i), the
     *  embeddings lr * layer_decay^(L + 1), the classifier and final norm lr (1 = off). */
    layer_decay: Type.Number({ exclusiveMinimum: 0, maximum: 1, default: 1, example: 'X' }),
    epochs: int(1, 100),
    batch_size: int(1, 256),
    optimizer: oneOf(['adamw', 'sgd'] as const, { default: 'adamw' }),
    lr: num(0.01),
    weight_decay: num(0.01),
    /** Decay every parameter (the seed), or exempt biases, layer norms and embeddings. */
    decay_all: bool(true),
    /** Adam's beta1, beta2 and epsilon. */
    betas: Type.Tuple([below1(0.9), below1(0.999)], { default: [0.9, 0.999], expects: 'two numbers in [0, 1)', example: 'b1,b2' }),
    eps: num(1e-8),
    /** SGD's momentum and Nesterov switch. */
    momentum: below1(0.9),
    nesterov: bool(false),
    schedule: oneOf(['constant', 'cosine'] as const, { default: 'constant' }),
    /** Linear warmup from 0, in epochs (fractions allowed). */
    warmup_epochs: num(0),
    /** Where the cosine ends. */
    min_lr: num(0),
    label_smoothing: below1(0),
    /** Random crop: shift by up to this many pixels with zero padding (0 = off). */
    crop_padding: int(0, 0),
    /** Random horizontal flip. */
    flip: bool(false),
    /** Derandomized flips (airbench's alternating flip): each image is mirrored in every other epoch,
     *  from a side drawn once per image, rather than on a coin each time it is drawn (needs flip). */
    alternate_flip: bool(false),
    /** An automatic augmentation policy after crop and flip: RandAugment, TrivialAugmentWide, AutoAugment's CIFAR-10 policy. */
    auto_augment: oneOf(POLICIES, { default: 'none' }),
    /** RandAugment: ops per image, and the magnitude bin of 31 (torchvision's defaults 2 and 9). */
    randaugment_ops: int(0, 2),
    randaugment_magnitude: int(0, 9, { maximum: 30, example: '0-30' }),
    /** Probability of erasing a random rectangle of each image (with the mean colour). */
    random_erasing: share(0),
    /** Beta(alpha, alpha) of Mixup and of CutMix (0 = off). */
    mixup_alpha: num(0),
    cutmix_alpha: num(0),
    /** Probability a batch is mixed, and of CutMix when both are on. */
    mix_prob: share(1),
    mix_switch_prob: share(0.5),
    /** Decay of an exponential moving average of the weights, evaluated each epoch and exported when better (0 = none; e.g. 0.999). */
    ema_decay: below1(0),
    /** The weight average's horizon as a share of the run's steps: its decay is 1 - 1 / (ema_horizon x
     *  steps), so a shorter run averages over fewer steps (0 = ema_decay as given). */
    ema_horizon: share(0),
    /** The tokenizer's first convolution starts as a whitening of the training images' patches
     *  (airbench): the leading eigenvectors of their second-moment matrix, scaled by 1 / sqrt(eigenvalue
     *  + 5e-4), each with both signs; a fresh run of a model with a convolutional tokenizer only. */
    whiten_init: bool(false),
    /** Seeds initialization, data order, augmentation and dropout. */
    seed: int(0, 0),
    /** ONNX Runtime intra-op threads (0 = one per core). */
    threads: int(0, 0),
    device: oneOf(DEVICES, { default: 'auto' }),
    /** Evaluate every N epochs (and after the last). */
    eval_every: int(1, 1),
    /** Write a checkpoint every N epochs (and after the last, and on Ctrl-C). */
    checkpoint_every: int(1, 1),
    /** Use only the first N training / evaluation images (0 = all): for quick trials. */
    limit_train: int(0, 0),
    limit_eval: int(0, 0),
  },
  { additionalProperties: false },
);

export type TrainConfig = Static<typeof TrainConfigSchema>;
export type TrainKey = keyof TrainConfig;
export const TRAIN_KEYS = Object.keys(TrainConfigSchema.properties) as TrainKey[];

export const DEFAULT_TRAIN: Readonly<TrainConfig> = Object.freeze(defaultsOf(TrainConfigSchema) as TrainConfig);

const schemaOf = (key: TrainKey) => TrainConfigSchema.properties[key] as TSchema;

/** Applies `overrides` (parsed JSON or flags) to `base`, rejecting unknown keys and bad values. */
export function mergeTrainConfig(base: TrainConfig, overrides: Record<string, unknown>, source: string): TrainConfig {
  const out = { ...base } as Record<string, unknown>;
  const flags = source === 'flags';
  for (const [key, value] of Object.entries(overrides)) {
    if (key.startsWith('//')) continue; // comments in recipe files
    if (!(key in TrainConfigSchema.properties))
      throw new Error(flags ? `unknown flag --${flagOf(key)}` : `${source}: unknown key '${key}'`);
    const problem = firstProblem(schemaOf(key as TrainKey), value);
    if (problem)
      throw new Error(
        flags
          ? `--${flagOf(key)} must be ${problem.expects}, got '${typeof value === 'string' ? value : JSON.stringify(value)}'`
          : `${source}: '${key}' must be ${problem.expects}, got ${JSON.stringify(value)}`,
      );
    out[key] = value;
  }
  return out as TrainConfig;
}

/** Converts a command-line flag's text to the type the key takes. */
export function flagValue(key: TrainKey, raw: string | boolean): unknown {
  const s = schemaOf(key);
  if (key === 'model' && typeof raw === 'string' && raw.trim().startsWith('{')) {
    // an inline config: '{"hidden_size": 64}'
    try {
      return JSON.parse(raw);
    } catch (err) {
      throw new Error(`--model: not valid JSON (${(err as Error).message})`);
    }
  }
  if (s.type === 'boolean') return raw === true || raw === 'true';
  // Text that is not a number stays text, so the error quotes what was typed.
  const toNumber = (x: string) => (x.trim() !== '' && Number.isFinite(Number(x)) ? Number(x) : x);
  if (s.type === 'number' || s.type === 'integer') return toNumber(String(raw));
  if (s.type === 'array') return String(raw).split(',').map(toNumber);
  return raw;
}
