// Dynamic batching: concurrent requests for one model version are run together. When a worker is free,
// the oldest waiting requests go to it as soon as a batch is full or the oldest has waited max-delay,
// or at once while another worker is free too (a request that came meanwhile would have a worker of
// its own); while every worker is busy, requests gather and leave as one batch. The queue is bounded (503,
// Retry-After) and every request has a deadline (504 when passed).

import { Errors, ServiceError } from '../errors.js';
import type { RunReply, RunRequest } from './inference-protocol.js';
import {
  type BatchObserver,
  type BatcherOptions,
  type Job,
  type JobOptions,
  type JobResult,
  type ModelInput,
  Activity,
  explanationsOf,
  queueKey,
  queueLabel,
  slice,
} from './job.js';
import type { WorkerPool } from './pool.js';

export type { BatchObserver, BatcherOptions, Explain, ExplanationGraph, JobOptions, JobResult, ModelInput } from './job.js';

/** What the batcher needs of the worker pool (a fake one in the batcher's own tests). */
export type BatchRunner = Pick<WorkerPool, 'idle' | 'idleCount' | 'run' | 'on'>;

type Slot = NonNullable<ReturnType<WorkerPool['idle']>>;

export class Batcher {
  private readonly queues = new Map<string, Job[]>();
  private queued = 0;
  /** Per model version, its jobs not yet settled and its batches still running. */
  private readonly activity = new Activity();
  private wake: NodeJS.Timeout | null = null;
  private flushing = false; // draining: queued jobs leave as soon as a worker is free

  constructor(
    private readonly pool: BatchRunner,
    private readonly o: BatcherOptions,
    private readonly observer: BatchObserver,
  ) {
    pool.on('free', () => this.pump());
  }

  depth(model?: string): number {
    return model ? (this.queues.get(model)?.length ?? 0) : this.queued;
  }

  submit(model: string, input: ModelInput, options: JobOptions = {}): Promise<JobResult> {
    if (this.queued >= this.o.maxQueue) {
      return Promise.reject(
        Errors.overloaded(`the inference queue is full (${this.o.maxQueue} requests waiting); retry shortly`, { 'retry-after': '1' }),
      );
    }
    return new Promise((resolve, reject) => {
      const key = queueKey(model, options.explain);
      const job: Job = {
        model,
        key,
        input,
        options,
        enqueuedAt: performance.now(),
        settled: false,
        resolve,
        reject,
        timer: setTimeout(() => this.expire(job), this.o.timeoutMs),
      };
      const q = this.queues.get(key) ?? this.queues.set(key, []).get(key)!;
      q.push(job);
      this.activity.add(model);
      this.queued++;
      this.observer.depth(queueLabel(key), q.length);
      this.pump();
    });
  }

  /** The images of one request (with one options for all, or one each): all queued, or none (503)
   *  when the queue has no room for them all, so that a refused request leaves no work behind it. */
  submitAll(model: string, images: readonly ModelInput[], options: JobOptions | readonly JobOptions[] = {}): Promise<JobResult[]> {
    if (images.length === 1)
      return this.submit(model, images[0], Array.isArray(options) ? options[0] : (options as JobOptions)).then((r) => [r]);
    if (images.length > 0 && this.queued + images.length > this.o.maxQueue) {
      const room = Math.max(0, this.o.maxQueue - this.queued);
      return Promise.reject(
        Errors.overloaded(
          `the inference queue has room for ${room} of this request's ` +
            `${images.length} images (${this.o.maxQueue} requests waiting at ` +
            `most); retry shortly`,
          { 'retry-after': '1' },
        ),
      );
    }
    return Promise.all(images.map((p, i) => this.submit(model, p, Array.isArray(options) ? options[i] : (options as JobOptions))));
  }

  private settle(job: Job, fn: () => void): void {
    if (job.settled) return;
    job.settled = true;
    clearTimeout(job.timer);
    fn();
    this.activity.done(job.model);
  }

  private expire(job: Job): void {
    const q = this.queues.get(job.key);
    const at = q ? q.indexOf(job) : -1;
    if (at >= 0) {
      q!.splice(at, 1);
      this.queued--;
      this.observer.depth(queueLabel(job.key), q!.length);
    }
    this.settle(job, () => job.reject(Errors.timeout(`no answer within ${this.o.timeoutMs} ms`)));
  }

  private pump(): void {
    for (;;) {
      const slot = this.pool.idle();
      if (!slot) return;
      let key: string | null = null;
      for (const [k, q] of this.queues)
        if (q.length > 0 && (key === null || q[0].enqueuedAt < this.queues.get(key)![0].enqueuedAt)) key = k;
      if (key === null) return;
      const q = this.queues.get(key)!;
      const model = q[0].model;
      const waited = performance.now() - q[0].enqueuedAt;
      if (!this.flushing && q.length < this.o.maxBatch && waited < this.o.maxDelayMs && this.pool.idleCount() < 2) {
        if (!this.wake) {
          this.wake = setTimeout(
            () => {
              this.wake = null;
              this.pump();
            },
            Math.ceil(this.o.maxDelayMs - waited),
          );
        }
        return;
      }
      const jobs = q.splice(0, this.o.maxBatch);
      this.queued -= jobs.length;
      this.observer.depth(queueLabel(key), q.length);
      this.dispatch(slot, model, jobs);
    }
  }

  private dispatch(slot: Slot, model: string, jobs: Job[]): void {
    const images = jobs.map((j) => j.input);
    const explain = jobs[0].options.explain;
    if (explain) {
      // Explanation jobs: each image with its own class, through one of the model's explanation graphs.
      const classes = Float32Array.from(jobs, (j) => j.options.explain!.class);
      this.runBatch(
        slot,
        queueLabel(queueKey(model, explain)),
        jobs,
        { model, images, n: jobs.length, attentions: false, explain: { classes, graph: explain.graph } },
        (r, at) =>
          jobs.forEach((j, i) => this.settle(j, () => j.resolve(at(i, { rollout: null, ...explanationsOf(r, i), attentions: null })))),
      );
      return;
    }
    this.runBatch(slot, model, jobs, { model, images, n: jobs.length, attentions: jobs.some((j) => j.options.attentions) }, (r, at) => {
      const perLayer = r.heads * r.tokens * r.tokens;
      jobs.forEach((j, i) => {
        // Views into the batch's arrays, not copies.
        const attentions = j.options.attentions && r.attentions ? r.attentions.map((a) => slice(a, i, perLayer)) : null;
        this.settle(j, () =>
          j.resolve(
            at(i, {
              rollout: r.rollout ? slice(r.rollout, i, r.tokens - r.prefix) : null,
              relevance: null,
              explanations: null,
              attentions,
            }),
          ),
        );
      });
    });
  }

  /**
   * Runs one batch on a worker: `deliver` settles the jobs from the reply, given `at(i, rest)` which
   * builds image i's result (its logits and the batch's figures) around what the kind of job adds; a
   * failure rejects every job.
   */
  private runBatch(
    slot: Slot,
    label: string,
    jobs: Job[],
    request: Omit<RunRequest, 'type' | 'id'>,
    deliver: (
      r: RunReply,
      at: (i: number, rest: Pick<JobResult, 'rollout' | 'relevance' | 'explanations' | 'attentions'>) => JobResult,
    ) => void,
  ): void {
    const started = performance.now();
    this.activity.add(request.model);
    this.pool
      .run(slot, request)
      .then(
        (r) => {
          this.observer.batch(label, jobs.length, r.inferenceMs);
          const classes = r.logits.length / jobs.length;
          deliver(r, (i, rest) => ({
            logits: slice(r.logits, i, classes),
            ...rest,
            heads: r.heads,
            tokens: r.tokens,
            prefix: r.prefix,
            batchSize: jobs.length,
            queueMs: started - jobs[i].enqueuedAt,
            inferenceMs: r.inferenceMs,
          }));
        },
        (err: Error) => {
          const e = err instanceof ServiceError ? err : Errors.internal(err.message);
          for (const j of jobs) this.settle(j, () => j.reject(e));
        },
      )
      .finally(() => {
        this.activity.done(request.model);
      });
  }

  /** From now on nothing waits for its batch to fill (a server draining for shutdown). */
  flush(): void {
    this.flushing = true;
    if (this.wake) clearTimeout(this.wake);
    this.wake = null;
    this.pump();
  }

  /** Resolves once a model version (its key) has nothing queued or running, its batches' runs included. */
  idle(key: string): Promise<void> {
    return this.activity.idle(key);
  }

  /** Resolves once nothing is queued or running. */
  drained(): Promise<void> {
    return this.activity.idle();
  }

  close(): void {
    if (this.wake) clearTimeout(this.wake);
    for (const q of this.queues.values())
      for (const j of q.splice(0)) this.settle(j, () => j.reject(Errors.notReady('the server is shutting down')));
    this.queued = 0;
  }
}
