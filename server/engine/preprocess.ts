// The service's side of the image pipeline (runtime/image.ts, shared with training and vitrine eval):
// decodes go through the server's gate, and the pipeline's refusals become HTTP errors (415 not an
// image we decode, 400 unreadable, 413 over the pixel limit). The model input stays RGB bytes here:
// the inference worker normalizes it into its batch (engine/job.ts ModelInput).

import { type DecodedImage, ImageError, decodeImage as decode } from '../../runtime/image.js';
import type { Geometry } from '../../runtime/pixels.js';
import { Errors } from '../errors.js';
import type { Gate } from '../gate.js';

const AS_HTTP = {
  unsupported: Errors.unsupportedMedia,
  unreadable: Errors.badImage,
  'too-large': Errors.tooLarge,
  timeout: Errors.timeout,
} as const;

/** `deadline` (performance.now() time): past it a decode still waiting for its slot, or still
 *  running in sharp, is answered 504 (sharp stops it, which frees the slot). */
export async function decodeImage(
  bytes: Buffer,
  spec: Geometry,
  maxPixels: number,
  gate?: Gate,
  deadline = Infinity,
): Promise<DecodedImage> {
  try {
    // sharp's timeout is whole seconds, counted from when the decode starts
    const timeoutS = () => (Number.isFinite(deadline) ? Math.max(1, Math.ceil((deadline - performance.now()) / 1000)) : 0);
    return await decode(bytes, spec, { maxPixels, timeoutS, ...(gate ? { schedule: (decode) => gate.run(decode, deadline) } : {}) });
  } catch (err) {
    throw err instanceof ImageError ? AS_HTTP[err.kind](err.message) : err;
  }
}
