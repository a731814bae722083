// Accuracy, mean cross-entropy and the confusion matrix of a classifier over a data set.

import type { ImageDataset } from '../data/dataset.js';
import { NO_AUGMENT, fillBatch } from '../data/augment.js';
import { Rng } from '../nn/random.js';
import { mirrorImages } from '../../runtime/pixels.js';

/** Runs the model on a normalized batch (n, C, H, W) and returns its logits (n, classes). */
export type LogitsFn = (pixels: Float32Array, n: number) => Promise<Float32Array>;

export interface Evaluation {
  count: number;
  loss: number;
  accuracy: number;
  perClass: number[];
  /** confusion[true][predicted] */
  confusion: number[][];
}

export function argmax(row: ArrayLike<number>, offset: number, n: number): number {
  let best = 0;
  for (let j = 1; j < n; j++) if (row[offset + j] > row[offset + best]) best = j;
  return best;
}

/** -log softmax(logits)[label] for one row, computed stably. */
export function rowCrossEntropy(logits: ArrayLike<number>, offset: number, n: number, label: number): number {
  let max = -Infinity;
  for (let j = 0; j < n; j++) max = Math.max(max, logits[offset + j]);
  let sum = 0;
  for (let j = 0; j < n; j++) sum += Math.exp(logits[offset + j] - max);
  return max + Math.log(sum) - logits[offset + label];
}

/** Test-time augmentation: none, or 'flip': the logits averaged over each image and its mirror image
 *  (left-right), both in one batch of 2n. */
export type Tta = 'none' | 'flip';
export const TTAS: readonly Tta[] = Object.freeze(['none', 'flip']);

export async function evaluate(
  run: LogitsFn,
  data: ImageDataset,
  o: { mean: readonly number[]; std: readonly number[]; rescale?: number; batchSize?: number; tta?: Tta },
): Promise<Evaluation> {
  const K = data.classes.length;
  const B = o.batchSize ?? 500;
  const per = data.channels * data.height * data.width;
  const flip = o.tta === 'flip';
  const confusion = Array.from({ length: K }, () => new Array<number>(K).fill(0));
  const pixels = new Float32Array((flip ? 2 : 1) * B * per);
  const targets = new Float32Array(B * K);
  let loss = 0;
  let correct = 0;
  for (let start = 0; start < data.count; start += B) {
    const n = Math.min(B, data.count - start);
    const indices = Uint32Array.from({ length: n }, (_, i) => start + i);
    fillBatch(
      data,
      indices,
      { mean: o.mean, std: o.std, rescale: o.rescale, numClasses: K, labelSmoothing: 0, augment: NO_AUGMENT },
      new Rng(0),
      pixels,
      targets,
    );
    let logits: ArrayLike<number>;
    if (flip) {
      // the mirrors after the images, one run of 2n; the logits of each pair averaged
      mirrorImages(pixels, pixels.subarray(n * per), n, data.channels, data.height, data.width);
      const both = await run(pixels.subarray(0, 2 * n * per), 2 * n);
      logits = Float32Array.from({ length: n * K }, (_, j) => (both[j] + both[n * K + j]) / 2);
    } else logits = await run(pixels.subarray(0, n * per), n);
    for (let i = 0; i < n; i++) {
      const label = data.labels[start + i];
      const pred = argmax(logits, i * K, K);
      confusion[label][pred]++;
      if (pred === label) correct++;
      loss += rowCrossEntropy(logits, i * K, K, label);
    }
  }
  const perClass = confusion.map((row, k) => {
    const total = row.reduce((a, b) => a + b, 0);
    return total > 0 ? row[k] / total : 0;
  });
  return { count: data.count, loss: loss / data.count, accuracy: correct / data.count, perClass, confusion };
}

/** The confusion matrix and per-class accuracy as aligned text. */
export function formatEvaluation(e: Evaluation, classes: readonly string[]): string {
  const w = Math.max(5, ...classes.map((c) => c.length));
  const lines = [
    `accuracy ${(100 * e.accuracy).toFixed(2)}% on ${e.count} images, mean cross-entropy ${e.loss.toFixed(4)}`,
    '',
    'per class:',
  ];
  // rows of classes the data has no images of stay out (a 10-class model on a 3-class folder)
  const present = classes.map((_, k) => e.confusion[k].some((v) => v > 0));
  classes.forEach(
    (c, k) =>
      present[k] &&
      lines.push(
        `  ${c.padEnd(w)}  ${(100 * e.perClass[k]).toFixed(1).padStart(5)}%  ` +
          `(${e.confusion[k].reduce((a, b) => a + b, 0)} ` +
          `image${e.confusion[k].reduce((a, b) => a + b, 0) === 1 ? '' : 's'})`,
      ),
  );
  const absent = classes.filter((_, k) => !present[k]);
  if (absent.length > 0) lines.push(`  no images of: ${absent.join(', ')}`);
  lines.push('', `confusion matrix (rows: true class, columns: predicted):`);
  // each column as wide as its label (one of over 14 characters shortened with an ellipsis) or its counts
  const heads = classes.map((c) => (c.length > 14 ? `${c.slice(0, 13)}…` : c));
  const widths = heads.map((h, j) => 1 + Math.max(h.length, ...e.confusion.map((row) => String(row[j]).length)));
  lines.push(`  ${''.padEnd(w)}  ${heads.map((h, j) => h.padStart(widths[j])).join('')}`);
  classes.forEach(
    (c, k) => present[k] && lines.push(`  ${c.padEnd(w)}  ${e.confusion[k].map((v, j) => String(v).padStart(widths[j])).join('')}`),
  );
  return lines.join('\n');
}
