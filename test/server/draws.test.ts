// The heatmap workers: a draw is drawHeatmap's PNG, at most `size` run at once and a bounded number
// wait (503 beyond), and a worker that dies fails its draw and is replaced.

import t from 'tap';
import { Drawers } from '../../server/drawing/draws.js';
import { ServiceError } from '../../server/errors.js';
import { drawHeatmap } from '../../server/drawing/heatmap.js';

const grid = Array.from({ length: 8 }, (_, r) => Array.from({ length: 8 }, (_, c) => (r * 8 + c) / 63));
const view = { data: Buffer.from(Array.from({ length: 32 * 32 * 3 }, (_, i) => (i * 37) % 256)), width: 32, height: 32 };
const options = { size: 128, alpha: 0.6, colormap: 'viridis' };

t.test('a draw in a worker is the same PNG as drawn here', async (t) => {
  const drawers = new Drawers(2, 8);
  t.teardown(() => drawers.close());
  const [a, b] = await Promise.all([drawers.draw(grid, view, options), drawers.draw(grid, view, { ...options, colormap: 'jet' })]);
  t.ok(a.equals(drawHeatmap(grid, view, options)), 'byte for byte');
  t.ok(b.equals(drawHeatmap(grid, view, { ...options, colormap: 'jet' })));
});

t.test('at most size at once, a bounded queue, then 503', async (t) => {
  const drawers = new Drawers(1, 1);
  t.teardown(() => drawers.close());
  const first = drawers.draw(grid, view, options);
  const second = drawers.draw(grid, view, options);
  t.equal(drawers.running, 1);
  t.equal(drawers.queued, 1);
  const third = await drawers.draw(grid, view, options).catch((e: unknown) => e);
  t.ok(third instanceof ServiceError && third.statusCode === 503, 'the third is refused');
  t.match((third as Error).message, /1 heatmaps are waiting to be drawn; retry shortly/);
  t.ok((await first).length > 0 && (await second).length > 0, 'the two admitted are drawn');
  t.equal(drawers.running, 0);
});

t.test('a worker that dies fails its draw with a 500 and is replaced', async (t) => {
  const drawers = new Drawers(1, 4);
  t.teardown(() => drawers.close());
  await drawers.draw(grid, view, options); // started and warm
  const inFlight = drawers.draw(grid, view, options);
  const [worker] = [...(drawers as unknown as { all: Set<{ worker: { terminate(): Promise<number> } }> }).all].map((d) => d.worker);
  await worker.terminate();
  const err = await inFlight.catch((e: unknown) => e);
  t.ok(err instanceof ServiceError && err.statusCode === 500, `the draw in flight fails: ${(err as Error).message}`);
  t.ok((await drawers.draw(grid, view, options)).length > 0, 'the next draw is drawn by a new worker');
});

t.test('past its deadline a draw answers 504, waiting or drawing, and its slot is free again', async (t) => {
  const drawers = new Drawers(1, 8);
  t.teardown(() => drawers.close());
  const big = { ...options, size: 1024 };
  // a draw whose deadline has come while it draws: its worker is ended and replaced
  const drawing = await drawers.draw(grid, view, big, performance.now()).catch((e: unknown) => e);
  t.ok(drawing instanceof ServiceError && drawing.statusCode === 504, 'a draw past its deadline: 504');
  t.match((drawing as Error).message, /no answer in time: the heatmap was still being drawn/);
  // one waiting behind another past its deadline leaves the queue
  const first = drawers.draw(grid, view, big);
  const waiting = drawers.draw(grid, view, options, performance.now() + 1).catch((e: unknown) => e);
  t.equal(drawers.queued, 1);
  const late = await waiting;
  t.ok(late instanceof ServiceError && late.statusCode === 504, 'a draw still waiting at its deadline: 504');
  t.equal(drawers.queued, 0, 'and out of the queue');
  t.ok((await first).equals(drawHeatmap(grid, view, big)), 'the draw ahead of it is unharmed');
  t.ok(
    (await drawers.draw(grid, view, options)).equals(drawHeatmap(grid, view, options)),
    'the next draw gets the slot, on the new worker',
  );
  t.equal(drawers.running, 0);
});
