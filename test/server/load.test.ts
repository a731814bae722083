// Real HTTP: concurrent requests are batched and give the answers they give alone; a full queue is a
// 503 with Retry-After; a request past its deadline is a 504; a worker that dies mid-request is a 500
// for that request and is replaced.

import t from 'tap';
import { testApp, testImage } from '../helpers/server.js';
import { until } from '../helpers/wait.js';

async function post(base: string, body: Buffer, query = '') {
  const res = await fetch(`${base}/classify${query}`, { method: 'POST', body, headers: { 'content-type': 'image/png' } });
  return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, any> };
}

async function listen(app: Awaited<ReturnType<typeof testApp>>) {
  return app.listen({ port: 0, host: '127.0.0.1' });
}

t.test('concurrent requests are batched, with the results of one-at-a-time requests', async (t) => {
  const app = await testApp(t, { maxBatch: 32, maxDelayMs: 5 });
  const base = await listen(app);
  const images = await Promise.all(Array.from({ length: 8 }, (_, i) => testImage('png', 24 + 4 * i)));
  const alone: Record<string, any>[] = [];
  for (const img of images) alone.push((await post(base, img, '?topk=10')).body);
  t.ok(
    alone.every((r) => r.timings.batch_size === 1),
    'one at a time: batches of 1',
  );

  const together = await Promise.all(Array.from({ length: 48 }, (_, i) => post(base, images[i % 8], '?topk=10')));
  t.ok(
    together.every((r) => r.status === 200),
    'all answered',
  );
  const sizes = together.map((r) => r.body.timings.batch_size);
  t.ok(Math.max(...sizes) > 1, `batched: sizes up to ${Math.max(...sizes)}`);
  let worst = 0;
  together.forEach((r, i) => {
    const ref = alone[i % 8];
    t.same(
      r.body.predictions.map((p: { index: number }) => p.index),
      ref.predictions.map((p: { index: number }) => p.index),
      `request ${i}: same ranking`,
    );
    r.body.logits.forEach((v: number, k: number) => (worst = Math.max(worst, Math.abs(v - ref.logits[k]))));
  });
  t.ok(worst < 1e-5, `logits in a batch equal the logits alone (largest difference ${worst})`);

  const metrics = await (await fetch(`${base}/metrics`)).text();
  const sum = Number(/vitrine_batch_size_sum\{model="vit-cifar10"\} ([\d.]+)/.exec(metrics)![1]);
  const count = Number(/vitrine_batch_size_count\{model="vit-cifar10"\} ([\d.]+)/.exec(metrics)![1]);
  t.equal(sum, 56, 'every request counted once');
  t.ok(sum / count > 1, `the batch-size metric shows batching: mean ${(sum / count).toFixed(2)} over ${count} batches`);
});

t.test('a full queue answers 503 with Retry-After; a passed deadline answers 504', async (t) => {
  // The longest max-delay keeps requests queued while the worker waits for a fuller batch (10 s:
  // the third request has that long to arrive); flush() then sends them on.
  const app = await testApp(t, { maxBatch: 64, maxDelayMs: 10_000, maxQueue: 2, timeoutMs: 60_000 });
  const base = await listen(app);
  const img = await testImage();
  const first = [post(base, img), post(base, img)];
  await until('both requests wait in the queue', () => app.vitrine.batcher.depth() >= 2);
  t.equal(app.vitrine.batcher.depth(), 2, 'both wait in the queue');
  const rejected = await post(base, img);
  t.equal(rejected.status, 503);
  t.equal(rejected.headers.get('retry-after'), '1');
  t.equal(rejected.body.code, 'VIT_OVERLOADED');
  t.equal(app.vitrine.batcher.depth(), 2, 'the two still wait: the 503 came while they were queued');
  app.vitrine.batcher.flush();
  const answered = await Promise.all(first);
  t.same(
    answered.map((r) => r.status),
    [200, 200],
    'the queued requests are still answered',
  );

  const slow = await testApp(t, { maxBatch: 64, maxDelayMs: 2000, timeoutMs: 100 });
  const slowBase = await listen(slow);
  const late = await post(slowBase, img);
  t.equal(late.status, 504);
  t.equal(late.body.code, 'VIT_TIMEOUT');
  t.match(late.body.message, /no answer within 100 ms/);
});

t.test('a worker killed mid-request: that request gets a 500, the worker is replaced, service continues', async (t) => {
  const app = await testApp(t, { maxDelayMs: 0 });
  const base = await listen(app);
  const pool = app.vitrine.pool;
  const run = pool.run.bind(pool);
  let armed = true;
  pool.run = (slot, req) => {
    const p = run(slot, req);
    if (armed) {
      armed = false;
      void pool.kill(0); // dies while the batch is in flight
    }
    return p;
  };
  const img = await testImage();
  const failed = await post(base, img);
  t.equal(failed.status, 500, JSON.stringify(failed.body));
  t.equal(failed.body.code, 'VIT_WORKER_FAILED');
  // The replacement comes up; then requests succeed again.
  // (A new worker loads every model's sessions: seconds on a busy machine, so the wait is generous.)
  await until('the replacement worker is ready', () => pool.ready, 30_000);
  t.ok(pool.ready, 'a new worker is ready');
  const ok = await post(base, img);
  t.equal(ok.status, 200);
  const metrics = await (await fetch(`${base}/metrics`)).text();
  t.match(metrics, /vitrine_worker_restarts_total 1/);
  t.equal((await fetch(`${base}/healthz`)).status, 200);
});

t.test('stopping workers while they run does not take the process down', async (t) => {
  // worker.terminate() during an ONNX Runtime run aborted the whole process now and then; workers are
  // now asked to stop and leave between runs. Several rounds, each stopping mid-run.
  for (let round = 0; round < 4; round++) {
    const app = await testApp(t, { maxDelayMs: 0 });
    const pool = app.vitrine.pool;
    const run = pool.run.bind(pool);
    let closing: Promise<void> | null = null;
    pool.run = (slot, req) => {
      const p = run(slot, req);
      closing ??= pool.close();
      return p;
    };
    const answer = await app.inject({
      method: 'POST',
      url: '/classify',
      payload: await testImage(),
      headers: { 'content-type': 'image/png' },
    });
    await closing;
    t.equal(answer.statusCode, 200, `round ${round}: the run in progress is answered before the worker leaves`);
    t.equal(pool.readyCount, 0, 'no worker left');
  }
});
