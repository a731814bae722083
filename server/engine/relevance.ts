// The class-specific maps, from an explanation graph's attention gradients (and the input's): Chefer's
// rule over every block, gradient x input per patch, their combination with rollout (`combined`), and
// the default explanation, Chefer's rule at the last block rolled out below (`relevance`). Each takes
// one image of a batch ([n, heads, tokens, tokens] per block) and writes its patches' values.

let relevanceScratch = { r: new Float64Array(0), next: new Float64Array(0), abar: new Float64Array(0) };

/**
 * Gradient-weighted attention relevance (Chefer, Gur & Wolf, ICCV 2021) for one image of a batch:
 * R = I; for each block l, first to last, Abar_l = mean over heads of max(0, dy_c/dA_l * A_l) and
 * R <- R + Abar_l R; the map is R[0, prefix:]. Only row 0 of the product (I + Abar_L) ... (I + Abar_1) is
 * needed, so it is carried as a row vector from the last block down: T^2 work a block, not T^3.
 * `layers` and `grads` hold [n, heads, tokens, tokens] per block.
 */
export function relevanceInto(
  layers: readonly Float32Array[],
  grads: readonly Float32Array[],
  image: number,
  heads: number,
  tokens: number,
  out: Float32Array,
  at: number,
  prefix = 1,
): void {
  const T = tokens;
  const TT = T * T;
  if (relevanceScratch.abar.length !== TT)
    relevanceScratch = { r: new Float64Array(T), next: new Float64Array(T), abar: new Float64Array(TT) };
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
export function gradInputInto(
  pixels: Float32Array,
  grads: Float32Array,
  image: number,
  dims: readonly [number, number, number],
  grid: readonly [number, number],
  out: Float32Array,
  at: number,
): void {
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
 * The `combined` explanation, per patch: Chefer's relevance (how the attention routes class
 * c's evidence to the patch) plus the attention rollout (how much of the attention flow reaches it at
 * all, for any class), each scaled to a maximum of 1 in the image, times the square root of gradient x
 * input (what the patch's pixels carry of the class, to first order). Rollout keeps an order among
 * the patches Chefer's rule leaves near zero, which is where it fell behind rollout on the compact
 * model's negative perturbation curve. Chosen with bench/explain-select.ts (the perturbation,
 * deletion and insertion tests, in-process) on CIFAR-10 test images 5,000-5,299, apart from the 1,000
 * docs/explanations.md reports, among Chefer's rule alone, gradient x input alone (at the pixels and at the
 * embedded tokens), Chefer's rule or rollout times gradient x input to the power 1, 0.5 or 0.25,
 * gradient-weighted rollout and this sum. It needs a backward pass through every block and the
 * tokenizer (~3x a classification). `chefer`, `rollout` and `gradInput` hold `patches` values per image.
 */
export function combinedRelevance(
  chefer: Float32Array,
  rollout: Float32Array,
  gradInput: Float32Array,
  patches: number,
): Float32Array<ArrayBuffer> {
  const out = new Float32Array(chefer.length);
  for (let at = 0; at < chefer.length; at += patches) {
    let cmax = 0;
    let rmax = 0;
    for (let p = at; p < at + patches; p++) {
      cmax = Math.max(cmax, chefer[p]);
      rmax = Math.max(rmax, rollout[p]);
    }
    for (let p = at; p < at + patches; p++)
      out[p] = ((cmax > 0 ? chefer[p] / cmax : 0) + (rmax > 0 ? rollout[p] / rmax : 0)) * Math.sqrt(gradInput[p]);
  }
  return out;
}

/** The share of the relevance that stays on each token over all the blocks below the last, in
 *  lastLayerRelevanceInto: each of the L - 1 blocks keeps ROLL_SHARE^(1 / (L - 1)) of it in place. */
export const ROLL_SHARE = 0.6;

/** The identity weight of each block below the last for a model of `layers` blocks, keeping `share`
 *  over them all. */
export const rollIdentity = (layers: number, share = ROLL_SHARE): number => (layers > 1 ? share ** (1 / (layers - 1)) : 1);

/**
 * The default explanation, `relevance`, for one image of a batch: Chefer's rule at the last block
 * only, rolled out through the blocks below. r = e_CLS + sum over the prefix rows i of
 * Abar_L[i, :], with Abar_L = mean over heads of max(0, dy_c/dA_L * A_L) (the gradient of class c's
 * logit with respect to the last block's attention probabilities); then for each block l below, last
 * to first, r <- r ((1 - w) mean_h A_l + w I), w = rollIdentity(L) (the tokens keep ROLL_SHARE of
 * their relevance in place over all the blocks below, whatever the depth: 0.6 for a 2-block model,
 * 0.84 a block for the 4-block seed ViT); the map is r over the patches.
 * Only the last block's attention gradient is needed, which a backward through that block alone
 * gives (the light explanation graph, trainer/export.ts), so a classification with its explanation
 * costs about one classification. Chosen with bench/explain-select.ts on CIFAR-10 test images
 * 5,000-5,999 (apart from the 1,000 docs/explanations.md reports) among forward-cost rules: a constant w (0.5 to
 * 1), this share (0.5 or 0.6), w from the norms of the residual stream and of the attention's output,
 * value-norm-weighted rollout. A constant that suits the 2-block model blurs the 4-block one (or the
 * reverse); the share of 0.6 was ahead of rollout and cls on every test for both bundled models with
 * the largest margins. `layers` hold [n, heads, tokens, tokens] per block, `lastGrad` the last
 * block's gradient, the same shape.
 */
export function lastLayerRelevanceInto(
  layers: readonly Float32Array[],
  lastGrad: Float32Array,
  image: number,
  heads: number,
  tokens: number,
  out: Float32Array,
  at: number,
  prefix = 1,
  identity = rollIdentity(layers.length),
): void {
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
