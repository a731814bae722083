// The service's side of the image pipeline (runtime/image.ts, shared with training and vitrine eval):
// decodes go through the server's gate, and the pipeline's refusals become HTTP errors (415 not an
// image we decode, 400 unreadable, 413 over the pixel limit).

import { ImageError, type PreparedImage, prepareImage as prepare } from '../runtime/image.js';
import type { ImageSpec } from '../runtime/pixels.js';
import { Errors } from './errors.js';
import type { Gate } from './gate.js';

const AS_HTTP = { unsupported: Errors.unsupportedMedia, unreadable: Errors.badImage, 'too-large': Errors.tooLarge } as const;

export async function prepareImage(bytes: Buffer, spec: ImageSpec, maxPixels: number, gate?: Gate): Promise<PreparedImage> {
  try {
    return await prepare(bytes, spec, { maxPixels, ...(gate ? { schedule: (decode) => gate.run(decode) } : {}) });
  } catch (err) {
    throw err instanceof ImageError ? AS_HTTP[err.kind](err.message) : err;
  }
}
