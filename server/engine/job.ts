// What one request to the batcher asks for and what it gets back; and image i's share of a relevance
// batch's maps.

import type { Explanations, RunReply } from './inference-protocol.js';

/** What a request wants besides logits and the default rollout. */
export interface JobOptions {
  /** Return every layer's attention probabilities in the result. */
  attentions?: boolean;
  /** Run the explanation graph for this class instead (-1: the top prediction, where the graph can): the
   *  result's `relevance` is its map (batched with other relevance jobs of the model). */
  relevanceClass?: number;
  /** With relevanceClass: run the full explanation graph (every block's attention gradient and the
   *  input's), which the chefer, grad-input and combined maps need; the default map, relevance, needs
   *  only the last block's, from the light graph when the model has one. */
  full?: boolean;
}

export interface JobResult {
  logits: Float32Array;
  rollout: Float32Array | null;
  relevance: Float32Array | null; // tokens - prefix, for a relevance job: the default explanation
  /** A full relevance job's other maps (tokens - prefix each): Chefer's rule, and gradient x input and
   *  the combined map when the graph gives the input's gradient. */
  explanations: Explanations | null;
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
  const part = (a: Float32Array | null) => (a ? slice(a, i, per) : null);
  return {
    relevance: part(r.relevance ?? null),
    explanations: e ? { chefer: slice(e.chefer, i, per), gradInput: part(e.gradInput), combined: part(e.combined) } : null,
  };
}

export interface BatcherOptions {
  maxBatch: number;
  maxDelayMs: number;
  maxQueue: number;
  timeoutMs: number;
}

/** A request's image waiting in (or leaving) a batcher queue. */
export interface Job {
  model: string;
  /** The queue: the model's, or its relevance queue (relevance jobs run another graph, so they batch apart). */
  key: string;
  pixels: Float32Array;
  options: JobOptions;
  enqueuedAt: number;
  settled: boolean;
  timer: NodeJS.Timeout;
  resolve: (r: JobResult) => void;
  reject: (e: Error) => void;
}

export interface BatchObserver {
  batch(model: string, size: number, inferenceMs: number): void;
  depth(model: string, depth: number): void;
}
