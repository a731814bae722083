// Automatic augmentation policies over uint8 CHW images, as torchvision 0.14's tensor code defines them
// (`torchvision/transforms/autoaugment.py` and `functional_tensor.py`), so that a recipe written for
// PyTorch means the same here:
//  - RandAugment (Cubuk et al. 2020): `n` ops drawn uniformly, each at the fixed magnitude m of 31 bins;
//  - TrivialAugmentWide (Müller & Hutter 2021): one op, a magnitude drawn uniformly of 31 wider bins;
//  - AutoAugment's CIFAR-10 policy (Cubuk et al. 2019): one of 25 learned sub-policies of two ops,
//    each applied with its own probability.
// Geometric ops sample with nearest neighbour at pixel centres and fill with black, colour ops blend
// in float and truncate to uint8, exactly as torchvision does on uint8 tensors.

import type { Rng } from '../nn/random.js';

export const POLICIES = ['none', 'randaugment', 'trivialaugment', 'autoaugment'] as const;
export type Policy = (typeof POLICIES)[number];

export type OpName =
  | 'Identity'
  | 'ShearX'
  | 'ShearY'
  | 'TranslateX'
  | 'TranslateY'
  | 'Rotate'
  | 'Brightness'
  | 'Color'
  | 'Contrast'
  | 'Sharpness'
  | 'Posterize'
  | 'Solarize'
  | 'AutoContrast'
  | 'Equalize'
  | 'Invert';

/** One image being augmented in place: C planes of H x W bytes, and a scratch buffer of the same size. */
export interface Canvas {
  px: Uint8Array;
  tmp: Uint8Array;
  C: number;
  H: number;
  W: number;
}

const f = Math.fround; // torchvision computes these in float32
const linspace = (a: number, b: number, n: number) => Array.from({ length: n }, (_, i) => (n === 1 ? a : a + ((b - a) * i) / (n - 1)));
/** torch.round: halves to even. */
const roundEven = (x: number) => {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
};
const posterizeBits = (bins: number, spread: number) => Array.from({ length: bins }, (_, i) => 8 - roundEven(i / ((bins - 1) / spread)));

interface Space {
  magnitudes: number[];
  signed: boolean;
}

/** The magnitude of every op at each of `bins` levels: torchvision's `_augmentation_space` (wide = TrivialAugmentWide's). */
export function augmentationSpace(bins: number, H: number, W: number, wide: boolean): Record<Exclude<OpName, 'Invert'>, Space> {
  const s = (magnitudes: number[], signed: boolean): Space => ({ magnitudes, signed });
  const zero = s(new Array<number>(bins).fill(0), false);
  return {
    Identity: zero,
    ShearX: s(linspace(0, wide ? 0.99 : 0.3, bins), true),
    ShearY: s(linspace(0, wide ? 0.99 : 0.3, bins), true),
    TranslateX: s(linspace(0, wide ? 32 : (150 / 331) * W, bins), true),
    TranslateY: s(linspace(0, wide ? 32 : (150 / 331) * H, bins), true),
    Rotate: s(linspace(0, wide ? 135 : 30, bins), true),
    Brightness: s(linspace(0, wide ? 0.99 : 0.9, bins), true),
    Color: s(linspace(0, wide ? 0.99 : 0.9, bins), true),
    Contrast: s(linspace(0, wide ? 0.99 : 0.9, bins), true),
    Sharpness: s(linspace(0, wide ? 0.99 : 0.9, bins), true),
    Posterize: s(posterizeBits(bins, wide ? 6 : 4), false),
    Solarize: s(linspace(255, 0, bins), false),
    AutoContrast: zero,
    Equalize: zero,
  };
}

// --- geometric ops: output pixel (x, y) takes the input pixel nearest to inverse(x, y) ---

/** Applies the inverse map (pixel-centre coordinates, origin at the top-left corner) to every pixel. */
function warp(c: Canvas, inverse: (x: number, y: number) => [number, number]): void {
  const { px, tmp, C, H, W } = c;
  tmp.set(px);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const [sx, sy] = inverse(x + 0.5, y + 0.5);
      // grid_sample's nearest mode: index = nearbyint(coordinate - 0.5), halves to even
      const ix = roundEven(sx - 0.5);
      const iy = roundEven(sy - 0.5);
      const inside = ix >= 0 && ix < W && iy >= 0 && iy < H;
      for (let ch = 0; ch < C; ch++) px[(ch * H + y) * W + x] = inside ? tmp[(ch * H + iy) * W + ix] : 0;
    }
  }
}

function shear(c: Canvas, m: number, axis: 'x' | 'y'): void {
  // torchvision shears about the top-left corner (center=[0, 0]) by the angle atan(m)
  if (axis === 'x') warp(c, (x, y) => [x + m * y, y]);
  else warp(c, (x, y) => [x, y + m * x]);
}

function translate(c: Canvas, m: number, axis: 'x' | 'y'): void {
  const t = Math.trunc(m); // torchvision passes int(magnitude)
  if (axis === 'x') warp(c, (x, y) => [x - t, y]);
  else warp(c, (x, y) => [x, y - t]);
}

function rotate(c: Canvas, degrees: number): void {
  // counter-clockwise about the image centre
  const a = (degrees * Math.PI) / 180;
  const cos = Math.cos(a);
  const sin = Math.sin(a);
  const cx = c.W / 2;
  const cy = c.H / 2;
  warp(c, (x, y) => {
    const dx = x - cx;
    const dy = y - cy;
    return [cos * dx - sin * dy + cx, sin * dx + cos * dy + cy];
  });
}

// --- colour ops ---

/** ratio * img + (1 - ratio) * other, clamped and truncated to uint8 (torchvision's _blend). */
function blend(c: Canvas, ratio: number, other: (i: number) => number): void {
  const { px } = c;
  const r = f(ratio);
  const q = f(1 - ratio);
  for (let i = 0; i < px.length; i++) {
    const v = f(f(r * px[i]) + f(q * other(i)));
    px[i] = v <= 0 ? 0 : v >= 255 ? 255 : Math.trunc(v);
  }
}

/** rgb_to_grayscale on uint8: 0.2989 R + 0.587 G + 0.114 B, truncated (one plane images are their own gray). */
function grayscale(c: Canvas): Uint8Array {
  const n = c.H * c.W;
  const g = new Uint8Array(n);
  if (c.C < 3) {
    g.set(c.px.subarray(0, n));
    return g;
  }
  const [wr, wg, wb] = [f(0.2989), f(0.587), f(0.114)];
  for (let i = 0; i < n; i++) g[i] = Math.trunc(f(f(f(wr * c.px[i]) + f(wg * c.px[n + i])) + f(wb * c.px[2 * n + i])));
  return g;
}

function sharpness(c: Canvas, factor: number): void {
  const { px, tmp, C, H, W } = c;
  if (H <= 2 || W <= 2) return;
  // the degenerate image: a 3x3 smoothing ([1 1 1; 1 5 1; 1 1 1] / 13) inside, the border as it is
  tmp.set(px);
  for (let ch = 0; ch < C; ch++) {
    const o = ch * H * W;
    for (let y = 1; y < H - 1; y++) {
      for (let x = 1; x < W - 1; x++) {
        let s = 4 * px[o + y * W + x];
        for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) s += px[o + (y + dy) * W + x + dx];
        tmp[o + y * W + x] = roundEven(s / 13);
      }
    }
  }
  const degenerate = Uint8Array.from(tmp);
  blend(c, factor, (i) => degenerate[i]);
}

function autoContrast(c: Canvas): void {
  const { px, C, H, W } = c;
  const n = H * W;
  for (let ch = 0; ch < C; ch++) {
    const plane = px.subarray(ch * n, (ch + 1) * n);
    let lo = 255;
    let hi = 0;
    for (const v of plane) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    if (hi === lo) continue; // torchvision: min 0, scale 1, i.e. unchanged
    const scale = f(f(1 / (hi - lo)) * 255); // torch computes 255 / t as reciprocal(t) * 255
    for (let i = 0; i < n; i++) plane[i] = Math.min(255, Math.trunc(f((plane[i] - lo) * scale)));
  }
}

function equalize(c: Canvas): void {
  const { px, C, H, W } = c;
  const n = H * W;
  for (let ch = 0; ch < C; ch++) {
    const plane = px.subarray(ch * n, (ch + 1) * n);
    const hist = new Array<number>(256).fill(0);
    for (const v of plane) hist[v]++;
    let last = 255;
    while (hist[last] === 0) last--;
    // the step: all pixels but those of the highest level present, over 255
    const step = Math.floor((n - hist[last]) / 255);
    if (step === 0) continue;
    const lut = new Uint8Array(256);
    let cum = 0;
    for (let v = 0; v < 256; v++) {
      lut[v] = Math.min(255, Math.floor((cum + Math.floor(step / 2)) / step));
      cum += hist[v];
    }
    for (let i = 0; i < n; i++) plane[i] = lut[plane[i]];
  }
}

/** Applies one op at one magnitude (already signed) in place. */
export function applyOp(c: Canvas, op: OpName, m: number): void {
  const { px } = c;
  switch (op) {
    case 'Identity':
      return;
    case 'ShearX':
      return shear(c, m, 'x');
    case 'ShearY':
      return shear(c, m, 'y');
    case 'TranslateX':
      return translate(c, m, 'x');
    case 'TranslateY':
      return translate(c, m, 'y');
    case 'Rotate':
      return rotate(c, m);
    case 'Brightness':
      return blend(c, 1 + m, () => 0);
    case 'Color': {
      if (c.C < 3) return;
      const g = grayscale(c);
      const n = c.H * c.W;
      return blend(c, 1 + m, (i) => g[i % n]);
    }
    case 'Contrast': {
      const g = grayscale(c);
      let mean = 0;
      for (const v of g) mean += v;
      mean = f(mean / g.length);
      return blend(c, 1 + m, () => mean);
    }
    case 'Sharpness':
      return sharpness(c, 1 + m);
    case 'Posterize': {
      const mask = 0xff & -(2 ** (8 - m));
      for (let i = 0; i < px.length; i++) px[i] &= mask;
      return;
    }
    case 'Solarize':
      for (let i = 0; i < px.length; i++) if (px[i] >= m) px[i] = 255 - px[i];
      return;
    case 'AutoContrast':
      return autoContrast(c);
    case 'Equalize':
      return equalize(c);
    case 'Invert':
      for (let i = 0; i < px.length; i++) px[i] = 255 - px[i];
      return;
  }
}

const RAND_OPS: OpName[] = [
  'Identity',
  'ShearX',
  'ShearY',
  'TranslateX',
  'TranslateY',
  'Rotate',
  'Brightness',
  'Color',
  'Contrast',
  'Sharpness',
  'Posterize',
  'Solarize',
  'AutoContrast',
  'Equalize',
];

/** AutoAugment's CIFAR-10 policy: 25 sub-policies of two (op, probability, magnitude bin of 10). */
export const CIFAR10_POLICY: ReadonlyArray<readonly [readonly [OpName, number, number], readonly [OpName, number, number]]> = [
  [
    ['Invert', 0.1, 0],
    ['Contrast', 0.2, 6],
  ],
  [
    ['Rotate', 0.7, 2],
    ['TranslateX', 0.3, 9],
  ],
  [
    ['Sharpness', 0.8, 1],
    ['Sharpness', 0.9, 3],
  ],
  [
    ['ShearY', 0.5, 8],
    ['TranslateY', 0.7, 9],
  ],
  [
    ['AutoContrast', 0.5, 0],
    ['Equalize', 0.9, 0],
  ],
  [
    ['ShearY', 0.2, 7],
    ['Posterize', 0.3, 7],
  ],
  [
    ['Color', 0.4, 3],
    ['Brightness', 0.6, 7],
  ],
  [
    ['Sharpness', 0.3, 9],
    ['Brightness', 0.7, 9],
  ],
  [
    ['Equalize', 0.6, 0],
    ['Equalize', 0.5, 0],
  ],
  [
    ['Contrast', 0.6, 7],
    ['Sharpness', 0.6, 5],
  ],
  [
    ['Color', 0.7, 7],
    ['TranslateX', 0.5, 8],
  ],
  [
    ['Equalize', 0.3, 0],
    ['AutoContrast', 0.4, 0],
  ],
  [
    ['TranslateY', 0.4, 3],
    ['Sharpness', 0.2, 6],
  ],
  [
    ['Brightness', 0.9, 6],
    ['Color', 0.2, 8],
  ],
  [
    ['Solarize', 0.5, 2],
    ['Invert', 0.0, 0],
  ],
  [
    ['Equalize', 0.2, 0],
    ['AutoContrast', 0.6, 0],
  ],
  [
    ['Equalize', 0.2, 0],
    ['Equalize', 0.6, 0],
  ],
  [
    ['Color', 0.9, 9],
    ['Equalize', 0.6, 0],
  ],
  [
    ['AutoContrast', 0.8, 0],
    ['Solarize', 0.2, 8],
  ],
  [
    ['Brightness', 0.1, 3],
    ['Color', 0.7, 0],
  ],
  [
    ['Solarize', 0.4, 5],
    ['AutoContrast', 0.9, 0],
  ],
  [
    ['TranslateY', 0.9, 9],
    ['TranslateY', 0.7, 9],
  ],
  [
    ['AutoContrast', 0.9, 0],
    ['Solarize', 0.2, 3],
  ],
  [
    ['Equalize', 0.8, 0],
    ['Invert', 0.1, 0],
  ],
  [
    ['TranslateY', 0.7, 9],
    ['AutoContrast', 0.9, 0],
  ],
];

export interface PolicyOptions {
  policy: Policy;
  /** RandAugment: ops per image, and the magnitude bin (0-30). */
  ops: number;
  magnitude: number;
}

/** A policy ready to apply to images of one size (the magnitude tables built once). */
export class AutoAugmenter {
  private readonly space31: ReturnType<typeof augmentationSpace>;
  private readonly space10: ReturnType<typeof augmentationSpace>;

  constructor(
    private readonly o: PolicyOptions,
    H: number,
    W: number,
  ) {
    this.space31 = augmentationSpace(31, H, W, o.policy === 'trivialaugment');
    this.space10 = augmentationSpace(10, H, W, false);
  }

  private signed(space: ReturnType<typeof augmentationSpace>, op: OpName, bin: number, rng: Rng): number {
    if (op === 'Invert') return 0;
    const s = space[op];
    const m = s.magnitudes[bin];
    return s.signed && rng.next() < 0.5 ? -m : m;
  }

  /** Augments the canvas in place with draws from `rng`. */
  apply(c: Canvas, rng: Rng): void {
    switch (this.o.policy) {
      case 'none':
        return;
      case 'randaugment':
        for (let k = 0; k < this.o.ops; k++) {
          const op = RAND_OPS[rng.int(RAND_OPS.length)];
          applyOp(c, op, this.signed(this.space31, op, this.o.magnitude, rng));
        }
        return;
      case 'trivialaugment': {
        const op = RAND_OPS[rng.int(RAND_OPS.length)];
        const bin = rng.int(31);
        applyOp(c, op, this.signed(this.space31, op, bin, rng));
        return;
      }
      case 'autoaugment': {
        const sub = CIFAR10_POLICY[rng.int(CIFAR10_POLICY.length)];
        for (const [op, p, bin] of sub) {
          if (rng.next() < p) applyOp(c, op, this.signed(this.space10, op, bin, rng));
        }
        return;
      }
    }
  }
}
