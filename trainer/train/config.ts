// The training run's configuration: a typed plain object with defaults, validated at load. A recipe
// (trainer/recipes/<name>.json, or any JSON file) sets some keys; command-line flags override them.

import { DEVICES, Device } from '../../runtime/ort.js';
import { POLICIES, Policy } from '../data/policies.js';
import { ViTConfig } from '../vit/config.js';

export interface TrainConfig {
  /** 'cifar10', a folder of class folders, or a cifar-10-batches-bin folder. */
  data: string;
  /** Where downloads and decoded caches go. */
  data_dir: string;
  /** Share of each class held out for validation, for folders without train/ and val/. */
  val_ratio: number;
  /** What an image that cannot be decoded does: skipped with a warning, or stops the run. */
  on_bad_image: 'skip' | 'fail';
  /** The ViT: a path to its JSON config, or the config inline; unset keys take the seed's values. */
  model: string | Partial<ViTConfig>;
  epochs: number;
  batch_size: number;
  optimizer: 'adamw' | 'sgd';
  lr: number;
  weight_decay: number;
  /** Decay every parameter (the seed), or exempt biases, layer norms and embeddings. */
  decay_all: boolean;
  /** Adam's beta1, beta2 and epsilon. */
  betas: [number, number];
  eps: number;
  /** SGD's momentum and Nesterov switch. */
  momentum: number;
  nesterov: boolean;
  schedule: 'constant' | 'cosine';
  /** Linear warmup from 0, in epochs (fractions allowed). */
  warmup_epochs: number;
  /** Where the cosine ends. */
  min_lr: number;
  label_smoothing: number;
  /** Random crop: shift by up to this many pixels with zero padding (0 = off). */
  crop_padding: number;
  /** Random horizontal flip. */
  flip: boolean;
  /** An automatic augmentation policy after crop and flip: RandAugment, TrivialAugmentWide, AutoAugment's CIFAR-10 policy. */
  auto_augment: Policy;
  /** RandAugment: ops per image, and the magnitude bin of 31 (torchvision's defaults 2 and 9). */
  randaugment_ops: number;
  randaugment_magnitude: number;
  /** Probability of erasing a random rectangle of each image (with the mean colour). */
  random_erasing: number;
  /** Beta(alpha, alpha) of Mixup and of CutMix (0 = off). */
  mixup_alpha: number;
  cutmix_alpha: number;
  /** Probability a batch is mixed, and of CutMix when both are on. */
  mix_prob: number;
  mix_switch_prob: number;
  /** Decay of an exponential moving average of the weights, evaluated each epoch and exported when better (0 = none; e.g. 0.999). */
  ema_decay: number;
  /** Seeds initialization, data order, augmentation and dropout. */
  seed: number;
  /** ONNX Runtime intra-op threads (0 = one per core). */
  threads: number;
  device: Device;
  /** Evaluate every N epochs (and after the last). */
  eval_every: number;
  /** Write a checkpoint every N epochs (and after the last, and on Ctrl-C). */
  checkpoint_every: number;
  /** Use only the first N training / evaluation images (0 = all): for quick trials. */
  limit_train: number;
  limit_eval: number;
}

export const DEFAULT_TRAIN: Readonly<TrainConfig> = Object.freeze({
  data: 'cifar10',
  data_dir: 'data',
  val_ratio: 0.1,
  on_bad_image: 'skip',
  model: {},
  epochs: 100,
  batch_size: 256,
  optimizer: 'adamw',
  lr: 0.01,
  weight_decay: 0.01,
  decay_all: true,
  betas: [0.9, 0.999],
  eps: 1e-8,
  momentum: 0.9,
  nesterov: false,
  schedule: 'constant',
  warmup_epochs: 0,
  min_lr: 0,
  label_smoothing: 0,
  crop_padding: 0,
  flip: false,
  auto_augment: 'none',
  randaugment_ops: 2,
  randaugment_magnitude: 9,
  random_erasing: 0,
  mixup_alpha: 0,
  cutmix_alpha: 0,
  mix_prob: 1,
  mix_switch_prob: 0.5,
  ema_decay: 0,
  seed: 0,
  threads: 0,
  device: 'auto',
  eval_every: 1,
  checkpoint_every: 1,
  limit_train: 0,
  limit_eval: 0,
} as TrainConfig);

type Check = (v: unknown) => string | null;
const int =
  (min: number): Check =>
  (v) =>
    Number.isInteger(v) && (v as number) >= min ? null : `an integer >= ${min}`;
const num =
  (min: number, max = Infinity, maxOpen = false): Check =>
  (v) =>
    typeof v === 'number' && Number.isFinite(v) && v >= min && (maxOpen ? v < max : v <= max) ? null : max === Infinity ? `a number >= ${min}` : `a number in [${min}, ${max}${maxOpen ? ')' : ']'}`;
const oneOf =
  (...values: readonly string[]): Check =>
  (v) =>
    values.includes(v as string) ? null : `one of ${values.join(', ')}`;
const bool: Check = (v) => (typeof v === 'boolean' ? null : 'true or false');
const text: Check = (v) => (typeof v === 'string' && v.length > 0 ? null : 'a non-empty string');

export const TRAIN_CHECKS: Record<keyof TrainConfig, Check> = {
  data: text,
  data_dir: text,
  val_ratio: num(0, 1, true),
  on_bad_image: oneOf('skip', 'fail'),
  model: (v) => (typeof v === 'string' || (typeof v === 'object' && v !== null && !Array.isArray(v)) ? null : 'a path or a JSON object'),
  epochs: int(1),
  batch_size: int(1),
  optimizer: oneOf('adamw', 'sgd'),
  lr: num(0),
  weight_decay: num(0),
  decay_all: bool,
  betas: (v) => (Array.isArray(v) && v.length === 2 && v.every((b) => typeof b === 'number' && b >= 0 && b < 1) ? null : 'two numbers in [0, 1)'),
  eps: num(0),
  momentum: num(0, 1, true),
  nesterov: bool,
  schedule: oneOf('constant', 'cosine'),
  warmup_epochs: num(0),
  min_lr: num(0),
  label_smoothing: num(0, 1, true),
  crop_padding: int(0),
  flip: bool,
  auto_augment: oneOf(...POLICIES),
  randaugment_ops: int(0),
  randaugment_magnitude: (v) => (Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 30 ? null : 'an integer in [0, 30]'),
  random_erasing: num(0, 1),
  mixup_alpha: num(0),
  cutmix_alpha: num(0),
  mix_prob: num(0, 1),
  mix_switch_prob: num(0, 1),
  ema_decay: num(0, 1, true),
  seed: int(0),
  threads: int(0),
  device: oneOf(...DEVICES),
  eval_every: int(1),
  checkpoint_every: int(1),
  limit_train: int(0),
  limit_eval: int(0),
};

/** Applies `overrides` (parsed JSON or flags) to `base`, rejecting unknown keys and bad values. */
export function mergeTrainConfig(base: TrainConfig, overrides: Record<string, unknown>, source: string): TrainConfig {
  const out = { ...base } as Record<string, unknown>;
  for (const [key, value] of Object.entries(overrides)) {
    if (key.startsWith('//')) continue; // comments in recipe files
    const check = TRAIN_CHECKS[key as keyof TrainConfig];
    const flags = source === 'flags';
    if (!check) throw new Error(flags ? `unknown flag --${key.replace(/_/g, '-')}` : `${source}: unknown key '${key}'`);
    const problem = check(value);
    if (problem) throw new Error(flags ? `--${key.replace(/_/g, '-')} must be ${problem}, got '${typeof value === 'string' ? value : JSON.stringify(value)}'` : `${source}: '${key}' must be ${problem}, got ${JSON.stringify(value)}`);
    out[key] = value;
  }
  return out as unknown as TrainConfig;
}

/** Converts a command-line flag's text to the type the key takes. */
export function flagValue(key: keyof TrainConfig, raw: string | boolean): unknown {
  const sample = DEFAULT_TRAIN[key];
  if (key === 'model' && typeof raw === 'string' && raw.trim().startsWith('{')) {
    // an inline config: '{"hidden_size": 64}'
    try {
      return JSON.parse(raw);
    } catch (err) {
      throw new Error(`--model: not valid JSON (${(err as Error).message})`);
    }
  }
  if (typeof sample === 'boolean') return raw === true || raw === 'true';
  // Text that is not a number stays text, so the error quotes what was typed.
  const toNumber = (x: string) => (x.trim() !== '' && Number.isFinite(Number(x)) ? Number(x) : x);
  if (typeof sample === 'number') return toNumber(String(raw));
  if (Array.isArray(sample)) return String(raw).split(',').map(toNumber);
  return raw;
}
