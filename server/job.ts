// What one request to the batcher asks for and what it gets back; and image i's share of a relevance
// batch's maps.

import type { RunReply } from '../runtime/worker-protocol.js';

/** What a request wants besides logits and the default rollout. */
export interface JobOptions {
  /** Return every layer's attention probabilities in the result. */
  attentions?: boolean;
  /** Run the explanation graph for this class instead (-1: the top prediction, where the graph can): the
   *  result's `relevance` is its map (batched with other relevance jobs of the model). */
  relevanceClass?: number;
}

export interface JobResult {
  logits: Float32Array;
  rollout: Float32Array | null;
  relevance: Float32Array | null; // tokens - prefix, for a relevance job: the default explanation
  /** A relevance job's other maps (tokens - prefix each): Chefer's rule, and gradient x input when the graph gives it. */
  explanations: { chefer: Float32Array; gradInput: Float32Array | null } | null;
  attentions: Float32Array[] | null; // per layer, heads * tokens * tokens (when asked for)
  heads: number;
  tokens: number;
  /** Tokens before the patches ([CLS] and any others). */
  prefix: number;
  batchSize: number;
  queueMs: number;
  inferenceMs: number;
}

/** Image i's part of a batch array of `per` values an image: a view, not a copy. */
export const slice = (a: Float32Array, i: number, per: number) => a.subarray(i * per, (i + 1) * per);

/** Image i's maps of a relevance batch. */
export function explanationsOf(r: RunReply, i: number): Pick<JobResult, 'relevance' | 'explanations'> {
  const per = r.tokens - r.prefix;
  const e = r.explanations;
  return { relevance: r.relevance ? slice(r.relevance, i, per) : null, explanations: e ? { chefer: slice(e.chefer, i, per), gradInput: e.gradInput ? slice(e.gradInput, i, per) : null } : null };
}

