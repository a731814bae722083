// The decode gate: at most `limit` at once, the rest in order, 503 beyond the waiting bound, and a
// failed task frees its slot.

import t from 'tap';
import type { ServiceError } from '../../server/errors.js';
import { Gate } from '../../server/gate.js';

t.test('gate: a limit, an order, a bound', async (t) => {
  const gate = new Gate(2, 3);
  let active = 0;
  let peak = 0;
  const order: number[] = [];
  const releases: (() => void)[] = [];
  const task = (i: number) => () =>
    new Promise<number>((resolve) => {
      active++;
      peak = Math.max(peak, active);
      order.push(i);
      releases.push(() => {
        active--;
        resolve(i);
      });
    });
  const runs = [0, 1, 2, 3, 4].map((i) => gate.run(task(i)));
  await new Promise((r) => setImmediate(r));
  t.equal(gate.running, 2);
  t.equal(gate.queued, 3);
  const refused = await gate.run(task(5)).then(
    () => null,
    (e: ServiceError) => e,
  );
  t.equal(refused?.statusCode, 503, 'beyond 3 waiting: 503');
  t.equal(refused?.headers?.['retry-after'], '1');
  while (releases.length) {
    releases.shift()!();
    await new Promise((r) => setImmediate(r));
  }
  t.same(await Promise.all(runs), [0, 1, 2, 3, 4]);
  t.same(order, [0, 1, 2, 3, 4], 'in arrival order');
  t.equal(peak, 2, 'never more than 2 at once');
  t.equal(gate.running, 0);
  await t.rejects(
    gate.run(() => Promise.reject(new Error('broken image'))),
    /broken image/,
  );
  t.equal(gate.running, 0, 'a failed task gives its slot back');
});
