// The batcher on its own, over a fake worker pool whose runs the test answers: batches fill up to
// max-batch or leave after max-delay, gather while every worker is busy, keep relevance jobs apart,
// bound the queue (503), time out (504), pass a worker's failure to every job of its batch, drain.

import { EventEmitter } from 'node:events';
import t from 'tap';
import { Batcher, type BatchRunner } from '../../server/engine/batcher.js';
import type { RunReply, RunRequest } from '../../server/engine/inference-protocol.js';
import type { ServiceError } from '../../server/errors.js';
import { until as untilNamed } from '../helpers/wait.js';

/** Waits (up to 15 s of real time, not a count of event-loop turns) until `check` holds. */
const until = (check: () => boolean) => untilNamed('the batcher dispatched', check);

const CLASSES = 3;

interface Run {
  request: Omit<RunRequest, 'type' | 'id'>;
  answer(): void;
  fail(err: Error): void;
}

/** `slots` workers; each run waits until the test answers it; logits of image i = its first pixel + k. */
class FakePool extends EventEmitter {
  readonly runs: Run[] = [];
  private busy: boolean[];
  constructor(slots: number) {
    super();
    this.busy = Array(slots).fill(false);
  }
  idle() {
    const i = this.busy.indexOf(false);
    return i < 0 ? null : ({ index: i } as never);
  }
  idleCount() {
    return this.busy.filter((b) => !b).length;
  }
  run(slot: { index: number }, request: Omit<RunRequest, 'type' | 'id'>): Promise<RunReply> {
    this.busy[slot.index] = true;
    return new Promise((resolve, reject) => {
      const free = () => {
        this.busy[slot.index] = false;
        queueMicrotask(() => this.emit('free'));
      };
      this.runs.push({
        request,
        answer: () => {
          const logits = new Float32Array(request.n * CLASSES);
          for (let i = 0; i < request.n; i++) for (let k = 0; k < CLASSES; k++) logits[i * CLASSES + k] = request.images[i][0] + k;
          // every map of image i carries its marker (its first pixel), so a map handed to the wrong job shows
          const marked = (per: number, add: number) =>
            Float32Array.from({ length: request.n * per }, (_, j) => request.images[Math.floor(j / per)][0] + add);
          const relevance = request.explain
            ? Float32Array.from({ length: request.n * 4 }, (_, j) => request.explain!.classes[Math.floor(j / 4)])
            : null;
          const explanations =
            request.explain?.graph === 'full' ? { chefer: marked(4, 0.25), gradInput: marked(4, 0.5), combined: marked(4, 0.75) } : null;
          const attentions = request.attentions ? [marked(25, 0.1), marked(25, 0.2)] : null;
          free();
          resolve({
            type: 'result',
            id: 0,
            logits,
            rollout: request.explain ? null : marked(4, 0),
            relevance,
            explanations,
            attentions,
            heads: 1,
            tokens: 5,
            prefix: 1,
            inferenceMs: 1,
          });
        },
        fail: (err) => {
          free();
          reject(err);
        },
      });
    });
  }
}

function setup(slots: number, o: Partial<{ maxBatch: number; maxDelayMs: number; maxQueue: number; timeoutMs: number }> = {}) {
  const pool = new FakePool(slots);
  const batches: number[] = [];
  const batcher = new Batcher(
    pool as unknown as BatchRunner,
    { maxBatch: 4, maxDelayMs: 1000, maxQueue: 100, timeoutMs: 10_000, ...o },
    { batch: (_m, size) => batches.push(size), depth: () => {} },
  );
  return { pool, batcher, batches };
}

const image = (marker: number) => Float32Array.of(marker, 0);

t.test('a full batch leaves at once, each job gets its own slice', async (t) => {
  const { pool, batcher, batches } = setup(1);
  const jobs = [10, 20, 30, 40].map((m) => batcher.submit('m', image(m)));
  t.equal(pool.runs.length, 1, 'dispatched without waiting for max-delay');
  t.equal(pool.runs[0].request.n, 4);
  pool.runs[0].answer();
  const results = await Promise.all(jobs);
  t.same(
    results.map((r) => Array.from(r.logits)),
    [10, 20, 30, 40].map((m) => [m, m + 1, m + 2]),
  );
  t.ok(results.every((r) => r.batchSize === 4));
  t.same(batches, [4]);
});

t.test('a lone job leaves after max-delay', async (t) => {
  const { pool, batcher } = setup(1, { maxDelayMs: 5 });
  const job = batcher.submit('m', image(1));
  t.equal(pool.runs.length, 0, 'waits for company');
  await until(() => pool.runs.length === 1);
  pool.runs[0].answer();
  t.equal((await job).batchSize, 1);
});

t.test('while another worker is free a lone job leaves at once; the last free worker waits for company', async (t) => {
  const { pool, batcher } = setup(2, { maxDelayMs: 60_000 });
  t.teardown(() => batcher.close()); // its wake-up timer, set while the second batch waited
  const first = batcher.submit('m', image(1));
  t.equal(pool.runs.length, 1, 'two workers free: sent at once');
  const second = batcher.submit('m', image(2));
  const third = batcher.submit('m', image(3));
  t.equal(pool.runs.length, 1, 'one worker free: the next wait for company');
  const fourth = batcher.submit('m', image(4));
  const fifth = batcher.submit('m', image(5));
  t.equal(pool.runs.length, 2, 'until their batch is full');
  t.equal(pool.runs[1].request.n, 4);
  for (const r of pool.runs) r.answer();
  t.same(
    (await Promise.all([first, second, third, fourth, fifth])).map((r) => [r.logits[0], r.batchSize]),
    [
      [1, 1],
      [2, 4],
      [3, 4],
      [4, 4],
      [5, 4],
    ],
  );
});

t.test('flush (a server draining): a job waiting for company leaves at once', async (t) => {
  const { pool, batcher } = setup(1, { maxDelayMs: 60_000 });
  const job = batcher.submit('m', image(7));
  t.equal(pool.runs.length, 0, 'waiting for company');
  batcher.flush();
  t.equal(pool.runs.length, 1, 'sent on without waiting out the delay');
  pool.runs[0].answer();
  t.equal((await job).logits[0], 7);
});

t.test('while every worker is busy, requests gather and leave as one batch', async (t) => {
  const { pool, batcher, batches } = setup(1, { maxDelayMs: 0 });
  const first = batcher.submit('m', image(1));
  t.equal(pool.runs.length, 1);
  const rest = [2, 3, 4].map((m) => batcher.submit('m', image(m)));
  t.equal(batcher.depth('m'), 3, 'queued behind the busy worker');
  pool.runs[0].answer();
  await first;
  await until(() => pool.runs.length === 2);
  t.equal(pool.runs[1].request.n, 3, 'the three that waited, together');
  pool.runs[1].answer();
  t.same(
    (await Promise.all(rest)).map((r) => r.logits[0]),
    [2, 3, 4],
  );
  t.same(batches, [1, 3]);
});

t.test("each job of a batch gets its own image's maps: rollout, attentions, relevance and the explanations", async (t) => {
  const { pool, batcher } = setup(1);
  const plain = [10, 20, 30, 40].map((m) => batcher.submit('m', image(m), { attentions: true }));
  pool.runs[0].answer();
  for (const [k, r] of (await Promise.all(plain)).entries()) {
    const m = (k + 1) * 10;
    t.same(Array.from(r.rollout!), [m, m, m, m], `image ${k}: its rollout`);
    t.same(
      r.attentions!.map((a) => [a.length, a[0], a[24]]),
      [
        [25, m + 0.1, m + 0.1],
        [25, m + 0.2, m + 0.2],
      ].map((x) => x.map(Math.fround)),
      `image ${k}: its attentions, per layer`,
    );
  }
  const explained = [10, 20, 30, 40].map((m, k) => batcher.submit('m', image(m), { explain: { class: k + 3, graph: 'full' } }));
  pool.runs[1].answer();
  t.same(Array.from(pool.runs[1].request.explain!.classes), [3, 4, 5, 6], 'each image with its class');
  for (const [k, r] of (await Promise.all(explained)).entries()) {
    const m = (k + 1) * 10;
    t.same(Array.from(r.relevance!), [k + 3, k + 3, k + 3, k + 3], `image ${k}: the relevance of its class`);
    t.same(
      [r.explanations!.chefer, r.explanations!.gradInput!, r.explanations!.combined!].map((a) => Array.from(a)),
      [0.25, 0.5, 0.75].map((d) => new Array(4).fill(m + d)),
      `image ${k}: its explanations`,
    );
  }
});

t.test("a request's images are queued all or none", async (t) => {
  const { pool, batcher } = setup(1, { maxQueue: 3 });
  const waiting = [batcher.submit('m', image(1)), batcher.submit('m', image(2))];
  t.equal(batcher.depth(), 2, 'two wait for company');
  await t.rejects(batcher.submitAll('m', [image(3), image(4)]), { statusCode: 503, message: /room for 1 of this request's 2 images/ });
  t.equal(batcher.depth(), 2, 'neither of the refused images was queued');
  const both = batcher.submitAll('m', [image(5)], [{ attentions: true }]);
  t.equal(batcher.depth(), 3, 'one that fits is queued');
  batcher.flush();
  await until(() => pool.runs.length === 1);
  pool.runs[0].answer();
  t.same(
    (await Promise.all([...waiting, both.then((r) => r[0])])).map((r) => r.logits[0]),
    [1, 2, 5],
  );
  t.ok((await both)[0].attentions, 'with its own options');
});

t.test('relevance jobs batch apart from plain ones, with their classes', async (t) => {
  const { pool, batcher } = setup(2, { maxDelayMs: 0 });
  const plain = batcher.submit('m', image(1));
  const rel = batcher.submit('m', image(2), { explain: { class: 7, graph: 'light' } });
  t.equal(pool.runs.length, 2);
  t.notOk(pool.runs[0].request.explain);
  t.same(Array.from(pool.runs[1].request.explain!.classes), [7]);
  pool.runs.forEach((r) => r.answer());
  t.equal((await plain).relevance, null);
  t.same(Array.from((await rel).relevance!), [7, 7, 7, 7]);
});

t.test('a full queue answers 503 with Retry-After; a deadline passed answers 504', async (t) => {
  const { pool, batcher } = setup(1, { maxDelayMs: 0, maxQueue: 2, timeoutMs: 30 });
  const running = batcher.submit('m', image(1));
  const waiting = [batcher.submit('m', image(2)), batcher.submit('m', image(3))];
  const refused = await batcher.submit('m', image(4)).catch((e: ServiceError) => e);
  t.equal((refused as ServiceError).statusCode, 503);
  t.same((refused as ServiceError).headers, { 'retry-after': '1' });
  for (const p of [running, ...waiting]) {
    const e = (await p.catch((err: ServiceError) => err)) as ServiceError;
    t.equal(e.statusCode, 504);
    t.match(e.message, /no answer within 30 ms/);
  }
  t.equal(batcher.depth(), 0, 'expired jobs left the queue');
  pool.runs[0].answer(); // a late answer changes nothing
  await batcher.drained();
});

t.test("a worker's failure rejects every job of its batch; drained and close", async (t) => {
  const { pool, batcher } = setup(1, { maxDelayMs: 0 });
  const first = batcher.submit('m', image(1));
  const pair = [batcher.submit('m', image(2)), batcher.submit('m', image(3))]; // gather behind the busy worker
  pool.runs[0].answer();
  await first;
  await until(() => pool.runs.length === 2);
  t.equal(pool.runs[1].request.n, 2);
  pool.runs[1].fail(new Error('boom'));
  for (const p of pair) {
    const e = (await p.catch((err: ServiceError) => err)) as ServiceError;
    t.equal(e.statusCode, 500);
    t.match(e.message, /boom/);
  }
  const after = batcher.submit('m', image(4));
  await until(() => pool.runs.length === 3);
  pool.runs[2].answer();
  t.equal((await after).logits[0], 4, 'the worker takes the next batch');
  await batcher.drained();
  // close(): what still waits is refused with 503; what runs finishes
  const busy = batcher.submit('m', image(5));
  const queued = batcher.submit('m', image(6));
  batcher.close();
  const e = (await queued.catch((err: ServiceError) => err)) as ServiceError;
  t.equal(e.statusCode, 503);
  t.match(e.message, /shutting down/);
  pool.runs[3].answer();
  t.equal((await busy).logits[0], 5);
});
