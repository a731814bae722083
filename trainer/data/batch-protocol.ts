// The messages between the trainer's batch loader (loader.ts) and its batch worker (batch-worker.ts).

export interface BatchRequest {
  id: number;
  indices: Uint32Array;
  /** The state of the generator that draws this batch's augmentations. */
  rngState: number[];
  /** Which images are mirrored (1), when the flips are not drawn (alternating flips). */
  flips?: Uint8Array;
}

export type BatchReply = { id: number; pixels: Float32Array; targets: Float32Array; size: number } | { id: number; error: string };
