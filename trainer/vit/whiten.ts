// A whitening start for the convolutional tokenizer's first layer (as airbench initializes its first
// convolution): the k x k x C patches of the training images, normalized as the model sees them, give
// a second-moment matrix; its leading eigenvectors, each divided by sqrt(eigenvalue + eps), become
// filters with both signs (after the ReLU, the pair passes the whole of each direction). The filters'
// outputs then have about unit variance and are uncorrelated over the images' patches.

import type { ImageDataset } from '../data/dataset.js';
import { normalizationTables } from '../../runtime/pixels.js';

export const WHITEN_EPS = 5e-4;

/** Eigenvalues (descending) and unit eigenvectors (rows, in the same order) of a symmetric n x n
 *  matrix, by cyclic Jacobi rotations (n is at most a few dozen here). */
export function symmetricEigen(matrix: ArrayLike<number>, n: number): { values: Float64Array; vectors: Float64Array } {
  const a = Float64Array.from(matrix);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += a[p * n + q] ** 2;
    if (off < 1e-22) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q];
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          // columns p and q of a
          const akp = a[k * n + p];
          const akq = a[k * n + q];
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          // rows p and q of a
          const apk = a[p * n + k];
          const aqk = a[q * n + k];
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p];
          const vkq = v[k * n + q];
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => a[j * n + j] - a[i * n + i]);
  const values = Float64Array.from(order, (i) => a[i * n + i]);
  const vectors = new Float64Array(n * n);
  order.forEach((col, row) => {
    for (let k = 0; k < n; k++) vectors[row * n + k] = v[k * n + col];
  });
  return { values, vectors };
}

/** The second moment (mean of x x^T) of the k x k patches, every `stride` pixels within the image,
 *  of the first `limit` images, normalized with mean/std as the model's input. */
export function patchMoment(
  d: ImageDataset,
  norm: { mean: readonly number[]; std: readonly number[] },
  k: number,
  limit = 5000,
  stride = 2,
): Float64Array {
  const { channels: C, height: H, width: W } = d;
  const dims = C * k * k;
  const luts = normalizationTables(norm);
  const m = new Float64Array(dims * dims);
  const x = new Float64Array(dims);
  const per = C * H * W;
  let count = 0;
  for (let img = 0; img < Math.min(limit, d.count); img++) {
    const base = img * per;
    for (let y = 0; y + k <= H; y += stride) {
      for (let xx = 0; xx + k <= W; xx += stride) {
        let i = 0;
        for (let c = 0; c < C; c++)
          for (let u = 0; u < k; u++) for (let v = 0; v < k; v++) x[i++] = luts[c][d.images[base + (c * H + y + u) * W + xx + v]];
        for (let r = 0; r < dims; r++) {
          const xr = x[r];
          for (let s = r; s < dims; s++) m[r * dims + s] += xr * x[s];
        }
        count++;
      }
    }
  }
  if (count === 0) throw new Error(`whiten_init: no ${k}x${k} patch fits the ${H}x${W} images`);
  for (let r = 0; r < dims; r++) {
    for (let s = r; s < dims; s++) {
      m[r * dims + s] /= count;
      m[s * dims + r] = m[r * dims + s];
    }
  }
  return m;
}

/** Filters [out, C, k, k] (flattened) that whiten the images' patches: out/2 eigenvector pairs (v and
 *  -v, scaled), the leading ones first. `out` must be even and at most twice the patch's size. */
export function whiteningFilters(
  d: ImageDataset,
  norm: { mean: readonly number[]; std: readonly number[] },
  k: number,
  out: number,
  eps = WHITEN_EPS,
): Float32Array {
  const dims = d.channels * k * k;
  if (out % 2 !== 0 || out > 2 * dims)
    throw new Error(
      `whiten_init: the first convolution's ${out} filters must be an even ` +
        `number up to ${2 * dims} (both signs of each of the ${dims} ` +
        `directions of a ${k}x${k}x${d.channels} patch)`,
    );
  const { values, vectors } = symmetricEigen(patchMoment(d, norm, k), dims);
  const w = new Float32Array(out * dims);
  for (let j = 0; j < out / 2; j++) {
    const scale = 1 / Math.sqrt(Math.max(0, values[j]) + eps);
    for (let i = 0; i < dims; i++) {
      w[j * dims + i] = vectors[j * dims + i] * scale;
      w[(j + out / 2) * dims + i] = -vectors[j * dims + i] * scale;
    }
  }
  return w;
}
