// Heatmaps are drawn in worker threads, at most `size` at once (one a worker; the rest wait in order,
// beyond `maxWaiting` a draw is refused with 503), like decodes through the decode gate: a draw is
// milliseconds of CPU for a 256 px heatmap (an upsampling, a blend over every pixel, a PNG encode;
// heatmap.ts; `npm run bench:draw`), and on the event loop it would delay every other request, /healthz included. A worker
// that dies fails its draw (500) and is replaced.

import type { Worker } from 'node:worker_threads';
import { siblingUrl, startWorker } from '../../runtime/worker.js';
import { Errors } from '../errors.js';
import { Gate, atDeadline } from '../gate.js';
import type { HeatmapOptions } from './heatmap.js';

/** A heatmap to draw, or every layer's attention probabilities to write as JSON text (attention=full:
 *  hundreds of KB for the seed ViT, CPU that on the event loop delayed /healthz by seconds when many
 *  such requests came at once; docs/service.md). */
export type DrawRequest =
  | { id: number; kind?: 'heatmap'; grid: number[][]; view: { data: Uint8Array; width: number; height: number }; options: HeatmapOptions }
  | { id: number; kind: 'attention-json'; layers: Float32Array[]; heads: number; tokens: number };

export type DrawReply = { id: number; png: Uint8Array } | { id: number; json: string } | { id: number; error: string };

interface Drawer {
  worker: Worker;
  pending: { id: number; resolve: (reply: DrawReply) => void; reject: (err: Error) => void } | null;
}

export class Drawers {
  private readonly gate: Gate;
  private readonly idle: Drawer[] = [];
  private readonly all = new Set<Drawer>();
  private nextId = 0;
  private closing = false;

  constructor(
    readonly size: number,
    maxWaiting: number,
    /** The workers' nice value (runtime/thread-priority.ts); 0: the event loop's. */
    private readonly nice = 0,
  ) {
    this.gate = new Gate(size, maxWaiting, 'heatmaps are waiting to be drawn');
    for (let i = 0; i < size; i++) this.idle.push(this.spawn());
  }

  get running(): number {
    return this.gate.running;
  }

  get queued(): number {
    return this.gate.queued;
  }

  private spawn(): Drawer {
    const d: Drawer = {
      worker: startWorker(siblingUrl(import.meta.url, 'draw-worker'), { workerData: { nice: this.nice } }),
      pending: null,
    };
    this.all.add(d);
    d.worker.unref();
    d.worker.on('message', (m: DrawReply) => {
      const p = d.pending;
      if (!p || p.id !== m.id) return;
      d.pending = null;
      this.idle.push(d);
      if ('error' in m) p.reject(Errors.internal(`the heatmap could not be drawn: ${m.error}`));
      else p.resolve(m);
    });
    const lost = (why: string) => {
      if (!this.all.delete(d)) return;
      const i = this.idle.indexOf(d);
      if (i >= 0) this.idle.splice(i, 1);
      d.pending?.reject(Errors.internal(`the heatmap worker stopped (${why}); the next draw gets a new one`));
      d.pending = null;
      if (!this.closing) this.idle.push(this.spawn());
    };
    d.worker.on('error', (err) => lost(err.message));
    d.worker.on('exit', (code) => lost(`exit ${code}`));
    return d;
  }

  /** The heatmap PNG of `grid` over `view`, drawn by a worker. Past `deadline` (performance.now()
   *  time) a draw still waiting is answered 504, and one still drawing too: its worker is ended and
   *  replaced, so the slot is free again. */
  async draw(
    grid: number[][],
    view: { data: Buffer; width: number; height: number },
    options: HeatmapOptions,
    deadline = Infinity,
  ): Promise<Buffer> {
    const reply = await this.job({ id: 0, grid, view, options }, deadline);
    if (!('png' in reply)) throw Errors.internal('the heatmap worker answered without a PNG');
    return Buffer.from(reply.png.buffer, reply.png.byteOffset, reply.png.byteLength);
  }

  /** Every layer's attention probabilities ([layer] of heads x tokens x tokens) as the JSON text of
   *  [layer][head][token][token], six decimals, written by a worker. */
  async attentionJson(layers: Float32Array[], heads: number, tokens: number, deadline = Infinity): Promise<string> {
    const reply = await this.job({ id: 0, kind: 'attention-json', layers, heads, tokens }, deadline);
    if (!('json' in reply)) throw Errors.internal('the heatmap worker answered without the attention text');
    return reply.json;
  }

  private job(request: DrawRequest, deadline: number): Promise<DrawReply> {
    return this.gate.run(
      () =>
        new Promise<DrawReply>((resolve, reject) => {
          // the gate admits at most `size` draws and there are `size` drawers, so one is idle (a lost one is replaced at once)
          const d = this.idle.pop() ?? this.spawn();
          const id = this.nextId++;
          const timer = atDeadline(deadline, () => {
            if (d.pending?.id !== id) return;
            d.pending = null;
            reject(Errors.timeout('no answer in time: the heatmap was still being drawn'));
            void d.worker.terminate(); // its exit replaces it
          });
          const settle =
            <A>(f: (a: A) => void) =>
            (a: A) => {
              clearTimeout(timer);
              f(a);
            };
          d.pending = { id, resolve: settle(resolve), reject: settle(reject) };
          d.worker.postMessage({ ...request, id } satisfies DrawRequest);
        }),
      deadline,
    );
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all([...this.all].map((d) => d.worker.terminate()));
  }
}
