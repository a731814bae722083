// The workers run below the event loop's priority: Linux's nice is per thread, so the inference and
// heatmap workers (and the threads they start) get the configured value and the main thread keeps
// its own.

import { readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';
import t from 'tap';
import { Worker } from 'node:worker_threads';
import { lowerThreadPriority, threadId } from '../../runtime/thread-priority.js';
import { Drawers } from '../../server/drawing/draws.js';
import { multipart, testApp, testImage } from '../helpers/server.js';
import { until } from '../helpers/wait.js';

/** The nice value of every thread of this process, by thread id (field 19 of /proc/self/task/<tid>/stat). */
function threadNices(): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // a thread that ended between the listing and the read
      throw err;
    }
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from the 3rd (state) on
    out.set(Number(tid), Number(fields[19 - 3]));
  }
  return out;
}

const linux = process.platform === 'linux';
const mainNice = () => os.getPriority(process.pid);
/** The values asked are above the runner's own nice (a runner at nice 11 would see every thread at
 *  "nice 11" whatever the code did); a runner too near 19 to ask above it cannot show anything. */
const base = linux ? mainNice() : 0;
const skipNear19 = (k: number) =>
  !linux ? 'Linux only' : base + k > 19 ? `the runner is at nice ${base}: nothing above it to ask ${k} more` : false;
const options = (k: number) => ({ skip: process.env.CI && linux ? false : skipNear19(k) });

t.test('the main thread is never changed', { skip: !linux && 'Linux only' }, async (t) => {
  const before = mainNice();
  t.equal(threadId(), process.pid, 'the main thread is the process');
  t.equal(lowerThreadPriority(12), null);
  t.equal(mainNice(), before);
  t.equal(threadNices().get(process.pid), before);
});

t.test('a worker thread runs at the value asked, and never higher than it already is', options(7), async (t) => {
  const before = mainNice();
  t.ok(before + 7 <= 19, `room above the runner's nice ${before}`);
  const tsx = JSON.stringify(import.meta.resolve('tsx/esm/api'));
  const module = JSON.stringify(new URL('../../runtime/thread-priority.ts', import.meta.url).href);
  const code = `
    const { parentPort } = require('node:worker_threads');
    import(${tsx}).then(({ register }) => { register(); return import(${module}); })
      .then((m) => {
        // the listener keeps the thread alive until terminate(), so its /proc entry is there to read
        parentPort.on('message', () => {});
        const first = m.lowerThreadPriority(${before + 7});
        const again = m.lowerThreadPriority(${before + 3});
        parentPort.postMessage({ tid: m.threadId(), first, again, zero: m.lowerThreadPriority(0) });
      });`;
  const w = new Worker(code, { eval: true });
  const r = await new Promise<{ tid: number; first: number; again: number; zero: number | null }>((resolve, reject) =>
    w.once('message', resolve).once('error', reject),
  );
  t.not(r.tid, process.pid, 'a thread of its own');
  t.equal(r.first, before + 7, `nice ${before + 7}`);
  t.equal(r.again, before + 7, 'a lower value leaves it');
  t.equal(r.zero, null, '0 changes nothing');
  t.equal(threadNices().get(r.tid), before + 7, 'as the kernel sees it');
  t.equal(mainNice(), before, 'the main thread keeps its own');
  await w.terminate();
});

t.test('heatmap workers run at the nice value given', options(9), async (t) => {
  const before = new Set(threadNices().keys());
  const nice = mainNice() + 9;
  t.ok(nice <= 19, `room above the runner's nice ${mainNice()}`);
  const drawers = new Drawers(2, 4, nice);
  t.teardown(() => drawers.close());
  const grid = [
    [0, 1],
    [1, 0],
  ];
  const view = { data: Buffer.alloc(8 * 8 * 3), width: 8, height: 8 };
  const options = { size: 16, alpha: 0.5, colormap: 'jet' };
  await Promise.all([drawers.draw(grid, view, options), drawers.draw(grid, view, options)]);
  const fresh = [...threadNices()].filter(([tid]) => !before.has(tid)).map(([, n]) => n);
  t.ok(fresh.filter((n) => n === nice).length >= 2, `two threads at nice ${nice} (new threads' values: ${fresh.join(', ')})`);
  t.equal(threadNices().get(process.pid), mainNice());
});

t.test('the service starts its inference workers at --worker-nice', options(11), async (t) => {
  const before = new Set(threadNices().keys());
  const nice = mainNice() + 11;
  t.ok(nice <= 19, `room above the runner's nice ${mainNice()}`);
  const app = await testApp(t, { workers: 2, workerNice: nice, drawers: 1 });
  const r = await app.inject({ method: 'POST', url: '/classify', ...multipart('image', await testImage()) });
  t.equal(r.statusCode, 200, r.body);
  const fresh = () => [...threadNices()].filter(([tid]) => !before.has(tid)).map(([, n]) => n);
  const lowered = () => fresh().filter((n) => n === nice).length;
  // The heatmap worker starts with the service but says nothing when it has set its priority (a
  // loaded machine once read it before it had): wait for it, as long as the suite's own timeout.
  await until(`three new threads are at nice ${nice}`, () => lowered() >= 3, 30_000).catch(() => {});
  // two inference workers and one heatmap worker at least; libuv's and V8's helper threads stay as they were
  t.ok(lowered() >= 3, `three threads at nice ${nice} (new threads' values: ${fresh().join(', ')})`);
  t.equal(threadNices().get(process.pid), mainNice(), 'the event loop keeps its own');
});
