// What one request to the batcher asks for and what it gets back; and image i's share of a relevance
// batch's maps.

import type { ExplanationGraph, Explanations, ModelInput, RunReply } from './inference-protocol.js';

export type { ExplanationGraph, ModelInput } from './inference-protocol.js';

/** A run through an explanation graph for one class (-1: the top prediction, where the graph can). */
export interface Explain {
  class: number;
  graph: ExplanationGraph;
}

/** What a request wants besides logits and the default rollout. */
export interface JobOptions {
  /** Return every layer's attention probabilities in the result. */
  attentions?: boolean;
  /** Run an explanation graph instead: the result's `relevance` is the default map, and a full graph's
   *  `explanations` the others (batched with the model's other jobs for that graph). */
  explain?: Explain;
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
  /** The queue (queueKey): the model's, or one of its explanation graphs' (they batch apart). */
  key: string;
  input: ModelInput;
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

/** A job's queue: the model version's (its key: `<name>` or `<name>/v<n>`), or `<key>/<graph>` for one of
 *  its explanation graphs' (a model's name, a folder's, has no '/'). */
export const queueKey = (model: string, explain?: Explain): string => (explain ? `${model}/${explain.graph}` : model);

/** A queue's metrics label: the model's name (whatever its version), "<model> relevance" for its light
 *  explanation graph's queue and "<model> explanations" for its full one's. */
export function queueLabel(key: string): string {
  const [model, ...rest] = key.split('/');
  const graph = rest.find((p) => p === 'light' || p === 'full');
  return graph === undefined ? model : `${model} ${graph === 'full' ? 'explanations' : 'relevance'}`;
}

/** Work under way per model version (its jobs not yet settled, its batches still running), so that a
 *  version is released only once it has none; and in all, so that a server drains before it stops. */
export class Activity {
  private readonly counts = new Map<string, number>();
  private readonly waiters = new Map<string | null, (() => void)[]>();

  add(key: string): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  done(key: string): void {
    const n = (this.counts.get(key) ?? 1) - 1;
    if (n > 0) return void this.counts.set(key, n);
    this.counts.delete(key);
    this.wake(key);
    if (this.counts.size === 0) this.wake(null);
  }

  /** Resolves once the version (or, without a key, every version) has nothing queued or running. */
  idle(key: string | null = null): Promise<void> {
    if (key === null ? this.counts.size === 0 : !this.counts.has(key)) return Promise.resolve();
    return new Promise((r) => this.waiters.set(key, [...(this.waiters.get(key) ?? []), r]));
  }

  private wake(key: string | null): void {
    for (const w of this.waiters.get(key) ?? []) w();
    this.waiters.delete(key);
  }
}
