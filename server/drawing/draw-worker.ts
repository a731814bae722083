// A heatmap worker thread: draws one heatmap at a time (resize, colour, blend, PNG encode; heatmap.ts)
// so that none of it runs on the service's event loop.

import { parentPort, workerData } from 'node:worker_threads';
import { lowerThreadPriority } from '../../runtime/thread-priority.js';
import { drawHeatmap } from './heatmap.js';
import type { DrawReply, DrawRequest } from './draws.js';

lowerThreadPriority((workerData as { nice?: number } | null)?.nice ?? 0);

/** [layer][head][token][token] as JSON, each value to six decimals (as /classify has always sent them). */
function attentionJson(layers: Float32Array[], heads: number, T: number): string {
  const layer = (l: Float32Array) =>
    Array.from({ length: heads }, (_, h) =>
      Array.from({ length: T }, (_, i) => Array.from(l.subarray((h * T + i) * T, (h * T + i + 1) * T), (v) => +v.toFixed(6))),
    );
  return JSON.stringify(layers.map(layer));
}

parentPort!.on('message', (m: DrawRequest) => {
  let reply: DrawReply;
  let transfer: ArrayBuffer[] = [];
  try {
    if (m.kind === 'attention-json') reply = { id: m.id, json: attentionJson(m.layers, m.heads, m.tokens) };
    else {
      // its own buffer (a small Buffer may share Node's pool), so it can be transferred
      const png = new Uint8Array(drawHeatmap(m.grid, m.view, m.options));
      reply = { id: m.id, png };
      transfer = [png.buffer];
    }
  } catch (err) {
    reply = { id: m.id, error: (err as Error).message };
  }
  parentPort!.postMessage(reply, transfer);
});
