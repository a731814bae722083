// Attention maps from a ViT's per-layer attention probabilities ([heads, tokens, tokens] per layer,
// token 0 = [CLS], then any other tokens before the patches (`prefix` in all: DeiT's distillation
// token, registers), then the patches in row-major order; the maps cover the patches).
//
// rollout: Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers": per layer, fuse the
//   heads (mean, max or min, or take one head), optionally zero the lowest `discard` share of the
//   weights (never the [CLS]->[CLS] one), add the residual as 0.5*A + 0.5*I, renormalize the rows, and
//   multiply the layers together (last layer on the left). The map is the [CLS] row over the patches.
//   Only that row is needed, so it is carried as a vector through the layers: O(L*T^2), not O(L*T^3).
// cls: one layer's [CLS]-to-patch attention, heads fused the same way.

export type HeadFusion = 'mean' | 'max' | 'min' | number;

export interface AttentionStack {
  layers: readonly Float32Array[]; // each heads * tokens * tokens, for one image
  heads: number;
  tokens: number;
  /** Tokens before the patches (default 1, the [CLS] token alone). */
  prefix?: number;
}

/** The heads of one layer fused into one tokens x tokens matrix (float64). */
export function fuseHeads(layer: Float32Array, heads: number, tokens: number, fusion: HeadFusion): Float64Array {
  const tt = tokens * tokens;
  const out = new Float64Array(tt);
  if (typeof fusion === 'number') {
    for (let i = 0; i < tt; i++) out[i] = layer[fusion * tt + i];
    return out;
  }
  out.set(layer.subarray(0, tt));
  for (let h = 1; h < heads; h++) {
    const o = h * tt;
    if (fusion === 'mean') for (let i = 0; i < tt; i++) out[i] += layer[o + i];
    else if (fusion === 'max') for (let i = 0; i < tt; i++) out[i] = Math.max(out[i], layer[o + i]);
    else for (let i = 0; i < tt; i++) out[i] = Math.min(out[i], layer[o + i]);
  }
  if (fusion === 'mean') for (let i = 0; i < tt; i++) out[i] /= heads;
  return out;
}

/** Zeroes the lowest `ratio` share of the weights, keeping [CLS]->[CLS] (index 0). */
function discardLowest(m: Float64Array, ratio: number): void {
  const k = Math.floor(m.length * ratio);
  if (k <= 0) return;
  const order = Array.from(m.keys()).sort((a, b) => m[a] - m[b]);
  for (let i = 0; i < k; i++) if (order[i] !== 0) m[order[i]] = 0;
}

/** Rollout: the [CLS] row over the patches (tokens - prefix values). */
export function rollout(s: AttentionStack, fusion: HeadFusion = 'mean', discard = 0): Float32Array {
  const prefix = s.prefix ?? 1;
  if (fusion === 'mean' && discard === 0) {
    const out = new Float32Array(s.tokens - prefix);
    rolloutMeanInto(s.layers, 0, s.heads, s.tokens, out, 0, prefix);
    return out;
  }
  const T = s.tokens;
  let v = new Float64Array(T);
  v[0] = 1; // e_CLS
  for (let l = s.layers.length - 1; l >= 0; l--) {
    const a = fuseHeads(s.layers[l], s.heads, T, fusion);
    discardLowest(a, discard);
    // v <- v . normalize_rows(0.5 * A + 0.5 * I)
    const next = new Float64Array(T);
    for (let i = 0; i < T; i++) {
      if (v[i] === 0) continue;
      let rowSum = 0;
      for (let j = 0; j < T; j++) rowSum += a[i * T + j];
      const scale = v[i] / (0.5 * rowSum + 0.5);
      for (let j = 0; j < T; j++) next[j] += scale * 0.5 * a[i * T + j];
      next[i] += scale * 0.5;
    }
    v = next;
  }
  return Float32Array.from(v.subarray(prefix));
}

let scratch = { v: new Float64Array(0), next: new Float64Array(0), row: new Float64Array(0) };

/**
 * The default rollout (heads averaged, nothing discarded) of image `image` in a batch of attention
 * outputs (per layer, [batch, heads, tokens, tokens]), written to out[at .. at + tokens - prefix). The same
 * arithmetic as the general path above, in the same order (so the same numbers), without building
 * the fused matrices: the server runs it for every image it classifies.
 */
export function rolloutMeanInto(layers: readonly Float32Array[], image: number, heads: number, tokens: number, out: Float32Array, at: number, prefix = 1): void {
  const T = tokens;
  const TT = T * T;
  if (scratch.v.length !== T) scratch = { v: new Float64Array(T), next: new Float64Array(T), row: new Float64Array(T) };
  let { v, next } = scratch;
  const { row } = scratch;
  v.fill(0);
  v[0] = 1;
  const base = image * heads * TT;
  for (let l = layers.length - 1; l >= 0; l--) {
    const a = layers[l];
    next.fill(0);
    for (let i = 0; i < T; i++) {
      const vi = v[i];
      if (vi === 0) continue;
      const o = base + i * T;
      let rowSum = 0;
      for (let j = 0; j < T; j++) {
        let m = a[o + j];
        for (let h = 1; h < heads; h++) m += a[o + h * TT + j];
        m /= heads;
        row[j] = m;
        rowSum += m;
      }
      const scale = vi / (0.5 * rowSum + 0.5);
      for (let j = 0; j < T; j++) next[j] += scale * 0.5 * row[j];
      next[i] += scale * 0.5;
    }
    [v, next] = [next, v];
  }
  for (let j = prefix; j < T; j++) out[at + j - prefix] = v[j];
}

/** One layer's [CLS] attention over the patches. */
export function clsAttention(s: AttentionStack, layer: number, fusion: HeadFusion = 'mean'): Float32Array {
  const a = fuseHeads(s.layers[layer], s.heads, s.tokens, fusion);
  return Float32Array.from(a.subarray(s.prefix ?? 1, s.tokens));
}

/** Rows of the patch grid, values scaled to [0, 1] by the maximum (as the rollout papers draw them). */
export function toGrid(values: Float32Array, rows: number, cols: number): number[][] {
  let max = 0;
  for (const v of values) max = Math.max(max, v);
  const scale = max > 0 ? 1 / max : 0;
  return Array.from({ length: rows }, (_, r) => Array.from(values.subarray(r * cols, (r + 1) * cols), (v) => Math.round(v * scale * 1e5) / 1e5));
}

let relevanceScratch = { r: new Float64Array(0), next: new Float64Array(0), abar: new Float64Array(0) };

/**
 * Gradient-weighted attention relevance (Chefer, Gur & Wolf, ICCV 2021) for one image of a batch:
 * R = I; for each block l, first to last, Abar_l = mean over heads of max(0, dy_c/dA_l * A_l) and
 * R <- R + Abar_l R; the map is R[0, prefix:]. Only row 0 of the product (I + Abar_L) ... (I + Abar_1) is
 * needed, so it is carried as a row vector from the last block down: T^2 work a block, not T^3.
 * `layers` and `grads` hold [n, heads, tokens, tokens] per block.
 */
export function relevanceInto(layers: readonly Float32Array[], grads: readonly Float32Array[], image: number, heads: number, tokens: number, out: Float32Array, at: number, prefix = 1): void {
  const T = tokens;
  const TT = T * T;
  if (relevanceScratch.abar.length !== TT) relevanceScratch = { r: new Float64Array(T), next: new Float64Array(T), abar: new Float64Array(TT) };
  let { r, next } = relevanceScratch;
  const { abar } = relevanceScratch;
  r.fill(0);
  r[0] = 1;
  for (let l = layers.length - 1; l >= 0; l--) {
    abar.fill(0);
    const a = layers[l];
    const g = grads[l];
    for (let h = 0; h < heads; h++) {
      const base = (image * heads + h) * TT;
      for (let i = 0; i < TT; i++) {
        const v = a[base + i] * g[base + i];
        if (v > 0) abar[i] += v / heads;
      }
    }
    // next = r + r Abar
    next.set(r);
    for (let i = 0; i < T; i++) {
      const ri = r[i];
      if (ri === 0) continue;
      const row = i * T;
      for (let j = 0; j < T; j++) next[j] += ri * abar[row + j];
    }
    [r, next] = [next, r];
  }
  for (let j = prefix; j < T; j++) out[at + j - prefix] = r[j];
}

/**
 * Gradient x input over each patch: sum over the patch's pixels and channels of |x * dy_c/dx|, what the
 * pixels of a patch contribute to class c's logit to first order, before any attention (a
 * convolutional tokenizer mixes neighbouring pixels into each token). `pixels` and `grads` hold
 * [n, channels, height, width]; the grid [rows, cols] tiles the image.
 */
export function gradInputInto(pixels: Float32Array, grads: Float32Array, image: number, dims: readonly [number, number, number], grid: readonly [number, number], out: Float32Array, at: number): void {
  const [channels, height, width] = dims;
  const [rows, cols] = grid;
  const ph = height / rows;
  const pw = width / cols;
  out.fill(0, at, at + rows * cols);
  const base = image * channels * height * width;
  for (let c = 0; c < channels; c++)
    for (let y = 0; y < height; y++) {
      const row = Math.floor(y / ph) * cols;
      const o = base + (c * height + y) * width;
      for (let x = 0; x < width; x++) out[at + row + Math.floor(x / pw)] += Math.abs(pixels[o + x] * grads[o + x]);
    }
}

/**
 * The `combined` explanation (the default before `lastLayerRelevanceInto`), per patch: Chefer's relevance (how the attention routes class
 * c's evidence to the patch) plus the attention rollout (how much of the attention flow reaches it at
 * all, for any class), each scaled to a maximum of 1 in the image, times the square root of gradient x
 * input (what the patch's pixels carry of the class, to first order). Rollout keeps an order among
 * the patches Chefer's rule leaves near zero, which is where it fell behind rollout on the compact
 * model's negative perturbation curve. Chosen with bench/explain-select.ts (the perturbation,
 * deletion and insertion tests, in-process) on CIFAR-10 test images 5,000-5,299, apart from the 1,000
 * the README reports, among Chefer's rule alone, gradient x input alone (at the pixels and at the
 * embedded tokens), Chefer's rule or rollout times gradient x input to the power 1, 0.5 or 0.25,
 * gradient-weighted rollout and this sum. It needs a backward pass through every block and the
 * tokenizer (~3x a classification). `chefer`, `rollout` and `gradInput` hold `patches` values per image.
 */
export function combinedRelevance(chefer: Float32Array, rollout: Float32Array, gradInput: Float32Array, patches: number): Float32Array<ArrayBuffer> {
  const out = new Float32Array(chefer.length);
  for (let at = 0; at < chefer.length; at += patches) {
    let cmax = 0;
    let rmax = 0;
    for (let p = at; p < at + patches; p++) {
      cmax = Math.max(cmax, chefer[p]);
      rmax = Math.max(rmax, rollout[p]);
    }
    for (let p = at; p < at + patches; p++) out[p] = ((cmax > 0 ? chefer[p] / cmax : 0) + (rmax > 0 ? rollout[p] / rmax : 0)) * Math.sqrt(gradInput[p]);
  }
  return out;
}

/** The share of each token's relevance that stays with it at each block below the last, in
 *  lastLayerRelevanceInto (rollout's is 0.5). */
export const ROLL_IDENTITY = 0.7;

/**
 * The default explanation, `relevance`, for one image of a batch: Chefer's rule at the last block
 * only, rolled out through the blocks below. r = e_CLS + sum over the prefix rows i of
 * Abar_L[i, :], with Abar_L = mean over heads of max(0, dy_c/dA_L * A_L) (the gradient of class c's
 * logit with respect to the last block's attention probabilities); then for each block l below, last
 * to first, r <- r ((1 - w) mean_h A_l + w I), w = ROLL_IDENTITY; the map is r over the patches.
 * Only the last block's attention gradient is needed, which a backward through that block alone
 * gives (the light explanation graph, trainer/export.ts), so a classification with its explanation
 * costs about one classification. Chosen with bench/explain-select.ts on CIFAR-10 test images
 * 5,000-5,299 (apart from the 1,000 the README reports) among forward-cost rules (this one with w =
 * 0.5, 0.6, 0.7, 0.8, 0.9 or 1, w from the norms of the residual stream and of the attention's
 * output, value-norm-weighted rollout): w = 0.7 was ahead of rollout and cls on every test for both
 * bundled models, as no other constant was (w from the norms was too, by less on the compact model's
 * positive curve, and it needs the residual stream, which an imported graph does not name). `layers` hold [n, heads, tokens, tokens] per block,
 * `lastGrad` the last block's gradient, the same shape.
 */
export function lastLayerRelevanceInto(layers: readonly Float32Array[], lastGrad: Float32Array, image: number, heads: number, tokens: number, out: Float32Array, at: number, prefix = 1, identity = ROLL_IDENTITY): void {
  const T = tokens;
  const TT = T * T;
  const L = layers.length;
  let r = new Float64Array(T);
  let next = new Float64Array(T);
  r[0] = 1;
  const top = layers[L - 1];
  for (let h = 0; h < heads; h++) {
    const base = (image * heads + h) * TT;
    for (let i = 0; i < prefix; i++) {
      for (let j = 0; j < T; j++) {
        const v = top[base + i * T + j] * lastGrad[base + i * T + j];
        if (v > 0) r[j] += v / heads;
      }
    }
  }
  for (let l = L - 2; l >= 0; l--) {
    const a = layers[l];
    next.fill(0);
    const share = (1 - identity) / heads;
    for (let i = 0; i < T; i++) {
      const ri = r[i];
      if (ri === 0) continue;
      next[i] += ri * identity;
      for (let h = 0; h < heads; h++) {
        const row = (image * heads + h) * TT + i * T;
        for (let j = 0; j < T; j++) next[j] += ri * share * a[row + j];
      }
    }
    [r, next] = [next, r];
  }
  for (let j = prefix; j < T; j++) out[at + j - prefix] = r[j];
}
