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
export function rolloutMeanInto(
  layers: readonly Float32Array[],
  image: number,
  heads: number,
  tokens: number,
  out: Float32Array,
  at: number,
  prefix = 1,
): void {
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
  return Array.from({ length: rows }, (_, r) =>
    Array.from(values.subarray(r * cols, (r + 1) * cols), (v) => Math.round(v * scale * 1e5) / 1e5),
  );
}
