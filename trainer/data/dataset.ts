// An image data set held in memory as uint8, one image after another in CHW order, with labels.
// CIFAR-10 (either format) and image folders are loaded into this one shape.

export interface ImageDataset {
  readonly images: Uint8Array; // count * channels * height * width
  readonly labels: Uint16Array; // count
  readonly count: number;
  readonly channels: number;
  readonly height: number;
  readonly width: number;
  readonly classes: readonly string[];
}

export function makeDataset(
  images: Uint8Array,
  labels: Uint16Array,
  shape: { channels: number; height: number; width: number },
  classes: readonly string[],
): ImageDataset {
  const per = shape.channels * shape.height * shape.width;
  if (images.length !== labels.length * per)
    throw new Error(`data set: ${images.length} bytes for ${labels.length} images of ${per} bytes`);
  for (const l of labels) if (l >= classes.length) throw new Error(`data set: label ${l} but only ${classes.length} classes`);
  return { images, labels, count: labels.length, ...shape, classes };
}

export function imageSize(d: ImageDataset): number {
  return d.channels * d.height * d.width;
}

/** Images per class, for reports. */
export function classCounts(d: ImageDataset): number[] {
  const counts = new Array<number>(d.classes.length).fill(0);
  for (const l of d.labels) counts[l]++;
  return counts;
}

/** A subset by index (copies). */
export function subset(d: ImageDataset, indices: ArrayLike<number>): ImageDataset {
  const per = imageSize(d);
  const images = new Uint8Array(indices.length * per);
  const labels = new Uint16Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    const k = indices[i];
    images.set(d.images.subarray(k * per, (k + 1) * per), i * per);
    labels[i] = d.labels[k];
  }
  return { ...d, images, labels, count: indices.length };
}
